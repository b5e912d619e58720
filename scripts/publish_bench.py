"""Publish seed 0 of a preset's time-to-accuracy benchmark to checkpoints/ (no selection among seeds:
the bench has no validation split, and choosing by test accuracy is not allowed).

    python scripts/publish_bench.py c100-15min [--runs runs/bench]

Needs the run folder that `cifarlab bench PRESET --keep runs/bench` wrote for seed 0. Writes
checkpoints/PRESET.pt (weights, config, summary; no optimizer) and checkpoints/PRESET.json. When the run
was evaluated in bf16 (train.eval_precision=train), the summary gets a `check` block: the test numbers
of an fp32 evaluation without test-time augmentation, which `cifarlab eval CKPT --fp32 --tta 0`
reproduces on any CPU (bf16 kernels differ between CPU generations; fp32 ones agree to the printed digits).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from cifarlab.checkpoint import load_checkpoint, save_checkpoint
from cifarlab.evaluate import evaluate_checkpoint
from cifarlab.io import write_json


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("preset")
    p.add_argument("--runs", default="runs/bench")
    p.add_argument("--data-dir")
    a = p.parse_args()
    run = Path(a.runs) / f"{a.preset}-s0"
    state = load_checkpoint(run / "best.pt")
    summary = dict(state["summary"])
    if summary.get("eval_precision", "fp32") != "fp32" or summary.get("tta", 0):
        m, info = evaluate_checkpoint(run / "best.pt", "test", a.data_dir, fp32=True, tta=0)
        summary["check"] = {"precision": info["eval"]["precision"], "tta": 0, "test_acc": m.top1,
                            "test_loss": m.loss, "test_top5": m.top5,
                            "command": f"cifarlab eval checkpoints/{a.preset}.pt --fp32 --tta 0"}
    keep = {k: state[k] for k in ("config", "num_classes", "model", "epoch")}
    out = Path("checkpoints") / f"{a.preset}.pt"
    save_checkpoint(out, {**keep, "summary": summary})
    write_json(out.with_suffix(".json"), summary)
    print(f"published {run} -> {out} (test {summary['test_acc']:.2f}%, check {summary.get('check')})")


if __name__ == "__main__":
    main()
