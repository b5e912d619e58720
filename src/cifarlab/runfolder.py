"""The run folder: created or refused at the start, and the summary, predictions, published best.pt and
curves written at the end. Imports no training code: the engine hands over plain values."""
from __future__ import annotations

import shutil
from pathlib import Path

from .errors import RunError
from .io import write_json
from .checkpoint import save_checkpoint
from .viz import plot_curves


def prepare_out_dir(out: Path | None, resume: bool, overwrite: bool) -> None:
    """Make `out` ready for a new run (or check it holds one to resume); RunError when it must not be used."""
    if out is None:
        return
    if resume:
        if not (out / "last.pt").is_file():
            raise RunError(f"--resume {out}: no last.pt there; nothing to resume")
        return
    if out.exists():
        _drop_write_leftovers(out)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise RunError(f"output folder {out} exists and is not empty; pass --resume to continue "
                           "that run, --overwrite to replace it, or choose another --out")
        if not (out / "config.yaml").exists():
            raise RunError(f"--overwrite refused: {out} does not look like a cifarlab run folder "
                           "(no config.yaml); remove it yourself or choose another --out")
        _clear_run_folder(out)
    out.mkdir(parents=True, exist_ok=True)


def _drop_write_leftovers(out: Path) -> None:
    """A run killed while writing its first file leaves only io.write_*'s temporary (.NAME.PID.HEX.tmp):
    such a folder is empty for a new run. Anything else in the folder keeps every file."""
    children = list(out.iterdir())
    if children and all(c.is_file() and c.name.startswith(".") and c.name.endswith(".tmp") for c in children):
        for c in children:
            c.unlink()


def _clear_run_folder(out: Path) -> None:
    """Empty a run folder, config.yaml last: killed half-way, it is still recognisably a run folder
    that --overwrite may replace (a folder without config.yaml is refused)."""
    for child in out.iterdir():
        if child.name != "config.yaml":
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    (out / "config.yaml").unlink()


def write_stopped(out: Path | None, status: str, epochs_run: int, skipped_steps: int) -> None:
    """The summary of a run stopped by a non-finite loss (no test evaluation)."""
    if out is not None:
        write_json(out / "summary.json", {"status": status, "epochs_run": epochs_run,
                                          "skipped_steps": skipped_steps})


def write_results(out: Path | None, summary: dict, pred: list[int], best: dict | None, history: list[dict],
                  title: str) -> None:
    """summary.json, test_predictions.json, the published best.pt (weights + config + summary, no
    optimizer) and curves.png."""
    if out is None:
        return
    write_json(out / "summary.json", summary)
    write_json(out / "test_predictions.json", {"pred": pred})
    if best is not None:
        save_checkpoint(out / "best.pt", {**best, "summary": summary})
    plot_curves(history, out / "curves.png", title=title)


def epoch_summary(history: list[dict], best_epoch: int) -> dict:
    """Train and validation numbers of the selected epoch (the one the test numbers belong to), and
    the last epoch's under last_epoch_* keys."""
    last = history[-1] if history else {}
    sel = next((r for r in history if r["epoch"] == best_epoch), last)
    return {"epochs_run": len(history), "best_epoch": best_epoch,
            "train_loss": sel.get("train_loss"), "train_acc": sel.get("train_acc"),
            "val_acc": sel.get("val_acc"), "val_loss": sel.get("val_loss"),
            "last_epoch_train_loss": last.get("train_loss"), "last_epoch_train_acc": last.get("train_acc"),
            "last_epoch_val_acc": last.get("val_acc")}


def timing_summary(history: list[dict], total_s: float) -> dict:
    """Wall time of the whole run, of the training epochs, and the training throughput."""
    seen = sum(r["images_per_s"] * r["epoch_time_s"] for r in history)
    train_time = sum(r["epoch_time_s"] for r in history)
    return {"total_time_s": total_s, "train_time_s": train_time, "images_per_s": seen / max(train_time, 1e-9)}
