"""Checkpoint schemas, saving and safe loading.

A checkpoint is a dict with `format` = FORMAT and the keys below; it is written atomically (io.py) and
loaded with `torch.load(weights_only=True)`: tensors and plain containers only, never arbitrary
unpickling.

- resumable (`last.pt`): config, num_classes, model, optimizer, progress, rng, device
- selected weights (`best.pt`, published): config, num_classes, model, epoch, and once the run has
  finished its summary (no optimizer state)
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from .errors import CheckpointError
from .io import write_bytes

FORMAT = "cifarlab-checkpoint-v1"


def save_checkpoint(path, state: dict) -> None:
    state = {"format": FORMAT, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a cifarlab checkpoint with weights_only=True; refuse anything that needs full unpickling."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects that only full unpickling could build, which "
            f"can run arbitrary code ({str(e).splitlines()[0]}). Only load checkpoints written by "
            "cifarlab from sources you trust.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cifarlab checkpoint (expected format {FORMAT!r})")
    return state


def load_weights(model: torch.nn.Module, state: dict, path="checkpoint", target: str | None = None) -> None:
    """Load state['model'] into `model`, failing with a message that names both architectures.

    `target` describes `model` (e.g. "cnn with 100 classes") for that message.
    """
    cfg = state.get("config", {})
    saved = f"{cfg.get('model', {}).get('name', '?')} with {state.get('num_classes', '?')} classes"
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: weights are for {saved}, which does not match the model being loaded "
            f"({target or type(model).__name__}): {first}") from None
