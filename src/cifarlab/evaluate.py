"""Evaluation: top-1, top-5, mean loss, per-class accuracy and the confusion matrix."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .augment import Normalizer
from .runtime import Runtime


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
            batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, C) in float32 for uint8 images (N, 3, 32, 32); the model is put in eval mode."""
    model.eval()
    out = []
    for i in range(0, len(x_uint8), batch_size):
        xb = normalize(x_uint8[i:i + batch_size].to(runtime.device))
        with runtime.autocast():
            out.append(model(xb).float())
    return torch.cat(out) if out else torch.empty(0)


@torch.inference_mode()
def evaluate(model: nn.Module, x_uint8: torch.Tensor, y: torch.Tensor, normalize: Normalizer,
             runtime: Runtime, batch_size: int = 1000, confusion: bool = False) -> Metrics:
    """Evaluate in eval mode without augmentation. Sums accumulate in float64 for exact counts."""
    return metrics_from_logits(predict(model, x_uint8, normalize, runtime, batch_size), y, confusion)


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
