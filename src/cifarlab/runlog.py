"""What a run records: environment, metrics.jsonl, summary.json, console lines."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .io import append_jsonl, write_jsonl

# Keys of a metrics record that measure time, excluded when comparing runs for exact reproducibility.
TIMING_KEYS = ("epoch_time_s", "images_per_s", "elapsed_s")


# Paths (from the repository root) whose uncommitted changes make a run's code differ from its commit;
# edited results, studies or README do not.
CODE_PATHS = (":/src", ":/pyproject.toml")


def git_commit(cwd: Path | None = None) -> str:
    """Short commit of the checkout the package runs from, "-dirty" when its code has uncommitted
    changes; "unknown" outside a git checkout."""
    if os.environ.get("CIFARLAB_GIT_COMMIT"):  # set where the tree travels without .git (remote GPU)
        return os.environ["CIFARLAB_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path(__file__).parent, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
                               capture_output=True, text=True, cwd=cwd or Path(__file__).parent, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


def env_info(hardware: str, precision: str) -> dict:
    import torchvision

    return {"hardware": hardware, "precision": precision, "torch": str(torch.__version__),
            "torchvision": str(torchvision.__version__), "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git_commit(),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_metrics(path: Path, history: list[dict]) -> None:
    """Rewrite metrics.jsonl atomically from the full history (the checkpoint holds the truth)."""
    write_jsonl(path, history)


def epoch_line(rec: dict, epochs: int) -> str:
    val = (f" | val loss {rec['val_loss']:.4f} acc {rec['val_acc']:6.2f}%"
           if rec.get("val_acc") is not None else "")
    return (f"epoch {rec['epoch']:>3}/{epochs} | train loss {rec['train_loss']:.4f} "
            f"acc {rec['train_acc']:6.2f}%{val} | lr {rec['lr']:.2e} | {rec['epoch_time_s']:.1f}s "
            f"{rec['images_per_s']:.0f} img/s")


def log(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr if msg.startswith("warning") else sys.stdout, flush=True)


# train_acc and val_acc are those of the selected epoch (best_epoch), like the test numbers. Older
# records had train_acc of the last epoch and best_train_acc of the selected one.
RECORD_KEYS = ("preset", "dataset", "model", "seed", "config_hash", "status", "epochs_run", "best_epoch",
               "train_acc", "last_epoch_train_acc", "val_acc", "test_acc", "test_top5", "test_loss", "params",
               "total_time_s", "images_per_s", "hardware", "precision", "torch", "git_commit", "date")


def append_record(path: Path, summary: dict, run_dir: Path | None = None) -> dict:
    """Append one run's record to a results JSONL file (rewritten atomically)."""
    rec = {k: summary.get(k) for k in RECORD_KEYS}
    if run_dir is not None:
        rec["run_dir"] = str(run_dir)
    append_jsonl(path, rec)
    return rec
