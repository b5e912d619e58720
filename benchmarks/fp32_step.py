"""The fp32 CPU path, measured: Muon's Newton-Schulz in bf16 vs fp32, and the bare train step per
memory format.

    python benchmarks/fp32_step.py [--presets c100-fast c100-sprint c100-cnn-aug] [--repeats 5]
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/fp32_step.py   # emulate AVX2

Appends one record per measurement to benchmarks/results/fp32_step.jsonl with the hardware class
(runtime.probe), the other processes' CPU share during it, min and median over the repeats.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarlab.bench import CpuShare
from cifarlab.config import make_config
from cifarlab.data import SPECS
from cifarlab.optim import _matrix, build_optimizer, newton_schulz
from cifarlab.pipeline import new_model
from cifarlab.runlog import env_info
from cifarlab.runtime import memory_format_for, probe

OUT = Path("benchmarks/results/fp32_step.jsonl")


def timed(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def newton_schulz_times(preset: str, repeats: int) -> dict:
    """Seconds per optimizer step spent in Newton-Schulz for the preset's filter banks: bf16 one matrix
    at a time (torch.optim.Muon), fp32 one at a time, fp32 batched over same-shape banks (what optim.Muon does on an accelerator)."""
    from torch.optim._muon import DEFAULT_A, DEFAULT_B, DEFAULT_C, _zeropower_via_newtonschulz

    cfg = make_config(preset, [])
    mats = [torch.randn_like(_matrix(p.detach())) for p in new_model(cfg, 100).filter_banks()]
    coeffs = (DEFAULT_A, DEFAULT_B, DEFAULT_C)
    by_shape: dict = {}
    for m in mats:
        by_shape.setdefault(tuple(m.shape), []).append(m)
    stacks = [torch.stack(ms) for ms in by_shape.values()]
    ways = {"bf16_torch_muon": lambda: [_zeropower_via_newtonschulz(m, coeffs, 5, 1e-7) for m in mats],
            "fp32_per_matrix": lambda: [newton_schulz(m[None], torch.float32) for m in mats],
            "fp32_batched": lambda: [newton_schulz(s, torch.float32) for s in stacks]}
    return {name: timed(fn, repeats) for name, fn in ways.items()}


def bare_step_times(preset: str, fmt: torch.memory_format, steps: int, repeats: int) -> list[float]:
    """Images/s of forward + backward + the preset's optimizer on random fp32 inputs, per repeat."""
    cfg = make_config(preset, [])
    hw = probe("cpu")
    classes = SPECS[cfg.data.dataset].num_classes
    torch.manual_seed(0)
    model = new_model(cfg, classes).to(memory_format=fmt).train()
    opt = build_optimizer(model, cfg.optim, cfg.train.batch_size, torch.bfloat16 if hw.bf16_native else torch.float32)
    bs = cfg.train.batch_size
    x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, classes, (bs,))

    def run():
        for _ in range(steps):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return [steps * bs / t for t in timed(run, repeats)]


def summary(values: list[float]) -> dict:
    return {"min": round(min(values), 4), "median": round(statistics.median(values), 4), "n": len(values)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--presets", nargs="+", default=["c100-fast", "c100-sprint", "c100-cnn-aug"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=3, help="train steps per repeat")
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    hw = probe("cpu")
    base = {**env_info(hw.describe(), "fp32"), **hw.record(), "command": "python " + " ".join(sys.argv)}
    records = []
    for preset in a.presets:
        first = len(records)
        cfg = make_config(preset, [])
        if cfg.model.name == "fastnet" and cfg.optim.muon_lr:
            share = CpuShare().start()
            ns = newton_schulz_times(preset, a.repeats)
            records.append({"benchmark": "newton-schulz", "preset": preset, "unit": "s per optimizer step",
                            **{k: summary(v) for k, v in ns.items()}, **share.fields(), **base})
        for name, fmt in (("nchw", torch.contiguous_format), ("nhwc", torch.channels_last)):
            share = CpuShare().start()
            rates = bare_step_times(preset, fmt, a.steps, a.repeats)
            records.append({"benchmark": "bare-step-fp32", "preset": preset, "memory_format": name,
                            "batch_size": cfg.train.batch_size, "unit": "images/s", "images_per_s": summary(rates),
                            "chosen": fmt == memory_format_for(hw, "fp32"), **share.fields(), **base})
        for r in records[first:]:
            print(json.dumps({k: r[k] for k in r if k not in base}))
    with open(a.out, "a") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
