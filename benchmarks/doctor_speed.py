"""Doctor wall and CPU time on full-size pipelines: cifarlab's own (preset), the seed project's
torchvision DataLoader pipeline, and a torchvision ResNet-50 (the largest model the doctor is budgeted for),
in the pipeline() form and as a plain script under `doctor run` (examples/resnet50_train.py).

    python benchmarks/doctor_speed.py [--out benchmarks/results/doctor_speed.jsonl]

The seed pipeline: PIL transforms (crop, flip, rotation, jitter) over the whole CIFAR-100 training set, the
whole test set for evaluation, the seed CNN, Adam, CrossEntropyLoss. The ResNet-50 pipeline: torchvision's
resnet50 on the whole CIFAR-10 set (crop + flip), SGD lr 0.1 momentum 0.9, batch 128.
Each record says whether the machine was busy (1-minute load average above the core count at the start or
the end): the budgets count CPU time, so a busy machine stretches the wall time, not the verdicts.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from cifarlab import data
from cifarlab.doctor import diagnose, diagnose_preset, run_script
from cifarlab.models import build_model
from cifarlab.runlog import env_info
from cifarlab.runtime import probe


class PILCifar(Dataset):
    def __init__(self, x, y, tf):
        self.data, self.targets, self.tf = x.permute(0, 2, 3, 1).numpy(), y.tolist(), tf

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        return self.tf(Image.fromarray(self.data[i])), self.targets[i]


def torchvision_pipeline(ds) -> dict:
    norm = T.Normalize(ds.spec.mean, ds.spec.std)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(15),
                          T.ColorJitter(0.2, 0.2), T.ToTensor(), norm])
    model = build_model("cnn", 100)
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(model.parameters(), 1e-3),
                train_loader=DataLoader(PILCifar(ds.train_x, ds.train_y, train_tf), batch_size=128, shuffle=True),
                eval_loader=DataLoader(PILCifar(ds.test_x, ds.test_y, T.Compose([T.ToTensor(), norm])),
                                       batch_size=256), num_classes=100)


def resnet50_pipeline(ds) -> dict:
    from torchvision.models import resnet50

    norm = T.Normalize(ds.spec.mean, ds.spec.std)
    train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    model = resnet50(num_classes=10)
    return dict(model=model, loss_fn=nn.CrossEntropyLoss(),
                optimizer=torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
                train_loader=DataLoader(PILCifar(ds.train_x, ds.train_y, train_tf), batch_size=128, shuffle=True),
                eval_loader=DataLoader(PILCifar(ds.test_x, ds.test_y, T.Compose([T.ToTensor(), norm])),
                                       batch_size=256), num_classes=10)


def resnet50_script():
    """`cifarlab doctor run examples/resnet50_train.py` from an empty directory (its checkpoint lands there)."""
    with tempfile.TemporaryDirectory() as cwd:
        return run_script(Path(__file__).resolve().parents[1] / "examples/resnet50_train.py", [], cwd=cwd, quiet=True)


def _busy() -> bool:
    return os.getloadavg()[0] > (os.cpu_count() or 1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="benchmarks/results/doctor_speed.jsonl")
    a = p.parse_args()
    ds, c10 = data.load("cifar100"), data.load("cifar10")
    recs, hw = [], probe()
    for name, run in [("cifarlab preset c100-cnn-aug", lambda: diagnose_preset("c100-cnn-aug")),
                      ("torchvision DataLoader + PIL transforms", lambda: diagnose(**torchvision_pipeline(ds))),
                      ("torchvision ResNet-50, CIFAR-10", lambda: diagnose(**resnet50_pipeline(c10))),
                      ("doctor run examples/resnet50_train.py (torchvision ResNet-50, CIFAR-10)", resnet50_script)]:
        busy = _busy()
        t0, c0 = time.perf_counter(), time.process_time()
        report = run()
        recs.append({"benchmark": "doctor-wall-time", "pipeline": name, "time_s": round(time.perf_counter() - t0, 2),
                     "cpu_s": round(time.process_time() - c0, 2), "contended": busy or _busy(),
                     "load_avg_1min": round(os.getloadavg()[0], 2),
                     "errors": sorted(report.codes("error")), "findings": sorted(report.codes()),
                     **env_info(hw.describe(), "fp32"), **hw.record()})
        print(json.dumps(recs[-1]))
    with open(a.out, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)


if __name__ == "__main__":
    main()
