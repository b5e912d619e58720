"""Regenerate the README's number blocks from the committed results files.

    python scripts/update_readme.py        (also run by `make readme`)

Each block sits between <!-- NAME --> and <!-- /NAME --> markers; nothing between them is typed by hand.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from cifarlab.report import fmt_ms, markdown_table, results_table, time_range
from cifarlab.runlog import read_jsonl

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
             "—" if e["delta_test"] is None else f"{e['delta_test']:+.2f} ({e['verdict']})",
             time_range(e["train_time_s"])] for e in exps]
    hw = sorted({e["hardware"] for e in exps})
    seeds = sorted({len(e["seeds"]) for e in exps})
    return (markdown_table(["exp", "change", "train %", "val %", "test %", "Δ test", "time / run"], rows)
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
    return markdown_table(["pipeline", "wall time", "errors found", "hardware", "date"],
                          [[r["pipeline"], f"{r['time_s']:.1f} s", ", ".join(r["errors"]) or "none",
                            r["hardware"], r["date"][:10]] for r in recs])


BLOCKS = {"results": lambda: results_table(ROOT / "results"), "speed": speed_block, "study": study_block,
          "recipe": lambda: study_block("c100-cnn-aug"),
          "checkpoint": checkpoint_block, "doctor": doctor_block}


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


def main() -> None:
    for p in preset_headers():
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
