"""TensorBoard logging of a run (`log.tensorboard=true`): event files in <run dir>/tensorboard/.

Per epoch: the epoch's scalars (losses, accuracies, lr, img/s, epoch time), a grid of the first
augmented training batch as the model saw it (de-normalized), and the validation confusion matrix.
At the end: the test confusion matrix and the hyper-parameters (the flattened config) with the final
metrics, for TensorBoard's HParams dashboard. The train loop hands over what it already computed, so
logging adds no host sync per step. Imported only when the key is on; tensorboard is an optional
dependency (`pip install 'cifarlab[tensorboard]'`).
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import Config, flatten
from .errors import ConfigError, RunError
from .viz import confusion_figure

INSTALL_HINT = "pip install 'cifarlab[tensorboard]'"
GRID_IMAGES = 64  # images of the first augmented batch shown per epoch (8 x 8 grid)

# metrics.jsonl key -> TensorBoard tag (the part before "/" is the dashboard's group)
SCALARS = {"train_loss": "loss/train", "val_loss": "loss/val", "train_acc": "accuracy/train",
           "val_acc": "accuracy/val", "val_top5": "accuracy/val_top5", "lr": "optim/lr",
           "images_per_s": "speed/images_per_s", "epoch_time_s": "speed/epoch_time_s"}
# summary.json key -> the HParams dashboard's metric tag
FINAL_METRICS = {"test_acc": "hparam/test_acc", "test_top5": "hparam/test_top5", "test_loss": "hparam/test_loss",
                 "val_acc": "hparam/val_acc", "best_epoch": "hparam/best_epoch"}


def summary_writer_class():
    """torch's SummaryWriter; a ConfigError naming the key and the fix when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        raise ConfigError(f"config key 'log.tensorboard': needs the tensorboard package ({e}); "
                          f"{INSTALL_HINT}, or set log.tensorboard=false") from None
    return SummaryWriter


class Board:
    """One run's TensorBoard writer. The loop calls keep_batch / keep_confusion during an epoch,
    epoch(rec) after it, and close(summary) once at the end."""

    def __init__(self, cfg: Config, out: Path | None, *, classes: list[str], mean, std,
                 test_y: torch.Tensor, start_epoch: int = 0):
        writer_cls = summary_writer_class()
        if out is None:
            raise RunError("log.tensorboard=true writes into the run folder: pass out=... "
                           "(`cifarlab train` always has one)")
        self.cfg, self.out, self.classes, self.test_y = cfg, Path(out), classes, test_y
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self._batch: torch.Tensor | None = None
        self._confusion: list[list[int]] | None = None
        # a resumed run may have logged epochs its checkpoint does not hold: purge_step drops them
        self.writer = writer_cls(log_dir=str(self.out / "tensorboard"),
                                 purge_step=start_epoch + 1 if start_epoch else None)

    def keep_batch(self, inputs: torch.Tensor) -> None:
        """The first images of an augmented, normalized batch (B,3,H,W); copied on the device (async)."""
        self._batch = inputs[:GRID_IMAGES].detach().clone()

    def keep_confusion(self, confusion: list[list[int]] | None) -> None:
        self._confusion = confusion

    def epoch(self, rec: dict) -> None:
        """Write one epoch's record (metrics.jsonl layout) and what was kept during it; step = epoch."""
        step = rec["epoch"]
        for key, tag in SCALARS.items():
            if rec.get(key) is not None:
                self.writer.add_scalar(tag, rec[key], step)
        if self._batch is not None:
            self.writer.add_image("images/augmented_batch", self._grid(self._batch), step)
        if self._confusion is not None:
            self.writer.add_figure("confusion/val", confusion_figure(
                self._confusion, self.classes, f"validation, epoch {step} (row-normalized)"), step)
        self._batch = self._confusion = None
        self.writer.flush()  # a killed run keeps every finished epoch

    def close(self, summary: dict) -> None:
        """Test confusion (from test_predictions.json) and hyper-parameters with the final metrics."""
        from torch.utils.tensorboard.summary import hparams

        step = summary.get("epochs_run", 0)
        pred_file = self.out / "test_predictions.json"
        if pred_file.is_file():
            from .io import read_json

            pred = torch.tensor(read_json(pred_file)["pred"])
            n = len(self.classes)
            conf = torch.bincount(self.test_y * n + pred, minlength=n * n).view(n, n).tolist()
            self.writer.add_figure("confusion/test", confusion_figure(
                conf, self.classes, f"test, selected epoch {summary.get('best_epoch')} (row-normalized)"), step)
        metrics = {tag: float(summary[k]) for k, tag in FINAL_METRICS.items() if summary.get(k) is not None}
        for summ in hparams(hparam_values(self.cfg), metrics):
            self.writer.file_writer.add_summary(summ)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.close()

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 (3, H, W) grid of de-normalized images (cutout shows as the mean colour)."""
        from torchvision.utils import make_grid

        x = (x.float().cpu() * self.std + self.mean).clamp_(0, 1)
        return make_grid(x, nrow=8, padding=2).mul_(255).round_().to(torch.uint8)


def hparam_values(cfg: Config) -> dict:
    """The flattened config (dotted keys) the run trained with, plus its name and config hash."""
    d = cfg.to_dict()
    d.pop("log"), d.pop("description")
    return {"config_hash": cfg.hash(), **flatten(d)}
