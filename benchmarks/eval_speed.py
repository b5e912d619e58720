"""fp32 inference rate of the committed checkpoints per memory format (NCHW vs channels_last), at each
checkpoint's evaluation batch size: what `cifarlab eval` and a run's final test evaluation spend.

    python benchmarks/eval_speed.py [--repeats 5] [checkpoints/*.pt]

Appends one record per checkpoint and format to benchmarks/results/eval_speed.jsonl with the hardware
class (runtime.probe), the other processes' CPU share during it, min and median over the repeats.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from cifarlab.bench import CpuShare
from cifarlab.io import append_jsonl
from cifarlab.pipeline import load_model
from cifarlab.runlog import env_info
from cifarlab.runtime import fp32_runtime, probe

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks/results/eval_speed.jsonl"


def rates(model, batch: int, fmt: torch.memory_format, repeats: int) -> list[float]:
    """Images/s of one forward pass over 4 batches of random inputs, per repeat (after one warm-up)."""
    model = model.to(memory_format=fmt).eval()
    x = torch.randn(batch, 3, 32, 32).contiguous(memory_format=fmt)
    out = []
    with torch.inference_mode():
        model(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(4):
                model(x)
            out.append(4 * batch / (time.perf_counter() - t0))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoints", nargs="*", default=sorted(str(c.relative_to(ROOT))
                                                            for c in (ROOT / "checkpoints").glob("*.pt")))
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    hw = probe("cpu")
    chosen = fp32_runtime("cpu").memory_format
    base = {**env_info(hw.describe(), "fp32"), **hw.record(), "command": "python " + " ".join(sys.argv)}
    for ckpt in a.checkpoints:
        model, cfg, _ = load_model(ckpt if Path(ckpt).exists() else ROOT / ckpt)  # the defaults: repo-relative
        for name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
            share = CpuShare().start()
            r = rates(model, cfg.train.eval_batch_size, fmt, a.repeats)
            rec = {"benchmark": "eval-forward-fp32", "checkpoint": ckpt, "model": cfg.model.name,
                   "batch_size": cfg.train.eval_batch_size, "memory_format": name, "unit": "images/s",
                   "images_per_s": {"min": round(min(r), 1), "median": round(statistics.median(r), 1), "n": len(r)},
                   "chosen": fmt == chosen, **share.fields(), **base}
            append_jsonl(OUT, rec)
            print(json.dumps({k: rec[k] for k in rec if k not in base}))


if __name__ == "__main__":
    main()
