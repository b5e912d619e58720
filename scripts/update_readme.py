"""Regenerate the number blocks of README.md and docs/*.md, the preset headers and the figures from the
committed records (results/, benchmarks/results/, studies/, checkpoints/).

    python scripts/update_readme.py            (also run by `make readme`)
    python scripts/update_readme.py --check    exit 1 and name the files that are not up to date (writes nothing)

Each block sits between <!-- NAME --> and <!-- /NAME --> markers and starts with a line naming this command
and its records; nothing between the markers is typed by hand.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from cifarlab.viz import fmt_ms, markdown_table, results_table, time_range
from cifarlab.io import read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from budget_table import LEGACY_CLASS  # noqa: E402  (the hardware class of records that predate the field)

ROOT = Path(__file__).resolve().parents[1]


def _latest(path: Path, key) -> list[dict]:
    recs = {}
    for r in read_jsonl(path) if path.is_file() else []:
        recs[key(r)] = r
    return list(recs.values())


def speed_block() -> str:
    rows = []
    for f in ("speed.jsonl", "speed_gpu.jsonl"):
        for r in _latest(ROOT / "benchmarks/results" / f, lambda r: (r["hardware"], r["preset"])):
            rows.append([r["preset"], r["model"], r["batch_size"], f"{r['hardware']}, {r['precision']}, torch {r['torch']}",
                         f"{r['bare_step_img_s']:,.0f}", f"{r['train_loop_img_s']:,.0f}",
                         f"{r['loop_vs_bare']:.0%}", r["date"][:10], r["git_commit"]])
    return markdown_table(["preset", "model", "batch", "hardware", "bare step img/s", "cifarlab loop img/s",
                           "loop / bare", "date", "commit"], rows)


def study_block(name: str = "cifar100") -> str:
    d = json.loads((ROOT / "studies" / name / "study.json").read_text())
    exps = [e for e in d["experiments"] if e["test_acc"]]
    rows = [[e["id"], e["description"], fmt_ms(e["train_acc"]), fmt_ms(e["val_acc"]), fmt_ms(e["test_acc"]),
             "—" if e["delta_val"] is None else f"{e['delta_val']:+.2f} ({e['verdict']})",
             "—" if e["delta_test"] is None else f"{e['delta_test']:+.2f}",
             time_range(e["train_time_s"])] for e in exps]
    hw = sorted({e["hardware"] for e in exps})
    seeds = sorted({len(e["seeds"]) for e in exps})
    return (markdown_table(["exp", "change", "train %", "val %", "test %", "Δ val (verdict)", "Δ test",
                            "time / run"], rows)
            + f"\n\n{', '.join(hw)}, seeds per experiment: {', '.join(map(str, seeds))} (mean ± std), "
              f"torch {exps[0]['torch']}, run {min(e['date'] for e in exps)[:10]}; full table, observations "
              f"and figures in [studies/{name}/study.md](../studies/{name}/study.md).")


def checkpoint_block() -> str:
    s = json.loads((ROOT / "checkpoints/c100-cnn-aug.json").read_text())
    ev = _latest(ROOT / "benchmarks/results/eval_time.jsonl", lambda r: r["checkpoint"])
    ev_txt = f"; `cifarlab eval` took {ev[-1]['time_s']:.0f} s ({ev[-1]['hardware']})" if ev else ""
    return (f"Recorded at training: test top-1 **{s['test_acc']:.2f}%**, top-5 {s['test_top5']:.2f}%, loss "
            f"{s['test_loss']:.4f} (seed {s['seed']}, best epoch {s['best_epoch']} of {s['epochs_run']} by "
            f"validation accuracy {s['val_acc']:.2f}%). Retrain it with `cifarlab train --preset {s['preset']} "
            f"--set train.seed={s['seed']}`, which took {s['total_time_s'] / 60:.0f} min on "
            f"{s['hardware']} ({s['precision']}, torch {s['torch']}, commit {s['git_commit']}, "
            f"{s['date'][:10]}){ev_txt}.")


def doctor_block() -> str:
    recs = _latest(ROOT / "benchmarks/results/doctor_speed.jsonl", lambda r: r["pipeline"])
    return markdown_table(["pipeline", "wall time", "CPU time", "errors found", "hardware", "machine busy", "date"],
                          [[r["pipeline"], f"{r['time_s']:.1f} s", f"{r['cpu_s']:.1f} s" if "cpu_s" in r else "—",
                            ", ".join(r["errors"]) or "none", r["hardware"],
                            {True: "yes (wall time stretched)", False: "no"}.get(r.get("contended"), "not recorded"),
                            r["date"][:10]] for r in recs])


def _doctor_run_summary(rec: dict) -> str:
    s = rec["summary"]
    as_errors = sum(e["expect"] in e["errors"] for e in rec["entries"] if e["expect"])
    return markdown_table(["real bugs reported as errors (with their code)", "false errors on correct scripts",
                           "warnings on correct scripts", "longest audit", "CPU, threads", "load (1 min) start-end",
                           "date"],
                          [[f"{as_errors} / {s['buggy']}", f"{s['false_errors']} on {s['correct']} scripts",
                            str(s["warnings_on_correct"]), f"{s['max_time_s']:.0f} s wall",
                            f"{s['cpu_capability']}, {s['torch_threads']}",
                            " - ".join(f"{v:g}" for v in s["load_1min_start_end"]), s["date"][:10]]])


def doctor_summary_block() -> str:
    """README: the corpus result of `doctor run` in one row (per-script rows are in docs/results.md)."""
    path = ROOT / "benchmarks/results/doctor_run_corpus.json"
    if not path.is_file():
        return "(no run recorded yet: `python benchmarks/doctor_run_corpus.py`)"
    return (_doctor_run_summary(json.loads(path.read_text())) + "\n\n`python benchmarks/doctor_run_corpus.py`"
            " on the plain-script corpus in tests/doctor_scripts/; per script: [docs/results.md](docs/results.md#doctor).")


def doctor_run_block(name: str = "doctor_run_corpus") -> str:
    """`doctor run` on a plain-script corpus: the summary, then each script's result."""
    path = ROOT / f"benchmarks/results/{name}.json"
    if not path.is_file():
        return "(no run recorded yet: `python benchmarks/doctor_run_corpus.py`)"
    rec = json.loads(path.read_text())
    entries = rec["entries"]
    head = _doctor_run_summary(rec)
    rows = [[e["name"], e["expect"] or "(correct)", ", ".join(e["errors"]) or "none",
             ", ".join(e["warnings"]) or "none",
             {True: "yes", False: "**no**", None: "—"}[e.get("caught")], f"{e['time_s']:.0f} s"] for e in entries]
    return head + "\n\n" + markdown_table(["script", "its bug", "errors", "warnings", "caught", "wall"], rows)


