"""Functions behind `cifarlab eval` and the Python API's `cifarlab.evaluate`."""
from __future__ import annotations

from pathlib import Path

import torch

from . import data as data_mod
from .augment import Normalizer
from .checkpoint import CheckpointError, load_checkpoint, load_weights
from .config import from_dict
from .evaluate import Metrics, evaluate
from .models import build_model
from .runtime import fp32_runtime


def load_model(path: str | Path, device: str = "cpu"):
    """(model in eval mode, config, checkpoint dict) from a cifarlab checkpoint."""
    state = load_checkpoint(path, map_location=device)
    try:
        cfg = from_dict(state["config"], source=f"{path} (embedded config)")
    except KeyError:
        raise CheckpointError(f"{path}: no embedded config; not a cifarlab model checkpoint") from None
    num_classes = data_mod.SPECS[cfg.data.dataset].num_classes
    model = build_model(cfg.model.name, num_classes, cfg.model.width, cfg.model.dropout)
    load_weights(model, state, path, target=f"{cfg.model.name} with {num_classes} classes")
    return model.to(device).eval(), cfg, state


def evaluate_checkpoint(path: str | Path, split: str = "test", data_dir=None, device: str = "cpu",
                        confusion: bool = False) -> tuple[Metrics, dict]:
    """Evaluate a checkpoint on the test or validation split in fp32, exactly as training's final eval.

    Returns (metrics, info) where info holds the config, the recorded summary (if any) and the data.
    """
    if split not in ("test", "val"):
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    model, cfg, state = load_model(path, device)
    ds = data_mod.load(cfg.data.dataset, data_dir, cfg.data.download)
    if split == "test":
        x, y = ds.test_x, ds.test_y
    else:
        if cfg.data.val_size == 0:
            raise ValueError(f"{path}: this run had no validation split (data.val_size=0)")
        s = data_mod.make_splits(ds, cfg.data.val_size, cfg.data.split_seed)
        x, y = s.val_x, s.val_y
    rt = fp32_runtime(device)
    with torch.no_grad():
        m = evaluate(model, x, y, Normalizer(ds.spec.mean, ds.spec.std, rt.device), rt,
                     cfg.train.eval_batch_size, confusion=confusion)
    return m, {"config": cfg, "summary": state.get("summary"), "data": ds}
