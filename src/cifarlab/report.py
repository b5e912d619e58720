"""Figures and tables from stored run files. matplotlib is imported lazily with the Agg backend."""
from __future__ import annotations

import io
from pathlib import Path

from .checkpoint import write_bytes


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """PNG via an in-memory buffer, written atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    write_bytes(path, buf.getvalue())


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Loss and accuracy, train vs validation, against epoch."""
    plt = _plt()
    ep = [r["epoch"] for r in history]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_l.plot(ep, [r["train_loss"] for r in history], "o-", label="train")
    ax_a.plot(ep, [r["train_acc"] for r in history], "o-", label="train (augmented, running)")
    if history and history[0].get("val_acc") is not None:
        ax_l.plot(ep, [r["val_loss"] for r in history], "s-", label="val")
        ax_a.plot(ep, [r["val_acc"] for r in history], "s-", label="val")
    ax_l.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_a.set(xlabel="epoch", ylabel="top-1 accuracy (%)", title="accuracy")
    for ax in (ax_l, ax_a):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    save_figure(fig, path)
