"""Print where a run stands against the seed project's result for its dataset (used by `make train`).

    python scripts/vs_seed.py RUN_DIR
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the seed project's best result per dataset: the targets file's preset whose figure it is
SEED_PRESET = {"cifar100": "c100-cnn-aug", "cifar10": "c10-cnn"}


def main(run_dir: str) -> int:
    summary_path = Path(run_dir) / "summary.json"
    if not summary_path.is_file():
        print(f"{summary_path}: not found (did the run finish?)", file=sys.stderr)
        return 2
    s = json.loads(summary_path.read_text())
    targets = json.loads((ROOT / "results/targets.json").read_text())["targets"]
    t = targets.get(SEED_PRESET.get(s["dataset"], ""))
    if t is None or t["metric"] != "test":
        return 0
    minutes = s["timing"]["train_s"] / 60 if "timing" in s else s["train_time_s"] / 60
    print(f"seed project ({SEED_PRESET[s['dataset']]}): {t['reference']}  |  this run ({s['preset']}): "
          f"{s['test_acc']:.2f}% test in {minutes:.1f} min of training -> {s['test_acc'] - t['value']:+.2f} points")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]) if len(sys.argv) == 2 else (print(__doc__), 2)[1])
