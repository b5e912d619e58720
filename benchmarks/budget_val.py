"""Validation curves behind the --budget recipe table: each recipe trained for several schedule lengths
on 45,000 images and scored on the 5,000-image validation hold-out (never the test split).

    python benchmarks/budget_val.py c100-tiny:1,2,4 c100-sprint:1,2,4 c100-fast:1,2

Appends one record per run to benchmarks/results/budget_val.jsonl (skipping a config hash already there):
the last epoch's validation top-1 with the preset's test-time augmentation and without, the hardware class and
the command. `python scripts/budget_table.py` turns the records into the table the planner reads.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from cifarlab.bench import CpuShare
from cifarlab.config import flatten, make_config
from cifarlab.evaluate import metrics_from_logits, predict
from cifarlab.io import append_jsonl
from cifarlab.pipeline import build
from cifarlab.runtime import pick_device
from cifarlab import train

OUT = Path("benchmarks/results/budget_val.jsonl")
VAL_SIZE = 5000


def val_run(preset: str, epochs: int) -> dict:
    cfg = make_config(preset, {"data.val_size": VAL_SIZE, "train.epochs": epochs, "train.early_stop_patience": 0})
    done = {json.loads(line)["config_hash"] for line in OUT.open()} if OUT.exists() else set()
    if cfg.hash() in done:
        print(f"{preset} x{epochs}: already recorded")
        return {}
    share = CpuShare().start()
    run = train(cfg, quiet=True)
    timing = share.fields()
    s, rt = run.summary, pick_device(cfg.train)
    pipe = build(cfg, runtime=rt)  # the same split; the trained model scored without test-time augmentation
    no_tta = metrics_from_logits(predict(run.model, pipe.splits.val_x, pipe.normalize, rt,
                                         cfg.train.eval_batch_size, tta=0), pipe.splits.val_y).top1
    rec = {"kind": "budget-val", "preset": preset, "dataset": cfg.data.dataset, "epochs": epochs,
           "batch_size": cfg.train.batch_size, "widths": cfg.model.widths, "muon_lr": cfg.optim.muon_lr,
           "config_hash": cfg.hash(), "seed": cfg.train.seed, "n_train": s["n_train"], "n_val": s["n_val"],
           "val_acc_last": s["last_epoch_val_acc"], "val_acc_no_tta": no_tta, "tta": cfg.train.tta,
           "train_s": round(s["train_time_s"], 1), **timing,
           "images_per_s": round(s["images_per_s"], 1), "precision": s["precision"], **rt.hw.record(),
           "torch": s["torch"], "git_commit": s["git_commit"], "date": s["date"],
           "command": f"python benchmarks/budget_val.py {preset}:{epochs}", "config": flatten(cfg.to_dict())}
    append_jsonl(OUT, rec)
    print(f"{preset} x{epochs}: val {rec['val_acc_last']:.2f}% in {rec['train_s']:.0f}s "
          f"({rec['images_per_s']:.0f} img/s, {rec['hw_class']})", flush=True)
    return rec


def main(argv: list[str]) -> None:
    for spec in argv:
        preset, _, epochs = spec.partition(":")
        for e in epochs.split(","):
            val_run(preset, int(e))


if __name__ == "__main__":
    main(sys.argv[1:])