def doctor_example_block() -> str:
    """The 10-line example script and the doctor's real report on it (benchmarks/doctor_example.py)."""
    path = ROOT / "benchmarks/results/doctor_example.json"
    if not path.is_file():
        return "(no run recorded yet: `python benchmarks/doctor_example.py`)"
    rec = json.loads(path.read_text())
    script = (ROOT / "examples/buggy_train.py").read_text().rstrip("\n")
    return (f"```python\n# examples/buggy_train.py\n{script}\n```\n\n```console\n$ {rec['command']}\n{rec['output']}\n```"
            f"\n\n{rec['hardware']}, torch {rec['torch']}, {rec['date'][:10]}; the lines before the report are the "
            "script's own output (its shortened run). `cifarlab doctor explain CODE` gives a finding's fix.")


def doctor_corpus_block() -> str:
    path = ROOT / "benchmarks/results/doctor_corpus.json"
    if not path.is_file():
        return "(no corpus run recorded yet: `python benchmarks/doctor_corpus.py`)"
    s = json.loads(path.read_text())["summary"]
    return (markdown_table(["real bugs caught (with their code)", "false errors on correct pipelines",
                            "max per pipeline", "hardware", "machine busy", "date, commit"],
                           [[f"{s['caught']} / {s['buggy']}",
                             f"{s['false_alarms']} on {s['correct_with_false_alarm']} of {s['correct']}",
                             f"{s['max_cpu_s']:.0f} CPU s, {s['max_time_s']:.0f} s wall", s["hardware"],
                             "yes (wall times stretched)" if s["contended"] else "no",
                             f"{s['date'][:10]}, {s['git_commit']}"]]))


def _tta_groups() -> list[dict]:
    """time_to_accuracy.jsonl grouped by (preset, recipe hash, hardware): mean ± std over seeds."""
    from cifarlab.viz import mean_std

    groups: dict[tuple, list[dict]] = {}
    for r in _latest(ROOT / "benchmarks/results/time_to_accuracy.jsonl",
                     lambda r: (r["preset"], r["config_hash"], r["hardware"], r["seed"])):
        groups.setdefault((r["preset"], r["recipe_hash"], r["hardware"]), []).append(r)
    out = []
    for (preset, h, hw), recs in groups.items():
        acc, clock = mean_std([r["test_acc"] for r in recs]), mean_std([r["clock_s"] for r in recs])
        out.append({"preset": preset, "hash": h, "hardware": hw, "recs": recs, "acc": acc, "clock": clock,
                    "device": "gpu" if recs[0]["device"] == "cuda" else "cpu"})
    return sorted(out, key=lambda g: (g["recs"][0]["dataset"], g["clock"][0]))


