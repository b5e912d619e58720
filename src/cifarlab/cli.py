"""Command line: argparse subcommands that call the library; no logic of their own."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from .errors import CheckpointError, ConfigError, DataError, Interrupted, RunError


DEFAULT_BUDGET = "5m"  # `cifarlab train` alone = `make train`: the best CIFAR-100 model in 5 minutes


def _cmd_train(a) -> int:
    from .config import make_config
    from .engine import train

    if a.plan_only and (a.preset or a.resume):
        raise ConfigError("--plan-only shows what --budget would do; drop "
                          f"{'--preset' if a.preset else '--resume'} (e.g. cifarlab train --budget 1h --plan-only)")
    if a.resume:
        bad = [flag for flag, given in (("--set", a.set), ("--overwrite", a.overwrite), ("--out", a.out),
                                        ("--preset", a.preset), ("--tensorboard", a.tensorboard)) if given]
        if bad:
            raise RunError(f"--resume continues {a.resume} with the config stored in its last.pt; "
                           f"{', '.join(bad)} cannot change it. Drop {', '.join(bad)}, or start a new run "
                           "(--out DIR --overwrite) instead of resuming")
        out = Path(a.resume)
        result = train(None, out=out, data_dir=a.data_dir, resume=True, quiet=a.quiet)
    elif a.budget or not a.preset:
        if a.set and not a.preset:
            raise ConfigError("--set changes a preset: give --preset NAME (`cifarlab presets` lists them)")
        out, result = _train_budget(a)
        if result is None:  # --plan-only: the plan was printed
            return 0
    else:
        cfg = make_config(a.preset, [*a.set, *(["log.tensorboard=true"] if a.tensorboard else [])])
        out = Path(a.out) if a.out else Path("runs") / f"{cfg.name}-{dt.datetime.now():%Y%m%d-%H%M%S}"
        result = train(cfg, out=out, data_dir=a.data_dir, overwrite=a.overwrite, quiet=a.quiet)
    from .distributed import is_main_process

    if not is_main_process():  # torchrun: rank 0 alone prints and records
        return 0
    print(f"run folder: {out}")
    if a.record:
        from .runlog import append_record

        append_record(Path(a.record), result.summary, out)
        print(f"recorded in {a.record}")
    return 0


def _train_budget(a):
    from .budget import parse_duration, train_within

    if a.preset or a.set or a.tensorboard:
        raise ConfigError("--budget picks the recipe itself (budget_table.json); drop --preset/--set/--tensorboard, "
                          "or train a named preset without --budget")
    budget_s = parse_duration(a.budget or DEFAULT_BUDGET)
    if a.plan_only:
        bad = [f for f, given in (("--out", a.out), ("--overwrite", a.overwrite), ("--record", a.record)) if given]
        if bad:
            raise ConfigError(f"--plan-only trains nothing and writes nothing; drop {', '.join(bad)}")
        train_within(a.dataset, budget_s, data_dir=a.data_dir, quiet=False, plan_only=True)
        return None, None
    out = Path(a.out) if a.out else Path("runs") / f"{a.dataset}-budget-{dt.datetime.now():%Y%m%d-%H%M%S}"
    return out, train_within(a.dataset, budget_s, out=out, data_dir=a.data_dir, quiet=a.quiet, overwrite=a.overwrite)


def _cmd_eval(a) -> int:
    from .evaluate import evaluate_checkpoint, recorded_metrics

    m, info = evaluate_checkpoint(a.checkpoint, a.split, a.data_dir, a.device, fp32=a.fp32, tta=a.tta)
    cfg, ev = info["config"], info["eval"]
    word = "Test" if a.split == "test" else "Val"
    bar = "=" * 40
    print(f"{bar}\nFINAL RESULT: {cfg.name} ({cfg.data.dataset})\n{bar}")
    print(f"{word} Accuracy: {m.top1:.2f}%\n{word} Loss:     {m.loss:.4f}\n{word} Top-5:    {m.top5:.2f}%")
    print(f"({ev['precision']}, test-time augmentation level {ev['tta']})\n{bar}")
    if a.split == "test" and cfg.data.test_subset:
        print(f"scored on the first {cfg.data.test_subset} test images only (data.test_subset): "
              "not a test-split result")
    rec = recorded_metrics(info["summary"], ev) if a.split == "test" else None
    if rec is not None:
        same = f"{m.top1:.2f}" == f"{rec['test_acc']:.2f}" and f"{m.loss:.4f}" == f"{rec['test_loss']:.4f}"
        print(f"recorded: {rec['test_acc']:.2f}% / {rec['test_loss']:.4f} -> {'reproduced' if same else 'DIFFERENT'}")
        if not same:
            return 3
    return 0


def _bench_budget(a, seeds: list[int]) -> int:
    from .bench import default_record, run_budget_bench
    from .budget import parse_duration

    if a.preset or a.set:
        raise ConfigError("bench --budget picks the recipe itself; drop the preset and --set")
    record = None if a.no_record else (Path(a.record) if a.record else default_record("budget_runs.jsonl"))
    command = " ".join(["cifarlab", "bench", "--budget", a.budget, "--dataset", a.dataset,
                        *(["--seed-list", *map(str, seeds)] if a.seed_list else ["--seeds", str(a.seeds)])])
    run_budget_bench(a.dataset, parse_duration(a.budget), seeds, a.data_dir, record, command=command, keep=a.keep)
    if record is not None:
        print(f"recorded in {record}")
    return 0


def _cmd_bench(a) -> int:
    from .bench import default_record, run_bench
    from .config import make_config

    seeds = a.seed_list if a.seed_list else list(range(a.seeds))
    if a.budget:
        return _bench_budget(a, seeds)
    if not a.preset:
        raise ConfigError("bench needs a preset (cifarlab presets) or --budget TIME")
    cfg = make_config(a.preset, a.set)
    record = None if a.no_record else (Path(a.record) if a.record else default_record("time_to_accuracy.jsonl"))
    command = " ".join(["cifarlab", "bench", a.preset,
                        *(["--seed-list", *map(str, seeds)] if a.seed_list else ["--seeds", str(a.seeds)]),
                        *(f"--set {kv}" for kv in a.set), *(["--keep", a.keep] if a.keep else [])])
    run_bench(cfg, seeds, a.data_dir, record, command=command, keep=a.keep)
    if record is not None:
        print(f"recorded in {record}")
    return 0


def _cmd_presets(a) -> int:
    from .config import preset_descriptions

    for name, description in preset_descriptions().items():
        print(f"{name:<18} {description}")
    return 0


def _cmd_data(a) -> int:
    from . import data as data_mod

    names = list(data_mod.SPECS) if a.dataset == "all" else [a.dataset]
    root = data_mod.resolve_root(a.data_dir)
    bad = 0
    for name in names:
        try:
            ds = data_mod.load(name, root, allow_download=not a.no_download)
        except data_mod.DataError as e:
            print(f"{name}: ERROR {e}")
            bad += 1
            continue
        mean, std = data_mod.channel_stats(ds.train_x)
        counts = ds.train_y.bincount()
        print(f"{name}: {root / ds.spec.folder}\n  train {len(ds.train_y)} images "
              f"({int(counts.min())}-{int(counts.max())} per class), test {len(ds.test_y)}, "
              f"{ds.num_classes} classes" + (f", {len(ds.coarse_classes)} superclasses"
                                             if ds.coarse_classes else ""))
        print(f"  mean {', '.join(f'{v:.4f}' for v in mean)}  std {', '.join(f'{v:.4f}' for v in std)}")
        print(f"  sha256 train {ds.sha256[0]}\n  sha256 test  {ds.sha256[1]}\n  {ds.verification}")
    return 1 if bad else 0


def _cmd_report(a) -> int:
    """A study (YAML or folder), a run folder (metrics.jsonl) or a results folder (*.jsonl)."""
    from .io import read_json, read_jsonl
    from .study.report import is_study, report_study
    from .viz import plot_curves, results_table, run_table

    path = Path(a.path)
    if (path / "tune.json").is_file():  # a tune study folder (cifarlab tune)
        from .tune.report import report_tune

        print(report_tune(path, storage=a.storage, table_only=a.table))
    elif is_study(path):
        print(report_study(path, table_only=a.table, data_dir=a.data_dir))
    elif path.is_dir() and (path / "metrics.jsonl").is_file():
        hist = read_jsonl(path / "metrics.jsonl")
        if not a.table:
            plot_curves(hist, path / "curves.png", title=path.name)
        print(run_table(hist, read_json(path / "summary.json") if (path / "summary.json").is_file() else {}))
    elif path.is_dir() and list(path.glob("*.jsonl")):
        print(results_table(path))
    else:
        raise FileNotFoundError(f"{path}: not a run folder (metrics.jsonl), a study (YAML or folder with "
                                "study.yaml/study.json) or a results folder (*.jsonl)")
    return 0


def _cmd_ablate(a) -> int:
    from .study.run import parse_shard, run_study

    run_study(Path(a.study), out=Path(a.out) if a.out else None, seeds=a.seeds, data_dir=a.data_dir,
              quiet=a.quiet, shard=parse_shard(a.shard) if a.shard is not None else None)
    return 0


def _budget_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--budget", type=float, metavar="SECONDS", help="CPU seconds for all the checks together "
                   "(the fit and divergence runs stop early, as inconclusive, when it is spent; default: the "
                   "doctor's TOTAL_BUDGET_S, docs/doctor.md)")


def _doctor_run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifarlab doctor run", description="audit an unmodified training script: "
                                "run it as `python SCRIPT ARGS` would, a few batches and two training passes, "
                                "under hooks, then check what it built and did")
    p.add_argument("--brief", action="store_true", help="one line per finding (`doctor explain CODE` for the fix)")
    p.add_argument("--in-place", action="store_true", help="let the script write into the working directory "
                   "(default: a temporary copy of it, removed afterwards)")
    _budget_option(p)
    p.add_argument("script")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    return p


def _cmd_tune(a) -> int:
    from .tune.run import tune

    tune(Path(a.spec), out=Path(a.out) if a.out else None, storage=a.storage, data_dir=a.data_dir,
         heartbeat_s=a.heartbeat, test_best=a.test_best, quiet=a.quiet)
    return 0


def _doctor_explain(codes: list[str]) -> int:
    from .doctor.docs import explain

    if len(codes) != 1:
        raise SystemExit("cifarlab doctor explain CODE: one check code, e.g. `cifarlab doctor explain train-mode`")
    try:
        print(explain(codes[0]))
    except KeyError as e:
        raise SystemExit(f"cifarlab doctor: {e.args[0]}") from None
    return 0


def _cmd_doctor(a) -> int:
    from .doctor import diagnose_preset, diagnose_script, run_script

    if a.command == "explain":
        return _doctor_explain(a.script_args)
    brief = False
    if a.command == "run":
        r = _doctor_run_parser().parse_args(a.script_args)
        report, brief = run_script(r.script, r.args, in_place=r.in_place, budget_s=r.budget), r.brief
    elif a.command or a.script_args:
        raise SystemExit(f"cifarlab doctor: unknown command {a.command or a.script_args[0]!r}; use `doctor run "
                         "SCRIPT [ARGS...]`, `doctor explain CODE`, `doctor --preset NAME` or `doctor --script FILE`")
    elif not (a.script or a.preset):
        raise SystemExit("cifarlab doctor: give `run SCRIPT [ARGS...]`, --preset NAME or --script FILE")
    else:
        report = (diagnose_script(a.script, budget_s=a.budget) if a.script
                  else diagnose_preset(a.preset, a.set, a.data_dir, budget_s=a.budget))
    print(report.brief() if brief else report)
    return 0 if report.ok else 1


def _cmd_predict(a) -> int:
    from .export import ExportError
    from .predict import format_table, predict_images, to_csv, to_json

    try:
        preds = predict_images(a.checkpoint, a.inputs, top_k=a.top_k, batch_size=a.batch_size, fit=a.fit,
                               device=a.device)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(to_json(preds) if a.json else to_csv(preds).rstrip("\n") if a.csv else format_table(preds))
    failed = [p for p in preds if p.error]
    for p in failed:
        print(f"error: {p.path}: {p.error}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} of {len(preds)} inputs failed", file=sys.stderr)
    return 1 if failed else 0


def _cmd_export(a) -> int:
    from .export import ExportError, export_model

    try:
        out = export_model(a.checkpoint, a.format, a.out, a.input)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _add_doctor_parser(sub) -> None:
    dr = sub.add_parser("doctor", help="check a training pipeline for classic bugs",
                        usage="cifarlab doctor run SCRIPT [ARGS...] | explain CODE | --preset NAME | --script FILE")
    dr.add_argument("command", nargs="?", help="run: audit an unmodified training script (run -h for more); "
                    "explain CODE: what a check measures, its threshold and fix")
    dr.add_argument("script_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    g = dr.add_mutually_exclusive_group()
    g.add_argument("--preset")
    g.add_argument("--script", help="a .py file whose pipeline() returns diagnose() arguments")
    dr.add_argument("--set", action="append", default=[])
    dr.add_argument("--data-dir")
    _budget_option(dr)
    dr.set_defaults(func=_cmd_doctor)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cifarlab", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = p.add_subparsers(dest="command", required=True)

    _add_train_parser(sub)

    _add_eval_parser(sub)

    sub.add_parser("presets", help="list presets").set_defaults(func=_cmd_presets)

    _add_bench_parser(sub)

    d = sub.add_parser("data", help="dataset tools")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dc = dsub.add_parser("check", help="verify the data: counts, checksums, statistics")
    dc.add_argument("--dataset", choices=["cifar10", "cifar100", "all"], default="all")
    dc.add_argument("--data-dir")
    dc.add_argument("--no-download", action="store_true")
    dc.set_defaults(func=_cmd_data)

    _add_report_parser(sub)

    ab = sub.add_parser("ablate", help="run an ablation study and write its table and figures")
    ab.add_argument("study")
    ab.add_argument("--out")
    ab.add_argument("--seeds", type=int, default=None)
    ab.add_argument("--shard", metavar="I/N", help="train only shard I of N (numbered from 1): run k (from 0) of "
                    "the study (experiments in file order, seeds within each) goes to shard k mod N + 1. Give every "
                    "shard the same study, --seeds and --out on a shared filesystem; the last to finish writes the "
                    "report")
    ab.add_argument("--data-dir")
    ab.add_argument("--quiet", action="store_true")
    ab.set_defaults(func=_cmd_ablate)

    _add_tune_parser(sub)
    _add_doctor_parser(sub)
    _add_use_parsers(sub)
    return p


def _add_train_parser(sub) -> None:
    t = sub.add_parser("train", help="train the best model for a time budget (default), or a preset")
    t.add_argument("--preset", help="preset name or YAML path, trained exactly as written")
    t.add_argument("--budget", metavar="TIME", help="train the most accurate model this machine reaches in TIME "
                   f"(90s, 5m, 1h30m; default {DEFAULT_BUDGET} without --preset): measures the machine, picks a "
                   "recipe and schedule, re-plans if it slows")
    t.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar100", help="with --budget")
    t.add_argument("--plan-only", action="store_true", help="with --budget: measure this machine (a few "
                   "seconds) and print the plan and its alternatives; train and write nothing")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.01 (repeatable)")
    t.add_argument("--out", help="run folder (default runs/PRESET-TIMESTAMP)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run exactly")
    t.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    t.add_argument("--data-dir", help="folder holding cifar-10-batches-py/ or cifar-100-python/")
    t.add_argument("--record", metavar="FILE.jsonl", help="append this run's result record to FILE")
    t.add_argument("--tensorboard", action="store_true",
                   help="TensorBoard event files in RUN_DIR/tensorboard/ (= --set log.tensorboard=true; "
                        "pip install 'cifarlab[tensorboard]')")
    t.add_argument("--quiet", action="store_true")
    t.set_defaults(func=_cmd_train)


def _add_report_parser(sub) -> None:
    r = sub.add_parser("report", help="tables and figures from a run, a study (ablate or tune) or a results folder")
    r.add_argument("path")
    r.add_argument("--table", action="store_true", help="print only the markdown table; write nothing")
    r.add_argument("--data-dir", help="the study's data folder (for the selected model's figures)")
    r.add_argument("--storage", metavar="URL", help="a tune study's storage URL with its password")
    r.set_defaults(func=_cmd_report)


def _add_tune_parser(sub) -> None:
    tu = sub.add_parser("tune", help="hyper-parameter search on Optuna, decided on validation (docs/tune.md)")
    tu.add_argument("spec", help="tune spec YAML: base preset, space, objective, budget")
    tu.add_argument("--out", help="study folder (default: the spec's path without .yaml)")
    tu.add_argument("--storage", metavar="URL", help="shared study, e.g. postgresql://user:pw@host/db: start "
                    "the same command on N machines (default: sqlite in the study folder)")
    tu.add_argument("--heartbeat", type=int, default=10, metavar="S",
                    help="seconds between a trial's heartbeats; silent for 3x that, it is failed and re-queued")
    tu.add_argument("--test-best", action="store_true",
                    help="afterwards, train the best preset once and evaluate it on the test split")
    tu.add_argument("--data-dir")
    tu.add_argument("--quiet", action="store_true")
    tu.set_defaults(func=_cmd_tune)


def _add_eval_parser(sub) -> None:
    e = sub.add_parser("eval", help="evaluate a checkpoint on the test (or val) split")
    e.add_argument("checkpoint")
    e.add_argument("--split", choices=["test", "val"], default="test")
    e.add_argument("--data-dir")
    e.add_argument("--device", default="cpu")
    e.add_argument("--fp32", action="store_true", help="evaluate in fp32 whatever the run's eval precision")
    e.add_argument("--tta", type=int, choices=[0, 1, 2], help="test-time augmentation level (default: the run's)")
    e.set_defaults(func=_cmd_eval)


def _add_bench_parser(sub) -> None:
    b = sub.add_parser("bench", help="time to accuracy: train a preset's fixed schedule on all training "
                                     "images, per seed, timed like the speed records")
    b.add_argument("preset", nargs="?", help="preset name or YAML path (or --budget)")
    b.add_argument("--budget", metavar="TIME", help="benchmark `train --budget TIME` instead of a preset "
                   "(records in budget_runs.jsonl, see --record)")
    b.add_argument("--dataset", choices=["cifar10", "cifar100"], default="cifar100", help="with --budget")
    b.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    b.add_argument("--seed-list", type=int, nargs="+", metavar="SEED", help="these seeds instead")
    b.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--record", metavar="FILE.jsonl",
                   help="append records here (default: benchmarks/results/time_to_accuracy.jsonl, or budget_runs.jsonl with "
                        "--budget, of the source checkout cifarlab runs from; an installed package prints only)")
    b.add_argument("--no-record", action="store_true", help="print only")
    b.add_argument("--keep", metavar="DIR", help="keep each seed's run folder (checkpoint) under DIR")
    b.add_argument("--data-dir")
    b.set_defaults(func=_cmd_bench)


def _add_use_parsers(sub) -> None:
    """predict and export: using a trained model outside cifarlab."""
    pr = sub.add_parser("predict", help="top-k classes for image files or folders (any format Pillow reads)")
    pr.add_argument("checkpoint", help="a cifarlab checkpoint (.pt) or an exported .safetensors file")
    pr.add_argument("inputs", nargs="+", metavar="IMAGE|DIR", help="image files; folders are walked")
    pr.add_argument("--top-k", type=int, default=5)
    pr.add_argument("--fit", choices=["crop", "squash"], default="crop",
                    help="crop: centre square, then resize to 32x32 (default); squash: resize the whole image")
    pr.add_argument("--batch-size", type=int, default=256)
    pr.add_argument("--device", default="cpu")
    fmt = pr.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list, one object per input")
    fmt.add_argument("--csv", action="store_true", help="CSV, one row per (image, rank)")
    pr.set_defaults(func=_cmd_predict)

    ex = sub.add_parser("export", help="write a checkpoint as ONNX or safetensors (pip install 'cifarlab[export]')")
    ex.add_argument("checkpoint")
    ex.add_argument("--format", choices=["onnx", "safetensors"], required=True)
    ex.add_argument("--out", help="output file (default: the checkpoint's name with .onnx / .safetensors)")
    ex.add_argument("--input", choices=["uint8", "float"], default="uint8",
                    help="ONNX input: uint8 RGB 0..255 (default) or float32 RGB 0..1, NCHW (batch, 3, 32, 32)")
    ex.set_defaults(func=_cmd_export)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 130
    except (ConfigError, DataError, CheckpointError, RunError, FileNotFoundError) as e:
        # cifarlab's own errors (and a path the user typed that is not there); any other exception is a
        # bug and shows its traceback
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
