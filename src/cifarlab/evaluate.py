"""Evaluation: predict, evaluate, metrics (top-1, top-5, mean loss, per-class accuracy, confusion matrix),
and evaluate_checkpoint (behind `cifarlab eval` and `cifarlab.evaluate_checkpoint`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .augment import Normalizer
from .checkpoint import load_checkpoint
from .errors import ConfigError
from .pipeline import build, checkpoint_config, kept_rng
from .runtime import Runtime, eval_runtime, fp32_runtime


@dataclass
class Metrics:
    loss: float  # mean cross-entropy (no label smoothing), nats
    top1: float  # percent
    top5: float  # percent
    n: int  # images evaluated
    confusion: list[list[int]] | None = field(default=None, repr=False)  # [true][pred] counts

    def per_class(self) -> list[float]:
        """Accuracy of each true class, percent."""
        if self.confusion is None:
            raise ValueError("evaluate(..., confusion=True) is needed for per-class accuracy")
        c = torch.tensor(self.confusion, dtype=torch.float64)
        return (c.diag() / c.sum(1).clamp(min=1) * 100).tolist()

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("confusion")
        return d


@torch.inference_mode()
def predict(model: nn.Module, x_uint8: torch.Tensor, normalize: Normalizer, runtime: Runtime,
            batch_size: int = 1000, tta: int = 0) -> torch.Tensor:
    """Logits (N, C) in float32 for uint8 images (N, 3, 32, 32); the model is put in eval mode.
    tta: 0 = plain, 1 = mean with the mirror image, 2 = also with 1-pixel translates (see tta_logits)."""
    model.eval()
    out = []
    for i in range(0, len(x_uint8), batch_size):
        xb = normalize(x_uint8[i:i + batch_size].to(runtime.device))
        with runtime.autocast():
            out.append(tta_logits(model, xb, tta, runtime.memory_format))
    return torch.cat(out) if out else torch.empty(0)


def tta_logits(model: nn.Module, xb: torch.Tensor, tta: int,
               memory_format: torch.memory_format = torch.contiguous_format) -> torch.Tensor:
    """Test-time augmentation, float32 logits. Level 1 averages the image and its mirror; level 2
    averages that (weight 1/2) with the same pair shifted one pixel up-left and down-right (1/4 each,
    reflect padding): 6 forward passes. Mirror and translate are the training augmentations, so the
    model is invariant to them on average, and averaging cancels part of its per-view error."""
    def mirror_mean(x):
        logits = model(x).float()
        return 0.5 * (logits + model(x.flip(-1)).float()) if tta >= 1 else logits

    logits = mirror_mean(xb)
    if tta >= 2:
        h, w = xb.shape[-2:]
        padded = F.pad(xb, (1, 1, 1, 1), mode="reflect")
        shifts = [padded[..., :h, :w], padded[..., 2:, 2:]]
        shifted = torch.stack([mirror_mean(x.contiguous(memory_format=memory_format)) for x in shifts])
        logits = 0.5 * logits + 0.5 * shifted.mean(0)
    return logits


@torch.inference_mode()
def evaluate(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, normalize: Normalizer,
             runtime: Runtime, batch_size: int = 1000, confusion: bool = False, tta: int = 0) -> Metrics:
    """Evaluate in eval mode (tta: see predict). Sums accumulate in float64 for exact counts."""
    return metrics_from_logits(predict(model, x_uint8, normalize, runtime, batch_size, tta), y, confusion)


def metrics_from_logits(logits: torch.Tensor, y: torch.Tensor, confusion: bool = False) -> Metrics:
    y = y.to(logits.device)
    if len(y) == 0:
        return Metrics(float("nan"), float("nan"), float("nan"), 0)
    loss = F.cross_entropy(logits.double(), y, reduction="mean").item()
    top5_idx = logits.topk(min(5, logits.shape[1]), dim=1).indices
    top1 = (top5_idx[:, 0] == y).double().mean().item() * 100
    top5 = (top5_idx == y[:, None]).any(1).double().mean().item() * 100
    conf = None
    if confusion:
        c = logits.shape[1]
        conf = torch.bincount(y * c + top5_idx[:, 0], minlength=c * c).view(c, c).tolist()
    return Metrics(loss, top1, top5, len(y), conf)


def evaluate_checkpoint(path: str | Path, split: str = "test", data_dir=None, device: str = "cpu",
                        confusion: bool = False, fp32: bool = False, tta: int | None = None
                        ) -> tuple[Metrics, dict]:
    """Evaluate a checkpoint on the test or validation split exactly as training's final eval (fp32, or the
    training precision with train.eval_precision=train; with the run's test-time augmentation).
    fp32 / tta override those two (e.g. a machine-independent check of a bf16-evaluated checkpoint).

    Returns (metrics, info) where info holds the config, the recorded summary (if any), the data and the
    evaluation actually run ({"precision", "tta"}).
    """
    if split not in ("test", "val"):
        raise ConfigError(f"split must be 'test' or 'val', got {split!r}")
    state = load_checkpoint(path, map_location="cpu")
    cfg = checkpoint_config(state, path)
    if split == "val" and cfg.data.val_size == 0:
        raise ConfigError(f"{path}: this run had no validation split (data.val_size=0)")
    runtime = fp32_runtime(device) if fp32 else eval_runtime(cfg.train, device)
    tta = cfg.train.tta if tta is None else tta
    with kept_rng():  # build() seeds the global generators for training; a library call keeps the caller's
        pipe = build(cfg, data_dir, runtime=runtime, weights_from=path)
    s = pipe.splits
    x, y = (s.test_x, s.test_y) if split == "test" else (s.val_x, s.val_y)
    m = evaluate(pipe.model, x, y, pipe.normalize, pipe.runtime, cfg.train.eval_batch_size, confusion=confusion,
                 tta=tta)
    return m, {"config": cfg, "summary": state.get("summary"), "data": pipe.data,
               "eval": {"precision": runtime.precision, "tta": tta}}


def recorded_metrics(summary: dict | None, evaluated: dict) -> dict | None:
    """The recorded test numbers that an evaluation with `evaluated` ({"precision", "tta"}) must
    reproduce: the training-time ones, or a published checkpoint's `check` block (fp32, for machines
    whose bf16 kernels differ); None when nothing recorded matches that evaluation."""
    if not summary:
        return None
    check = summary.get("check")
    if check and check["precision"] == evaluated["precision"] and check["tta"] == evaluated["tta"]:
        return check
    trained = {"precision": summary.get("eval_precision", "fp32"), "tta": summary.get("tta", 0)}
    if summary.get("test_acc") is not None and trained == evaluated:
        return summary
    return None