# issue 11's CIFAR-100 targets: (seconds, test top-1 %)
TARGETS = {"cpu": [(90, 55.47), (300, 65), (900, 70), (3600, 75)], "gpu": [(2.5, 70), (6, 75), (15, 80)]}


def _current_recipe(preset: str) -> str | None:
    """The bench recipe hash of a preset as it stands now (None when the preset no longer exists)."""
    from cifarlab.bench import bench_config
    from cifarlab.config import PRESET_DIR, load_preset

    return bench_config(load_preset(preset), 0).hash() if (PRESET_DIR / f"{preset}.yaml").is_file() else None


def hardware_class(rec: dict) -> str:
    """The hardware class a record was measured on: device kind, the recorded machine name and precision.
    On a CPU, bf16 is what `train.precision=auto` picks only where the CPU has native bf16 (AVX512-BF16 or
    AMX, runtime.cpu_supports_bf16); elsewhere a CPU trains in fp32 and these times do not carry over."""
    if rec["device"] == "cuda":
        return f"GPU: {rec['hardware']}"
    native = " (native bf16: AVX512-BF16 or AMX)" if rec["precision"] == "bf16" else ""
    return f"CPU: {rec['hardware']}, {rec['precision']}{native}"


def _by_class(groups: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for g in groups:
        out.setdefault(hardware_class(g["recs"][-1]), []).append(g)
    return out


def _other_load(g: dict) -> str:
    other = [r["other_cpu_frac"] for r in g["recs"] if r.get("other_cpu_frac") is not None]
    if not other:
        return "not recorded"
    lo, hi = f"{min(other):.0%}", f"{max(other):.0%}"
    return lo if lo == hi else f"{lo}–{hi}"


def _per_seed(g: dict) -> str:
    return ", ".join(f"{r['test_acc']:.2f}% / {r['clock_s']:.0f} s" for r in sorted(g["recs"], key=lambda r: r["seed"]))


def time_to_accuracy_block() -> str:
    """Every benchmarked recipe in one table per hardware class (with the peer runs measured side by side
    there), and one CIFAR-100 figure per class: current recipes only, one machine and one clock each."""
    from cifarlab.viz import plot_time_to_accuracy

    parts, extra = [], []
    classes = _by_class(_tta_groups())
    side = side_by_side_rows()
    for cls in dict.fromkeys(c for c, _ in side if c not in classes):  # peers measured where no preset was
        extra.append(f"### {cls}\n\n" + markdown_table(TTA_COLUMNS, [row for c, row in side if c == cls]))
    for cls, gs in classes.items():
        rows = []
        for g in gs:
            r0 = g["recs"][-1]
            name = f"`{g['preset']}` ({g['hash'][:6]})" + ("" if _current_recipe(g["preset"]) == g["hash"] else ", an earlier recipe")
            rows.append([r0["dataset"], name, r0["epochs"], fmt_ms([r["test_acc"] for r in g["recs"]]),
                         fmt_ms([r["test_acc_no_tta"] for r in g["recs"]]), fmt_ms([r["clock_s"] for r in g["recs"]], 1),
                         fmt_ms([r["wall_s"] for r in g["recs"]], 1), _per_seed(g), _other_load(g),
                         f"{r0['date'][:10]} {r0['git_commit']}"])
        rows += [row for c, row in side if c == cls]
        fig = ""
        if WRITE_FIGURES and any(g["recs"][0]["dataset"] == "cifar100" for g in gs):
            device = gs[0]["device"]
            pts = [{"label": g["preset"], "time_s": g["clock"][0], "acc": g["acc"][0], "time_sd": g["clock"][1],
                    "acc_sd": g["acc"][1], "kind": "cifarlab"} for g in gs
                   if g["recs"][0]["dataset"] == "cifar100" and _current_recipe(g["preset"]) == g["hash"]]
            path = ROOT / f"benchmarks/results/{_figure_name(gs)}"
            plot_time_to_accuracy(pts, path, f"CIFAR-100, {gs[0]['recs'][-1]['hardware']} (TTA on)", TARGETS[device])
        if any(g["recs"][0]["dataset"] == "cifar100" for g in gs):
            fig = (f"\n\n![CIFAR-100 time to accuracy, {cls}](../benchmarks/results/{_figure_name(gs)})"
                   " (current recipes only; grey corners: the targets)")
        parts.append(f"### {cls}, torch {gs[0]['recs'][-1]['torch']}\n\n" + markdown_table(TTA_COLUMNS, rows) + fig)
    return "\n\n".join(parts + extra)


def _figure_name(gs: list[dict]) -> str:
    """One figure file per hardware class, named after the machine."""
    r0 = gs[0]["recs"][-1]
    slug = re.sub(r"[^a-z0-9]+", "-", r0["hardware"].lower().replace("(r)", "")).strip("-")
    return f"time_to_accuracy_{gs[0]['device']}_{slug}.png"


TTA_COLUMNS = ["data", "recipe", "epochs", "test % with TTA", "without TTA", "time s", "wall s",
               "per seed (test with TTA / time)", "other CPU load", "date, commit"]


def peers_block() -> str:
    """Published peer numbers from benchmarks/results/peers.json: only points with a source; never measured here."""
    path = ROOT / "benchmarks/results/peers.json"
    pts = [p for p in json.loads(path.read_text())["points"] if p.get("source_url")] if path.is_file() else []
    if not pts:
        return "(no published points)"
    return markdown_table(["published result (not measured here)", "data", "test top-1 %", "time s", "hardware",
                           "what the number measures", "source"],
                          [[p["label"], p["dataset"], f"{p['test_acc']:.2f}", f"{p['time_s']:.2f}", p["hardware"],
                            p["measures"], f"<{p['source_url']}>"] for p in pts])


def side_by_side_rows() -> list[tuple[str, list]]:
    """Peer runs measured here with the peer's own package (benchmarks/airbench_side_by_side.py), mean ± std
    over runs per (peer, hardware), as (hardware class, row) for the time-to-accuracy tables."""
    path = ROOT / "benchmarks/results/airbench_side_by_side.jsonl"
    groups: dict[tuple, list[dict]] = {}
    for r in read_jsonl(path) if path.is_file() else []:
        groups.setdefault((r["peer"], r["hardware"], r["dataset"]), []).append(r)
    return [(f"GPU: {hw}",
             [ds, f"{peer} (peer, its own package, side by side)", "", fmt_ms([r["test_acc"] for r in recs]), "",
              fmt_ms([r["clock_s"] for r in recs], 2), "", "", "", f"{recs[-1]['date'][:10]} {recs[-1]['git_commit']}"])
            for (peer, hw, ds), recs in groups.items()]


def published_fast_block() -> str:
    """The published time-to-accuracy models: seed 0 of a bench run, with their fp32 check numbers and the
    data verification recorded at training."""
    rows = []
    for path in sorted((ROOT / "checkpoints").glob("*.json")):
        s = json.loads(path.read_text())
        if "check" not in s:
            continue
        c = s["check"]
        rows.append([f"`checkpoints/{path.stem}.pt`", s["dataset"], s.get("data_verification", "not recorded"),
                     f"{s['test_acc']:.2f}% ({s['eval_precision']}, TTA {s['tta']}); "
                     f"{s['test_acc_no_tta']:.2f}% without TTA", f"{c['test_acc']:.2f}% / {c['test_loss']:.4f}",
                     f"`{c['command']}`", f"`cifarlab bench {s['preset']} --seed-list {s['seed']} --keep runs/bench`",
                     f"{(ROOT / 'checkpoints' / (path.stem + '.pt')).stat().st_size / 2**20:.1f} MB"])
    return ("Seed 0 of each benchmark; no selection among seeds.\n\n"
            + markdown_table(["checkpoint", "data", "data check at training", "test at training",
                              "fp32, no TTA check (top-1 / loss)", "reproduce (CI runs this)", "retrain", "size"], rows))


def data_note_block() -> str:
    """Which known non-official dataset copies `make data` labels (scripts/note_data_copy.py)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from note_data_copy import KNOWN_COPIES

    return "\n".join(f"- {name}: the copy with train/test image-array SHA-256 `{tr[:12]}…`/`{te[:12]}…` is "
                      f"labelled \"{note}\"; runs on it record `data_verification: unverified: …`."
                      for (name, tr, te), note in KNOWN_COPIES.items())


def defaults_block() -> str:
    """What `make train`, `make train-preset` and a bare `cifarlab train` run today (the Makefile's BUDGET and
    PRESET, cli.DEFAULT_BUDGET)."""
    from cifarlab.cli import DEFAULT_BUDGET

    make = (ROOT / "Makefile").read_text()
    budget = re.search(r"^BUDGET\s*\?=\s*(\S+)", make, re.M).group(1)
    preset = re.search(r"^PRESET\s*\?=\s*(\S+)", make, re.M).group(1)
    return (f"- `make train` runs `cifarlab train --dataset cifar100 --budget {budget}`: it measures this machine, "
            f"picks the recipe and schedule expected to be most accurate in {budget} of wall time, and re-plans if the "
            f"machine slows; `make train BUDGET=15m` asks for another time. Then `scripts/vs_seed.py` compares the "
            f"run with the seed project's result.\n"
            f"- `make train-preset` trains the named preset `{preset}` (`PRESET=NAME` for another) exactly as written.\n"
            f"- `cifarlab train` without `--preset` runs the same budgeted job (`--budget {DEFAULT_BUDGET}`) into "
            f"`runs/cifar100-budget-<date-time>`" + (" (the same default as `make train`)." if DEFAULT_BUDGET == budget
                                                     else f"; note that `make train` uses {budget}."))


def tuning_command(rec: dict) -> str:
    """The `cifarlab train` command that rebuilds a tuning run's config under today's presets (its stored
    flat config diffed against the preset; the config hash is checked, so a stale command cannot render)."""
    from cifarlab.config import flatten, load_preset, make_config

    now = flatten(load_preset(rec["preset"]).to_dict())
    sets = [f"{k}={rec['config'][k]}" for k, v in now.items() if k in rec["config"] and rec["config"][k] != v]
    if make_config(rec["preset"], sets).hash() != rec["config_hash"]:
        raise SystemExit(f"tuning.jsonl: no command under today's {rec['preset']} preset rebuilds {rec['config_hash']}")
    return f"cifarlab train --preset {rec['preset']} " + " ".join(f"--set {x}" for x in sets)


def tuning_block() -> str:
    """The single runs behind the time-to-accuracy presets' settings (benchmarks/results/tuning.jsonl).
    Each run held out 5k images for validation, and, as every `cifarlab train` does, also evaluated the
    test split once at the end; the test column shows that number."""
    recs = read_jsonl(ROOT / "benchmarks/results/tuning.jsonl")
    studied = study_trials_by_hash()
    rows = [[r["question"], f"`{tuning_command(r)}`", f"{r['val_acc_last']:.2f}",
             f"{r['test_acc']:.2f}" if r.get("test_acc") is not None else "—", f"{r['train_s']:.0f}",
             f"{r['hardware']}, torch {r['torch']}, {r['date'][:10]}",
             "; ".join(studied.get(r["config_hash"], [])) or "—"] for r in recs]
    return markdown_table(["question", "command (seed 0)", "val % (TTA)", "test % (TTA)",
                           "train s (other jobs running)", "machine", "re-run by a tune study (val %)"], rows)


def study_trials_by_hash() -> dict[str, list[str]]:
    """config hash -> the complete trials of the committed tune studies that trained that config
    (studies/*/trials.jsonl): where one exists, the --budget table takes the study's figure."""
    from budget_table import complete_study_trials

    out: dict[str, list[str]] = {}
    for path, t, last in complete_study_trials():
        a = t["user_attrs"]
        if a.get("config_hash"):
            out.setdefault(a["config_hash"], []).append(
                f"[{path.parent.name}](../{path.parent.relative_to(ROOT)}/tune.md) trial {t['number']}: "
                f"{a[f'epoch_{last}']['val_acc']:.2f} ({a.get('hardware', {}).get('hw_class', '?')})")
    return out


def _realtime(r: dict) -> bool | None:
    if "sched_policy" in r:
        return r["sched_policy"] in ("SCHED_FIFO", "SCHED_RR")
    return r.get("realtime_priority")


def _paused(r: dict):
    v = r.get("others_paused")
    return None if v is None else (f"yes ({v})" if v else "no")


def _field(recs: list[dict], fn) -> str:
    vals = {fn(r) for r in recs}
    shown = {"not recorded" if v is None else "yes" if v is True else "no" if v is False else str(v) for v in vals}
    return ", ".join(sorted(shown))


def _condition_row(name: str, recs: list[dict], hardware: str) -> list[str]:
    return [name, hardware, _other_load({"recs": recs}) if any("other_cpu_frac" in r for r in recs) else "not recorded",
            _field(recs, _realtime), _field(recs, lambda r: r.get("nice")), _field(recs, _paused)]


def conditions_block() -> str:
    """What each timing record states about the machine while it ran (fields only, never prose)."""
    from cifarlab.budget import fmt_duration

    rows = [_condition_row(f"time_to_accuracy: `{g['preset']}` ({g['hash'][:6]})", g["recs"], hardware_class(g["recs"][-1]))
            for g in _tta_groups() if _current_recipe(g["preset"]) == g["hash"]]
    rows += [_condition_row(f"budget_runs: {dataset} {fmt_duration(b)}", rs, rs[-1]["hardware"])
             for (dataset, _, b), rs in _budget_groups().items()]
    for f, key in (("speed.jsonl", "preset"), ("speed_gpu.jsonl", "preset"), ("budget_throughput.jsonl", "preset"),
                   ("budget_val.jsonl", "preset"), ("fp32_step.jsonl", "benchmark")):
        by: dict[tuple, list[dict]] = {}
        for r in _latest(ROOT / "benchmarks/results" / f, lambda r: (r["hardware"], r[key], r.get("config_hash"),
                                                                       r.get("memory_format"))):
            by.setdefault((r["hardware"], r[key]), []).append(r)
        rows += [_condition_row(f"{f.split('.')[0]}: `{k}`", rs, hw) for (hw, k), rs in by.items()]
    return markdown_table(["record", "hardware", "other CPU load (other_cpu_frac)", "real-time priority", "nice",
                           "other processes paused"], rows)


# issue 17's CIFAR-100 --budget targets per hardware class: (budget s, test top-1 %)
BUDGET_TARGETS = {"cpu-avx2": [(90, 45), (300, 55.47), (900, 63), (3600, 70)],
                  "cpu-amx-bf16": [(90, 59.5), (300, 67), (900, 72.5), (3600, 76)],
                  "cpu-avx512-bf16": [(90, 59.5), (300, 67), (900, 72.5), (3600, 76)]}


def overview_block() -> str:
    """README's one results table: per hardware class, each budget of `cifarlab bench --budget` and each
    preset of `cifarlab bench PRESET` as it stands now (mean ± std over seeds)."""
    from cifarlab.budget import fmt_duration

    rows = []
    for (dataset, cls, budget_s), rs in _budget_groups().items():
        rows.append([f"{cls}, {rs[-1]['precision']}", f"`--budget {fmt_duration(budget_s)}`", dataset,
                     fmt_ms([r["test_acc"] for r in rs]), fmt_ms([r["test_acc_no_tta"] for r in rs]),
                     f"≤ {max(r['wall_s'] for r in rs):.0f}", len(rs)])
    for g in _tta_groups():
        if _current_recipe(g["preset"]) != g["hash"]:
            continue
        r0 = g["recs"][-1]
        cls = r0.get("hw_class") or LEGACY_CLASS.get((r0["hardware"], r0["precision"]), r0["hardware"])
        rows.append([f"{cls}, {r0['precision']}", f"`{g['preset']}`", r0["dataset"],
                     fmt_ms([r["test_acc"] for r in g["recs"]]), fmt_ms([r["test_acc_no_tta"] for r in g["recs"]]),
                     fmt_ms([r["clock_s"] for r in g["recs"]], 0), len(g["recs"])])
    return markdown_table(["hardware class", "job", "data", "test top-1 % (TTA)", "without TTA", "time s", "seeds"],
                          rows) + (
        "\n\nMean ± std over seeds (a single number: one seed); `cifarlab bench --budget B --seeds N` (time: the whole "
        "budgeted run, at most) and `cifarlab bench PRESET --seeds N` (time: training + init + final evaluation). Per seed, machines, load "
        "and dates: [docs/results.md](docs/results.md); how times were taken: "
        "[docs/benchmarking.md](docs/benchmarking.md).") + budget_figure()


def _budget_groups() -> dict[tuple, list[dict]]:
    """(dataset, hardware class, budget) -> its `cifarlab bench --budget` records, seeds in order."""
    recs = _latest(ROOT / "benchmarks/results/budget_runs.jsonl",
                   lambda r: (r["dataset"], r["hw_class"], r["isa_emulated"], r["budget_s"], r["seed"]))
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        cls = r["hw_class"] + (" (emulated)" if r["isa_emulated"] else "")
        groups.setdefault((r["dataset"], cls, r["budget_s"]), []).append(r)
    return {k: sorted(v, key=lambda r: r["seed"]) for k, v in sorted(groups.items())}


def budget_figure() -> str:
    """The accuracy-vs-budget figure (CIFAR-100, one line per hardware class, with the issue's targets)."""
    from cifarlab.viz import mean_std, plot_accuracy_vs_budget

    lines: dict[str, list[dict]] = {}
    for (dataset, cls, budget_s), rs in _budget_groups().items():
        if dataset == "cifar100":
            m, sd = mean_std([r["test_acc"] for r in rs])
            lines.setdefault(cls, []).append({"budget_s": budget_s, "acc": m, "acc_sd": sd})
    if not lines:
        return ""
    if WRITE_FIGURES:
        plot_accuracy_vs_budget(lines, ROOT / "benchmarks/results/accuracy_vs_budget.png",
                                "CIFAR-100: cifarlab train --budget, by hardware class",
                                {c: BUDGET_TARGETS.get(c.split(" ")[0], []) for c in lines})
    return "\n\n![CIFAR-100 accuracy against the budget, by hardware class](benchmarks/results/accuracy_vs_budget.png)"


def hardware_classes_block() -> str:
    """`cifarlab bench --budget` records by hardware class: what each budget reached, and whether every seed
    ended inside it (+5%)."""
    from cifarlab.budget import fmt_duration

    groups = _budget_groups()
    if not groups:
        return "No `cifarlab bench --budget` record yet."
    rows = []
    for (dataset, cls, budget_s), rs in groups.items():
        walls = [r["wall_s"] for r in rs]
        rows.append([dataset, cls, fmt_duration(budget_s), fmt_ms([r["test_acc"] for r in rs]),
                     fmt_ms([r["test_acc_no_tta"] for r in rs]),
                     ", ".join(sorted({f"{r['recipe']} x{r['steps_run'] * r['batch_size'] / r['n_train']:.2f} ep"
                                       for r in rs})),
                     f"{max(walls):.0f} s ({max(walls) / budget_s:.0%})", ", ".join(f"{r['test_acc']:.2f}" for r in rs),
                     _other_load({"recs": rs}), f"{rs[-1]['hardware']}, torch {rs[-1]['torch']}, {rs[-1]['date'][:10]}"])
    return markdown_table(["data", "hardware class", "budget", "test top-1 % (mean ± std)", "without TTA",
                           "recipe chosen, epochs run", "longest wall (of budget)", "per seed", "other CPU load",
                           "machine"], rows) + (
        "\n\n`cifarlab bench --budget B --dataset cifar100 --seeds N` (each record holds its command) → "
        "benchmarks/results/budget_runs.jsonl. Wall = "
        "the budget's clock: data loading, calibration, training and the final test evaluation. A class marked "
        "emulated ran with `ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` on a newer CPU.")


def tune_targets_block() -> str:
    """benchmarks/tune_targets.py's records: each part of each run, with the targets it met."""
    rows = []
    for r in read_jsonl(ROOT / "benchmarks/results/tune_targets.jsonl") if (
            ROOT / "benchmarks/results/tune_targets.jsonl").is_file() else []:
        st = r["setup"]
        setup = (f"{st['images']} images, {st['epochs']} epochs, pruner {st.get('pruner', 'median')}, "
                 f"validation TTA {st.get('val_tta', 'preset')}")
        if r["part"] == "search":
            result = (f"{r['counted']} trials, {r['pruned']} pruned ({r['pruned_frac']:.0%}); best val {r['best_val']:.2f}% "
                      f"(trial {r['best_trial']}) vs the preset's " + (f"{r['preset_val']:.2f}%" if r["preset_val"] is not None
                                                              else "(pruned)") + f"; {r['wall_s']:.0f} s of "
                      f"{r['wall_budget_s']:.0f}")
        else:
            result = (f"{r['counted']} trials in {r['pair_s']:.0f} s vs {r['solo_trials']} in {r['solo_s']:.0f} s "
                      f"alone: {r['throughput_ratio']:.2f}x; lost {r['lost']}, duplicated {r['duplicated']}, "
                      f"retried {r['retries']}")
        met = ", ".join(f"{k} {'yes' if v else '**no**'}" for k, v in r["targets_met"].items())
        rows.append([r["date"][:10], r["part"], setup, result, met, f"`{r['command']}`"])
    return markdown_table(["date", "part", "setup", "result", "targets met", "command"], rows) if rows else \
        "(no record yet: `python benchmarks/tune_targets.py`)"


# name -> (function, the records it reads)
BLOCKS = {
    "hardware_classes": (hardware_classes_block, "benchmarks/results/budget_runs.jsonl"),
    "overview": (overview_block, "benchmarks/results/budget_runs.jsonl and time_to_accuracy.jsonl"),
    "tune_targets": (tune_targets_block, "benchmarks/results/tune_targets.jsonl"),
    "doctor_summary": (doctor_summary_block, "benchmarks/results/doctor_run_corpus.json"),
    "defaults": (defaults_block, "Makefile and cifarlab.cli.DEFAULT_BUDGET"),
    "data_note": (data_note_block, "scripts/note_data_copy.py"),
    "time_to_accuracy": (time_to_accuracy_block,
                         "benchmarks/results/time_to_accuracy.jsonl and airbench_side_by_side.jsonl"),
    "checkpoints": (published_fast_block, "checkpoints/*.json"),
    "peers": (peers_block, "benchmarks/results/peers.json"),
    "conditions": (conditions_block, "benchmarks/results/*.jsonl"),
    "tuning": (tuning_block, "benchmarks/results/tuning.jsonl"),
    "results": (lambda: results_table(ROOT / "results"), "results/*.jsonl"),
    "checkpoint": (checkpoint_block, "checkpoints/c100-cnn-aug.json and benchmarks/results/eval_time.jsonl"),
    "recipe": (lambda: study_block("c100-cnn-aug"), "studies/c100-cnn-aug/study.json"),
    "study": (study_block, "studies/cifar100/study.json"),
    "speed": (speed_block, "benchmarks/results/speed*.jsonl"),
    "doctor_run": (doctor_run_block, "benchmarks/results/doctor_run_corpus.json"),
    "doctor_heldout": (lambda: doctor_run_block("doctor_run_heldout"), "benchmarks/results/doctor_run_heldout.json"),
    "doctor_example": (doctor_example_block, "benchmarks/results/doctor_example.json"),
    "doctor_corpus": (doctor_corpus_block, "benchmarks/results/doctor_corpus.json"),
    "doctor": (doctor_block, "benchmarks/results/doctor_speed.jsonl"),
}
PAGES = ["README.md", "docs/results.md", "docs/tuning.md", "docs/benchmarking.md", "docs/tune.md"]
WRITE_FIGURES = True


def preset_time_header(text: str, stem: str) -> str:
    """The `# time:` header line of a preset that has a results file, from that file."""
    recs = _latest(ROOT / "results" / f"{stem}.jsonl", lambda r: r["seed"])
    if not recs:
        return text
    hw = sorted({f"{r['hardware']}, {r['precision']}" for r in recs})
    line = (f"# time:     {time_range([r['total_time_s'] for r in recs])} per run on {'; '.join(hw)} (n={len(recs)}, "
            f"results/{stem}.jsonl)")
    return re.sub(r"^# time: .*$", lambda m: line, text, count=1, flags=re.M)


def preset_measured_header(text: str, stem: str, groups: dict[str, dict]) -> str:
    """A `# measured:` header line in each preset benchmarked by `cifarlab bench` with its current recipe:
    mean ± std test top-1 with and without TTA, time, per-seed values and the other CPU load, from
    benchmarks/results/time_to_accuracy.jsonl. A preset whose recipe changed since its benchmark loses it."""
    new = re.sub(r"^# measured: .*\n", "", text, flags=re.M)
    g = groups.get(stem)
    if g is None:
        return new
    r0 = g["recs"][-1]
    tta = r0["tta"] > 0
    line = (f"# measured: {fmt_ms([r['test_acc'] for r in g['recs']])}% test top-1 "
            + (f"with TTA ({fmt_ms([r['test_acc_no_tta'] for r in g['recs']])}% without) " if tta else "")
            + f"in {fmt_ms([r['clock_s'] for r in g['recs']], 0)} s (train + init + final eval), mean ± std of "
            f"{len(g['recs'])} seeds; per seed {_per_seed(g)}; other CPU load {_other_load(g)}; "
            f"{hardware_class(r0)}, torch {r0['torch']}, {r0['date'][:10]}; benchmarks/results/time_to_accuracy.jsonl")
    return re.sub(r"^(# expected: .*)$", lambda m: m.group(1) + "\n" + line, new, count=1, flags=re.M)


def render_page(text: str) -> str:
    for name, (fn, source) in BLOCKS.items():
        pat = re.compile(rf"(<!-- {name} -->\n)(?:.*?\n)?(<!-- /{name} -->)", re.S)
        if pat.search(text):
            block = (f"_Generated by `make readme` (`python scripts/update_readme.py`) from {source}; "
                     f"do not edit._\n\n" + fn())
            text = pat.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text)
    return text


def rendered() -> dict[Path, tuple[str, str]]:
    """path -> (current text, regenerated text) for every preset and page."""
    from cifarlab.config import PRESET_DIR

    groups = {g["preset"]: g for g in _tta_groups() if _current_recipe(g["preset"]) == g["hash"]}
    out = {}
    for preset in sorted(PRESET_DIR.glob("*.yaml")):
        text = preset.read_text()
        out[preset] = (text, preset_measured_header(preset_time_header(text, preset.stem), preset.stem, groups))
    for page in PAGES:
        path = ROOT / page
        text = path.read_text()
        out[path] = (text, render_page(text))
    return out


def main(argv: list[str]) -> int:
    global WRITE_FIGURES
    check = "--check" in argv
    WRITE_FIGURES = not check
    stale = []
    for path, (old, new) in rendered().items():
        if new != old:
            stale.append(path)
            if not check:
                path.write_text(new)
    for path in stale:
        print(f"{'stale' if check else 'updated'}: {path.relative_to(ROOT)}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
