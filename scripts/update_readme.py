"""Regenerate the README's number blocks from the committed results files.

    python scripts/update_readme.py        (also run by `make readme`)

Each block sits between <!-- NAME --> and <!-- /NAME --> markers; nothing between them is typed by hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from cifarlab.viz import fmt_ms, markdown_table, results_table, time_range
from cifarlab.io import read_jsonl

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
              f"and figures in [studies/{name}/study.md](studies/{name}/study.md).")


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


def time_to_accuracy_block() -> str:
    """Table of every benchmarked preset + peers, and one accuracy-vs-time figure per device."""
    from cifarlab.viz import mean_std, plot_time_to_accuracy

    groups = _tta_groups()
    rows = []
    for g in groups:
        r0 = g["recs"][-1]
        other = [r["other_cpu_frac"] for r in g["recs"] if r.get("other_cpu_frac") is not None]
        current = _current_recipe(g["preset"]) == g["hash"]
        name = f"`{g['preset']}` ({g['hash'][:6]})" + ("" if current else ", an earlier recipe")
        rows.append([r0["dataset"], name, r0["epochs"], fmt_ms([r["test_acc"] for r in g["recs"]]),
                     fmt_ms([r["test_acc_no_tta"] for r in g["recs"]]), fmt_ms([r["clock_s"] for r in g["recs"]], 1),
                     fmt_ms([r["train_s"] for r in g["recs"]], 1), fmt_ms([r["wall_s"] for r in g["recs"]], 1),
                     len(g["recs"]), f"{g['hardware']}, {r0['precision']}, torch {r0['torch']}",
                     f"{max(other):.0%}" if other else "?", f"{r0['date'][:10]} {r0['git_commit']}"])
    peers = json.loads((ROOT / "benchmarks/results/peers.json").read_text())["points"]
    for p in peers:
        rows.append([p["dataset"], p["label"] + " (" + ("peer" if p["kind"] == "peer" else "reference") + ")",
                     "", f"{p['test_acc']:.1f}", "", f"{p['time_s']:.1f}", "", "", "", p["hardware"], "", p["how"][:60] + "…"])
    rows += side_by_side_rows()
    figs = []
    for device in ("cpu", "gpu"):
        pts = [{"label": g["preset"], "time_s": g["clock"][0], "acc": g["acc"][0], "time_sd": g["clock"][1],
                "acc_sd": g["acc"][1], "kind": "cifarlab"} for g in groups
               if g["device"] == device and g["recs"][0]["dataset"] == "cifar100"
               and _current_recipe(g["preset"]) == g["hash"]]  # the table keeps earlier recipes too
        if device == "cpu":  # cifarlab's replay of the seed recipe (its own results file)
            seed = read_jsonl(ROOT / "results/c100-cnn-aug.jsonl") if (ROOT / "results/c100-cnn-aug.jsonl").is_file() else []
            if seed:
                acc, t = mean_std([r["test_acc"] for r in seed]), mean_std([r["total_time_s"] for r in seed])
                pts.append({"label": "c100-cnn-aug (seed recipe)", "time_s": t[0], "acc": acc[0], "time_sd": t[1],
                            "acc_sd": acc[1], "kind": "seed"})
        pts += [{"label": p["label"], "time_s": p["time_s"], "acc": p["test_acc"], "kind": p["kind"]}
                for p in peers if p["device"] == device and p["dataset"] == "cifar100"]
        path = ROOT / f"benchmarks/results/time_to_accuracy_{device}.png"
        plot_time_to_accuracy(pts, path, f"CIFAR-100 time to accuracy, {device.upper()}", TARGETS[device])
        figs.append(f"![CIFAR-100 on the {device.upper()}]({path.relative_to(ROOT)})")
    return (markdown_table(["data", "recipe", "epochs", "test % (TTA)", "test % (no TTA)", "clock s", "train s",
                            "wall s", "n", "hardware", "other CPU use", "date, commit"], rows)
            + "\n\n" + " ".join(figs) + "\n\n" + published_fast_block())


def side_by_side_rows() -> list[list]:
    """Peer runs measured here with the peer's own package (benchmarks/airbench_side_by_side.py), mean ± std
    over runs per (peer, hardware), as rows of the time-to-accuracy table."""
    path = ROOT / "benchmarks/results/airbench_side_by_side.jsonl"
    groups: dict[tuple, list[dict]] = {}
    for r in read_jsonl(path) if path.is_file() else []:
        groups.setdefault((r["peer"], r["hardware"], r["dataset"]), []).append(r)
    return [[ds, f"{peer} (peer, its own package, side by side)", "", fmt_ms([r["test_acc"] for r in recs]), "",
             fmt_ms([r["clock_s"] for r in recs], 2), "", "", len(recs), f"{hw}, torch {recs[-1]['torch']}", "",
             f"{recs[-1]['date'][:10]} {recs[-1]['git_commit']}"] for (peer, hw, ds), recs in groups.items()]


def published_fast_block() -> str:
    """The published time-to-accuracy models: seed 0 of a bench run, with their fp32 check numbers."""
    rows = []
    for path in sorted((ROOT / "checkpoints").glob("*.json")):
        s = json.loads(path.read_text())
        if "check" not in s:
            continue
        c = s["check"]
        rows.append([f"`checkpoints/{path.stem}.pt`", s["dataset"], f"{s['test_acc']:.2f}% ({s['eval_precision']}, "
                     f"TTA {s['tta']})", f"{c['test_acc']:.2f}% / {c['test_loss']:.4f}", f"`{c['command']}`",
                     f"`cifarlab bench {s['preset']} --seed-list {s['seed']} --keep runs/bench`",
                     f"{(ROOT / 'checkpoints' / (path.stem + '.pt')).stat().st_size / 2**20:.1f} MB"])
    if not rows:
        return ""
    return ("Published models (seed 0 of the benchmark; no selection among seeds):\n\n"
            + markdown_table(["checkpoint", "data", "test at training", "fp32 check (top-1 / loss)",
                              "reproduce (CI runs this)", "retrain", "size"], rows))


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
    """The validation runs that chose the time-to-accuracy presets' settings (benchmarks/results/tuning.jsonl)."""
    recs = read_jsonl(ROOT / "benchmarks/results/tuning.jsonl")
    rows = [[r["question"], f"`{tuning_command(r)}`", f"{r['val_acc_last']:.2f}", f"{r['train_s']:.0f}",
             f"{r['hardware']}, torch {r['torch']}, {r['date'][:10]}"] for r in recs]
    # these runs shared the cores with other jobs: their times orient, the benchmarks above/below measure
    return markdown_table(["question", "command (seed 0)", "val % (TTA)", "train s (other jobs running)",
                           "machine"], rows)


