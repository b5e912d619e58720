"""Wall time of `cifarlab eval CHECKPOINT` (process start to exit), appended to eval_time.jsonl.

    python benchmarks/eval_time.py checkpoints/c100-cnn-aug.pt
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import torch

from cifarlab.runlog import env_info
from cifarlab.runtime import cpu_name

ckpt = sys.argv[1]
t0 = time.perf_counter()
out = subprocess.run([sys.executable, "-m", "cifarlab", "eval", ckpt], capture_output=True, text=True, check=True)
rec = {"benchmark": "eval-wall-time", "checkpoint": ckpt, "time_s": round(time.perf_counter() - t0, 2),
       "reproduced": "reproduced" in out.stdout,
       **env_info(f"{cpu_name()} ({torch.get_num_threads()} threads)", "fp32")}
print(out.stdout + json.dumps(rec))
with open("benchmarks/results/eval_time.jsonl", "a") as f:
    f.write(json.dumps(rec) + "\n")
