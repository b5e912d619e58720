"""Wall time of `cifarlab predict CHECKPOINT DIR` on 1,000 images (process start to exit), appended to
benchmarks/results/predict_time.jsonl. Target: under 5 s on 2 CPU cores with the published model.

    python benchmarks/predict_time.py [checkpoints/c100-cnn-aug.pt] [--n 1000]

The images are CIFAR-100 test images made to look like user files (generated once into a temporary
folder, not timed): a quarter each as 32x32 PNG, 96x96 PNG, 256x256 JPEG and 640x480 JPEG (upscaled
bicubically), so decoding, JPEG draft scaling and the antialiased resize are all exercised. Without
the CIFAR files, random-pixel images of the same sizes are used (`images` in the record says which).
The record notes `contended`: the 1-minute load average before the run, and whether it exceeded the
core count, since this machine is shared; `cpu_s` (the process's user + system CPU time) is much less
sensitive to other jobs than `time_s`, and an idle machine with at least one core runs it in about that.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cifarlab.runlog import env_info
from cifarlab.runtime import cpu_name

SIZES = [(32, 32, "png"), (96, 96, "png"), (256, 256, "jpg"), (640, 480, "jpg")]  # width, height, format


def make_images(folder: Path, n: int) -> str:
    from cifarlab import data

    try:
        x = data.load("cifar100", allow_download=False).test_x[:n].permute(0, 2, 3, 1).numpy()
        kind = "cifar100-test"
    except data.DataError:
        x = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        kind = "random"
    for i, a in enumerate(x):
        w, h, fmt = SIZES[i % len(SIZES)]
        img = Image.fromarray(a)
        img = img if (w, h) == (32, 32) else img.resize((w, h), Image.Resampling.BICUBIC)
        img.save(folder / f"{i:04d}.{fmt}", **({"quality": 90} if fmt == "jpg" else {}))
    return kind


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint", nargs="?", default="checkpoints/c100-cnn-aug.pt")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--out", default="benchmarks/results/predict_time.jsonl")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kind = make_images(Path(tmp), a.n)
        load = os.getloadavg()[0]
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "cifarlab", "predict", a.checkpoint, tmp, "--csv"],
                             capture_output=True, text=True, check=True)
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rows = sum(r["rank"] == "1" for r in csv.DictReader(io.StringIO(out.stdout)))  # classified images
    cores = len(os.sched_getaffinity(0))
    rec = {"benchmark": "predict-wall-time", "checkpoint": a.checkpoint, "n_images": a.n, "images": kind,
           "sizes": [f"{w}x{h} {f}" for w, h, f in SIZES], "classified": rows, "time_s": round(wall, 2),
           "images_per_s": round(a.n / wall, 1), "cpu_s": round(cpu, 2), "cores": cores,
           "contended": {"load_avg_1min": round(load, 2), "busy": load > cores},
           **env_info(f"{cpu_name()} ({torch.get_num_threads()} threads)", "fp32")}
    print(json.dumps(rec))
    with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
