"""Throughput of every --budget recipe on this machine, as the planner measures it (budget.calibrate):
training images/s (real augmented batches, forward, backward, the recipe's optimizer) and evaluation
forwards/s. The table's per-class ratios come from these records (scripts/budget_table.py).

    python benchmarks/budget_throughput.py [--dataset cifar100] [--seconds 4] [--repeats 3] [--preset P ...]

Appends one record per recipe and repeat to benchmarks/results/budget_throughput.jsonl. Run it on a quiet
machine: other processes' CPU share is recorded with each record.
"""
from __future__ import annotations

import argparse
import sys

from cifarlab import data
from cifarlab.bench import CpuShare
from cifarlab.budget import calibrate, load_table
from cifarlab.config import TrainConfig, make_config
from cifarlab.io import append_jsonl
from cifarlab.runlog import env_info
from cifarlab.runtime import pick_device


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="cifar100")
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/budget_throughput.jsonl")
    p.add_argument("--preset", action="append", help="only these recipes of the table (default: all)")
    a = p.parse_args()
    rt = pick_device(TrainConfig())
    ds = data.load(a.dataset)
    recipes = load_table(a.dataset)
    unknown = set(a.preset or ()) - {r.preset for r in recipes}
    if unknown:
        p.error(f"--preset {', '.join(sorted(unknown))}: not a recipe of the {a.dataset} table "
                f"({', '.join(r.preset for r in recipes)}); add it to scripts/budget_table.py's RECIPES first")
    for recipe in (r for r in recipes if not a.preset or r.preset in a.preset):
        cfg = make_config(recipe.preset)
        for rep in range(a.repeats):
            share = CpuShare().start()
            r = calibrate(cfg, ds.train_x, rt, ds.num_classes, seconds=a.seconds)
            rec = {"kind": "budget-throughput", "preset": recipe.preset, "dataset": a.dataset, "repeat": rep,
                   "batch_size": cfg.train.batch_size, "train_img_s": round(r.train_img_s, 1),
                   "eval_img_s": round(r.eval_img_s, 1), **share.fields(),
                   **env_info(rt.hardware, rt.precision), **rt.hw.record(), "command": "python " + " ".join(sys.argv)}
            append_jsonl(a.out, rec)
            print(f"{recipe.preset}: train {r.train_img_s:.0f} img/s, eval {r.eval_img_s:.0f} img/s "
                  f"(other CPU {rec['other_cpu_frac']})", flush=True)


if __name__ == "__main__":
    main()
