"""The CIFAR-10 speed-record package (`airbench`, KellerJordan/cifar10-airbench) run side by side with
cifarlab on the same GPU: its own `train94()` (or `train96()`), its own clock (GPU time of training,
whitening init and the final test-time-augmented evaluation, after its warm-up run), on cifarlab's copy
of CIFAR-10. One JSON record per run is appended to benchmarks/results/airbench_side_by_side.jsonl;
`make readme` shows them next to `cifarlab bench c10-gpu-fast` in the time-to-accuracy table.

    CIFARLAB_DATA=/tmp/cifar/data python benchmarks/airbench_side_by_side.py --runs 3 [--variant 96]

airbench needs CUDA (it calls .cuda() and times with CUDA events). It looks for cifar10/train.pt and
cifar10/test.pt under its working directory and would download CIFAR-10 otherwise; this script writes
those two files from cifarlab's loader into a temporary folder and runs airbench there, so nothing is
downloaded. The package can come from pip or from an unpacked sdist on PYTHONPATH (benchmarks/gpu_run.sh).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results" / "airbench_side_by_side.jsonl"
HOW = ("airbench.train{v}(run=i) after airbench.warmup{v}(), in its own process; its printed clock (GPU "
       "time of training + whitening init + final TTA eval) and tta_val_acc on the 10,000 test images")


def airbench_version(module) -> str:
    """The installed distribution's version, else the version in an unpacked sdist's folder name."""
    import importlib.metadata
    import re

    try:
        return importlib.metadata.version("airbench")
    except importlib.metadata.PackageNotFoundError:
        m = re.search(r"airbench-([0-9][^/\\]*)", str(Path(module.__file__).resolve()))
        return m.group(1) if m else "unknown"


def write_airbench_data(folder: Path, data_dir: str | None = None) -> int:
    """cifarlab's CIFAR-10 as airbench's cache files: {'images': uint8 NHWC, 'labels', 'classes'}."""
    from cifarlab.data import load

    d = load("cifar10", data_dir, allow_download=False)
    folder.mkdir(parents=True, exist_ok=True)
    for split, x, y in (("train", d.train_x, d.train_y), ("test", d.test_x, d.test_y)):
        torch.save({"images": x.permute(0, 2, 3, 1).contiguous(), "labels": y.clone(),
                    "classes": list(d.classes)}, folder / f"{split}.pt")
    return len(d.train_y)


def parse_final_row(text: str) -> dict:
    """The `eval` row of airbench's printed table -> {'tta_val_acc': %, 'clock_s': s}."""
    header = None
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if "tta_val_acc" in cells:
            header = cells
        elif header and len(cells) == len(header) and cells[header.index("epoch")] == "eval":
            row = dict(zip(header, cells))
            return {"tta_val_acc": 100 * float(row["tta_val_acc"]), "clock_s": float(row["total_time_seconds"])}
    raise ValueError("no 'eval' row with tta_val_acc and total_time_seconds in airbench's output")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--variant", choices=("94", "96"), default="94")
    p.add_argument("--data-dir")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("airbench_side_by_side: airbench runs on CUDA only (it calls .cuda()); run it in a GPU session")
    try:
        import airbench
    except ImportError as e:
        raise SystemExit(f"airbench_side_by_side: {e}; `pip install airbench` (or put its sdist on PYTHONPATH)")
    from cifarlab.runlog import env_info

    train, warmup = getattr(airbench, f"train{a.variant}"), getattr(airbench, f"warmup{a.variant}")
    with tempfile.TemporaryDirectory() as tmp:
        n_train = write_airbench_data(Path(tmp) / "cifar10", a.data_dir)
        out, here = Path(a.out).resolve(), os.getcwd()
        os.chdir(tmp)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                warmup()
            for i in range(a.runs):
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    train(run=i)
                res = parse_final_row(buf.getvalue())
                rec = {"kind": "peer-side-by-side", "peer": f"airbench {airbench_version(airbench)} train{a.variant}",
                       "dataset": "cifar10", "run": i, "n_train": n_train,
                       "test_acc": round(res["tta_val_acc"], 2), "clock_s": round(res["clock_s"], 3),
                       "how": HOW.format(v=a.variant),
                       **env_info(torch.cuda.get_device_name(), "fp16 (airbench's own)")}
                print(json.dumps(rec), flush=True)
                with open(out, "a") as f:
                    f.write(json.dumps(rec) + "\n")
        finally:
            os.chdir(here)


if __name__ == "__main__":
    main()