BLOCKS = {"tuning": tuning_block, "results": lambda: results_table(ROOT / "results"), "speed": speed_block,
          "study": study_block, "recipe": lambda: study_block("c100-cnn-aug"),
          "checkpoint": checkpoint_block, "doctor": doctor_block, "doctor_corpus": doctor_corpus_block, "time_to_accuracy": time_to_accuracy_block}


def preset_headers() -> list[Path]:
    """Rewrite the `# time:` header line of each preset that has a results file, from that file."""
    from cifarlab.config import PRESET_DIR

    changed = []
    for preset in sorted(PRESET_DIR.glob("*.yaml")):
        recs = _latest(ROOT / "results" / f"{preset.stem}.jsonl", lambda r: r["seed"])
        if not recs:
            continue
        hw = sorted({f"{r['hardware']}, {r['precision']}" for r in recs})
        span = time_range([r["total_time_s"] for r in recs])
        line = (f"# time:     {span} per run on {'; '.join(hw)} (n={len(recs)}, "
                f"results/{preset.stem}.jsonl)")
        text = preset.read_text()
        new = re.sub(r"^# time: .*$", line, text, count=1, flags=re.M)
        if new != text:
            preset.write_text(new)
            changed.append(preset)
    return changed


def bench_headers() -> list[Path]:
    """Keep a `# measured:` header line in each preset benchmarked by `cifarlab bench` with its current
    recipe: mean ± std test top-1 and clock over the seeds of benchmarks/results/time_to_accuracy.jsonl.
    A preset whose recipe changed since its benchmark loses the line."""
    from cifarlab.config import PRESET_DIR

    groups = {g["preset"]: g for g in _tta_groups() if _current_recipe(g["preset"]) == g["hash"]}
    changed = []
    for preset in sorted(PRESET_DIR.glob("*.yaml")):
        text = preset.read_text()
        new = re.sub(r"^# measured: .*\n", "", text, flags=re.M)
        g = groups.get(preset.stem)
        if g is not None:
            r0 = g["recs"][-1]
            line = (f"# measured: {fmt_ms([r['test_acc'] for r in g['recs']])}% test top-1 in "
                    f"{fmt_ms([r['clock_s'] for r in g['recs']], 0)} s (train + init + final eval; "
                    f"{len(g['recs'])} seeds, {g['hardware']}, torch {r0['torch']}, {r0['date'][:10]}; "
                    "benchmarks/results/time_to_accuracy.jsonl)")
            new = re.sub(r"^(# expected: .*)$", lambda m: m.group(1) + "\n" + line, new, count=1, flags=re.M)
        if new != text:
            preset.write_text(new)
            changed.append(preset)
    return changed


def main() -> None:
    for p in preset_headers() + bench_headers():
        print(f"updated {p.relative_to(ROOT)}")
    path = ROOT / "README.md"
    text = path.read_text()
    for name, fn in BLOCKS.items():
        pat = re.compile(rf"(<!-- {name} -->\n)(?:.*?\n)?(<!-- /{name} -->)", re.S)
        if pat.search(text):
            block = fn()
            text = pat.sub(lambda m, b=block: m.group(1) + b + "\n" + m.group(2), text)
    path.write_text(text)


if __name__ == "__main__":
    main()
