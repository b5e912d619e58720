"""Does the corpus's VGG-11 script (tests/doctor_scripts/b_vgg_no_bn_high_lr.py: no batch-norm, SGD at lr
0.05, momentum 0.9) diverge within a CPU budget at all? Its own model, transforms, optimizer and loss on the
corpus's CIFAR-10 slice, trained step by step with no doctor in the way; the loss of every step, the
gradient norm, and the first non-finite step if any.

    python benchmarks/doctor_vgg_probe.py [--steps 150] [--images 8192]

Appends one record to benchmarks/results/doctor_vgg_probe.jsonl. The doctor's audit of this script
(budgeted at 60 s) reaches a few dozen steps on 2 cores; this says what more steps would have shown.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torchvision.transforms as T
from torch import nn

from cifarlab.io import append_jsonl
from cifarlab.runlog import env_info
from cifarlab.runtime import pick_device
from cifarlab.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks/results/doctor_vgg_probe.jsonl"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--images", type=int, default=8192)
    a = p.parse_args()
    sys.path.insert(0, str(ROOT / "tests/doctor_scripts"))
    import b_vgg_no_bn_high_lr as script  # the corpus script's own classes (its main() is not run)
    from cifar import CIFAR10

    torch.manual_seed(0)
    norm = T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])  # as the script
    train = CIFAR10(os.environ.get("CIFARLAB_DATA"), True, T.Compose([T.RandomHorizontalFlip(), T.RandomCrop(32, 4),
                                                                      T.ToTensor(), norm]), n=a.images)
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True)
    model, loss_fn = script.VGG(), nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), 0.05, momentum=0.9, weight_decay=5e-4)
    losses, grad_norms, first_bad, t0 = [], [], None, time.perf_counter()
    while len(losses) < a.steps and first_bad is None:
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            grad_norms.append(round(float(torch.cat([q.grad.flatten() for q in model.parameters()]).norm()), 4))
            opt.step()
            losses.append(round(loss.item(), 4))
            if not math.isfinite(losses[-1]):
                first_bad = len(losses)
            if len(losses) >= a.steps or first_bad is not None:
                break
    wall = time.perf_counter() - t0
    rt = pick_device(TrainConfig())
    rec = {"kind": "doctor-vgg-probe", "script": "tests/doctor_scripts/b_vgg_no_bn_high_lr.py", "steps": len(losses),
           "images": a.images, "batch": 128, "first_nonfinite_step": first_bad, "wall_s": round(wall, 1),
           "loss_first10_mean": round(sum(losses[:10]) / 10, 4), "loss_last10_mean": round(sum(losses[-10:]) / 10, 4),
           "losses": losses, "grad_norms": grad_norms, **rt.hw.record(), **env_info(rt.hardware, "fp32"),
           "command": f"python benchmarks/doctor_vgg_probe.py --steps {a.steps} --images {a.images}"}
    append_jsonl(OUT, rec)
    print(f"{len(losses)} steps in {wall:.0f} s: loss {rec['loss_first10_mean']} -> {rec['loss_last10_mean']} "
          f"(first 10 / last 10 steps), first non-finite step: {first_bad}")


if __name__ == "__main__":
    main()
