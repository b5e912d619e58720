"""Doctor wall time on full-size pipelines: cifarlab's own (preset) and a torchvision DataLoader one.

    python benchmarks/doctor_speed.py [--out benchmarks/results/doctor_speed.jsonl]

The torchvision pipeline is the seed project's: PIL transforms (crop, flip, rotation, jitter) over the
whole CIFAR-100 training set, the whole test set for evaluation, the seed CNN, Adam, CrossEntropyLoss.
"""
from __future__ import annotations

import argparse
import json
import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from cifarlab import data
from cifarlab.doctor import diagnose, diagnose_preset
from cifarlab.models import build_model
from cifarlab.runlog import env_info
from cifarlab.runtime import cpu_name


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


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="benchmarks/results/doctor_speed.jsonl")
    a = p.parse_args()
    ds = data.load("cifar100")
    recs = []
    for name, run in [("cifarlab preset c100-cnn-aug", lambda: diagnose_preset("c100-cnn-aug")),
                      ("torchvision DataLoader + PIL transforms", lambda: diagnose(**torchvision_pipeline(ds)))]:
        t0 = time.perf_counter()
        report = run()
        recs.append({"benchmark": "doctor-wall-time", "pipeline": name, "time_s": round(time.perf_counter() - t0, 2),
                     "errors": sorted(report.codes("error")), "findings": sorted(report.codes()),
                     **env_info(f"{cpu_name()} ({torch.get_num_threads()} threads)", "fp32")})
        print(json.dumps(recs[-1]))
    with open(a.out, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in recs)


if __name__ == "__main__":
    main()
