"""The doctor on cifarlab's own pipeline (assembled by cifarlab.pipeline.build) and on user scripts."""
from __future__ import annotations

import importlib.util
import weakref
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .core import Report, diagnose


class PipelineLoader:
    """cifarlab's on-device batches as (float images, labels), the way train() feeds the model."""

    def __init__(self, loader, transform):
        self.loader, self.transform = loader, transform
        self.raw_images = loader.x.cpu().numpy()
        self.epoch = 0  # passes so far: the alternating flip and progressive resizing depend on it

    def __iter__(self):
        from ..augment import Augmenter

        for idx, xb, yb in self.loader.with_indices():
            yield (self.transform(xb, idx, self.epoch) if isinstance(self.transform, Augmenter)
                   else self.transform(xb)), yb
        self.epoch += 1

    def __len__(self):
        return len(self.loader)


def preset_pipeline(preset: str, overrides: list[str] | None = None, data_dir=None,
                    eval_split: str = "test") -> dict[str, Any]:
    """The diagnose() arguments for cifarlab's pipeline of a preset (CPU, fp32), with its own step and eval."""
    from ..config import make_config
    from ..evaluate import evaluate
    from ..engine import train_step as engine_step
    from ..optim import lr_at, set_lr
    from ..pipeline import build
    from .. import data as data_mod

    cfg = make_config(preset, overrides or [])
    pipe = build(cfg, data_dir, "cpu")
    rt, sp = pipe.runtime, pipe.splits
    train = pipe.train_loader(torch.Generator().manual_seed(cfg.train.seed))
    ex, ey = (sp.test_x, sp.test_y) if eval_split == "test" else (sp.val_x, sp.val_y)
    ev = data_mod.DeviceLoader(ex, ey, 250, rt.device)  # small batches: the mode checks read one or two

    total_steps = cfg.train.epochs * len(train)
    lr_unit = pipe.lr_unit
    # per optimizer copy: each check starts the schedule (warm-up) again. Weak keys, not id(): a copy freed
    # by one check can hand its id to the next check's copy, which would then inherit its step count
    steps_done: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def step(model, images, labels, loss_fn, optimizer):  # the engine's own step, on the engine's schedule
        k = steps_done.get(optimizer, 0)
        steps_done[optimizer] = k + 1
        if any(g["lr"] for g in optimizer.param_groups):  # a check that set the lr to 0 keeps it there
            set_lr(optimizer, lr_at(k, total_steps, cfg.optim, len(train)), lr_unit)
        return engine_step(model, images, labels, optimizer, rt, cfg.optim)[0]

    def evaluate_fn(model, loader, loss_fn):  # the engine's own evaluation (of the first len(loader) batches)
        base = loader.loader
        n = min(len(loader) * base.batch_size, len(base.x))
        m = evaluate(model, base.x[:n], base.y[:n], pipe.normalize, rt, base.batch_size)
        return m.loss, m.top1 / 100

    return {"model": pipe.model, "loss_fn": nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing),
            "optimizer": pipe.optimizer(),
            "train_loader": PipelineLoader(train, pipe.augmenter(torch.Generator().manual_seed(cfg.train.seed + 1))),
            "eval_loader": PipelineLoader(ev, pipe.normalize), "num_classes": pipe.num_classes,
            "train_step": step, "evaluate": evaluate_fn}


def diagnose_preset(preset: str, overrides: list[str] | None = None, data_dir=None, **kw) -> Report:
    """diagnose() on a preset's pipeline; keyword arguments (checks, budget_s) go to diagnose()."""
    return diagnose(**preset_pipeline(preset, overrides, data_dir), **kw)


def diagnose_script(path: str | Path, budget_s: float | None = None) -> Report:
    """Import a user file whose pipeline() returns a dict of diagnose() arguments, and diagnose it (within
    `budget_s` CPU seconds for all checks when given)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"doctor script not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_cifarlab_doctor_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "pipeline"):
        raise ConfigError(f"{path}: define pipeline() returning a dict with model, loss_fn, optimizer, "
                         "train_loader, eval_loader, num_classes (optionally train_step, evaluate, fit)")
    return diagnose(**module.pipeline(), budget_s=budget_s)
