"""Training throughput: cifarlab's real training loop vs a bare step on random tensors.

    python benchmarks/speed.py [--model cnn] [--images 12800] [--out benchmarks/results/speed.jsonl]

The bare step is the floor of what any loop can reach for this model and precision: random inputs
already on the device, forward + backward + the run's optimizer, nothing else. The real loop adds batching from the
on-device uint8 split, the seed project's augmentation (crop, flip, rotation, colour jitter) and
normalization. Appends one JSON record per invocation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cifarlab import train
from cifarlab.bench import CpuShare
from cifarlab.config import make_config
from cifarlab.data import SPECS
from cifarlab.optim import build_optimizer
from cifarlab.pipeline import new_model
from cifarlab.runlog import env_info
from cifarlab.runtime import pick_device


def bare_step_rate(cfg, steps: int = 60, warmup: int = 10) -> float:
    rt = pick_device(cfg.train)
    torch.manual_seed(0)
    classes = SPECS[cfg.data.dataset].num_classes
    model = new_model(cfg, classes).to(rt.device, memory_format=rt.memory_format).train()
    opt = build_optimizer(model, cfg.optim, cfg.train.batch_size, rt.ns_dtype)  # the run's optimizer, same cost
    bs = cfg.train.batch_size
    x = torch.randn(bs, 3, 32, 32, device=rt.device).contiguous(memory_format=rt.memory_format)
    y = torch.randint(0, classes, (bs,), device=rt.device)
    for i in range(warmup + steps):
        if i == warmup:
            if rt.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with rt.autocast():
            out = model(x)
        loss = F.cross_entropy(out.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if rt.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * bs / (time.perf_counter() - t0)


def _realtime() -> bool:
    """True when run under a real-time policy (e.g. `chrt -f 10`), which keeps other processes off the cores."""
    import os

    return hasattr(os, "sched_getscheduler") and os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="c100-cnn-aug")
    p.add_argument("--images", type=int, default=12800, help="training images in the timed epoch")
    p.add_argument("--bare-steps", type=int, default=60, help="timed steps of the bare step (after 10 warm-up)")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--out", default="benchmarks/results/speed.jsonl")
    a = p.parse_args()
    cfg = make_config(a.preset, [f"data.train_subset={a.images}", "data.val_size=0", "train.epochs=2",
                                 *a.set])
    share = CpuShare().start()
    bare = bare_step_rate(cfg, steps=a.bare_steps, warmup=min(10, a.bare_steps))
    run = train(cfg, quiet=True)
    loop = run.history[-1]["images_per_s"]  # second epoch: warm caches, no first-call overheads
    rt = pick_device(cfg.train)
    rec = {"benchmark": "train-throughput", "preset": a.preset, "model": cfg.model.name,
           "batch_size": cfg.train.batch_size, "augment": cfg.augment.__dict__, "images": a.images,
           "bare_step_img_s": round(bare, 1), "train_loop_img_s": round(loop, 1),
           "loop_vs_bare": round(loop / bare, 3), "realtime_priority": _realtime(),
           **share.fields(), "command": "python " + " ".join(sys.argv),
           **env_info(rt.hardware, rt.precision), **rt.hw.record()}
    print(json.dumps(rec))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
