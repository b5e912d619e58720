"""Publish the run of a preset with the best validation accuracy (never test) to checkpoints/.

    python scripts/publish_best.py c100-cnn-aug [--root DIR_WITH_RUNS]

Reads results/PRESET.jsonl, picks max val_acc, writes checkpoints/PRESET.pt (weights, config, summary;
no optimizer state) and checkpoints/PRESET.json (its summary).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cifarlab.checkpoint import load_checkpoint, save_checkpoint
from cifarlab.io import write_json
from cifarlab.io import read_jsonl

p = argparse.ArgumentParser()
p.add_argument("preset")
p.add_argument("--root", default=".", help="folder the records' run_dir paths are relative to")
a = p.parse_args()
recs = [r for r in read_jsonl(Path("results") / f"{a.preset}.jsonl") if r.get("val_acc") is not None]
best = max(recs, key=lambda r: r["val_acc"])
run = Path(a.root) / best["run_dir"]
state = load_checkpoint(run / "best.pt")
summary = json.loads((run / "summary.json").read_text())
assert state["summary"]["test_acc"] == summary["test_acc"], "best.pt and summary.json disagree"
keep = {k: state[k] for k in ("config", "num_classes", "model", "epoch", "summary")}
save_checkpoint(Path("checkpoints") / f"{a.preset}.pt", keep)
write_json(Path("checkpoints") / f"{a.preset}.json", summary)
print(f"published {run} (seed {best['seed']}, val {best['val_acc']:.2f}%, test {best['test_acc']:.2f}%)")
