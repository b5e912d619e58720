"""The one place that assembles a run: data -> splits -> normalizer -> model -> runtime.

`build(cfg)` is what `train()`, `evaluate_checkpoint()` and the doctor start from, so all three see the
same data, split, normalization constants, model and initial weights for a config:

    pipe = build(cfg, data_dir=None, runtime=None)     # runtime None: pick_device(cfg.train)
    pipe.model, pipe.splits.train_x, pipe.normalize, pipe.runtime, pipe.num_classes
    loader = pipe.train_loader(torch.Generator().manual_seed(cfg.train.seed))
    augment = pipe.augmenter(torch.Generator(device=pipe.runtime.device).manual_seed(cfg.train.seed + 1))
    optimizer, lr_unit = pipe.optimizer(), pipe.lr_unit    # set_lr(optimizer, lr_at(...), lr_unit)
    lookahead = pipe.lookahead(total_steps)                # None without optim.lookahead_every

`build` seeds the process's global generators from cfg.train.seed (training draws dropout from them);
`kept_rng()` around a call keeps the caller's.
"""
from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as data_mod
from .augment import Augmenter, Normalizer
from .checkpoint import load_checkpoint, load_weights
from .config import Config, from_dict, parse_widths
from .errors import CheckpointError
from .models import MODEL_OPTIONS, build_model
from .optim import Lookahead, build_optimizer, torch_lr_wd
from .runtime import Runtime, fp32_runtime, pick_device


@dataclass
class Pipeline:
    """One assembled run. Images stay uint8 until `normalize` (eval) or an `augmenter` (training)."""
    cfg: Config
    runtime: Runtime  # device, precision, memory format
    data: data_mod.CifarData  # the whole dataset (train + test), CPU
    splits: data_mod.Splits  # train / val (stratified hold-out) / test, CPU
    normalize: Normalizer  # eval path: uint8 (B,3,32,32) -> normalized float on runtime.device
    model: nn.Module  # on runtime.device in runtime.memory_format, initialised from cfg.train.seed

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def train_loader(self, generator: torch.Generator) -> data_mod.DeviceLoader:
        """Shuffled fixed-size training batches on the device; `generator` (CPU) draws each epoch's order."""
        return data_mod.DeviceLoader(self.splits.train_x, self.splits.train_y, self.cfg.train.batch_size,
                                     self.runtime.device, shuffle=True, generator=generator)

    def augmenter(self, generator: torch.Generator) -> Augmenter:
        """Training transform (augment, then normalize); `generator` lives on runtime.device."""
        return Augmenter(self.cfg.augment, self.normalize, generator, n_train=len(self.splits.train_y))

    def optimizer(self) -> torch.optim.Optimizer:
        """The optimizer optim.* describes, over the model's parameters."""
        return build_optimizer(self.model, self.cfg.optim, self.cfg.train.batch_size, self.runtime.ns_dtype)

    @property
    def lr_unit(self) -> float:
        """torch lr per unit of optim.lr (optim.per_1024 converts); set_lr multiplies by it."""
        o = self.cfg.optim
        return torch_lr_wd(o, self.cfg.train.batch_size)[0] / o.lr if o.lr else 1.0

    def lookahead(self, total_steps: int) -> Lookahead | None:
        """Lookahead's slow weights over the model (optim.lookahead_every), else None."""
        o = self.cfg.optim
        return Lookahead(self.model, o.lookahead_every, o.lookahead_decay, total_steps) if o.lookahead_every else None


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def kept_rng():
    """The caller's Python, NumPy and torch (CPU and CUDA) generator states, put back on exit: a library
    call that builds a pipeline must not reseed the program that called it."""
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def new_model(cfg: Config, num_classes: int) -> nn.Module:
    """The model `cfg` describes, freshly initialised from the global torch RNG (CPU, fp32)."""
    options = {k: getattr(cfg.model, k) for k in MODEL_OPTIONS.get(cfg.model.name, ())}
    if "widths" in options:
        options["widths"] = parse_widths(options["widths"])
    return build_model(cfg.model.name, num_classes, cfg.model.width, cfg.model.dropout, **options)


def build(cfg: Config, data_dir=None, runtime: Runtime | str | torch.device | None = None, *,
          weights_from: str | Path | None = None) -> Pipeline:
    """Assemble the run `cfg` describes.

    runtime: None picks device and precision from cfg.train (training); a device ("cpu", "cuda")
    gives the fp32 evaluation runtime on it; a Runtime is used as is.
    weights_from: a cifarlab checkpoint whose weights replace the initial ones.
    """
    if runtime is None:
        runtime = pick_device(cfg.train)
    elif not isinstance(runtime, Runtime):
        runtime = fp32_runtime(runtime)
    ds = data_mod.load(cfg.data.dataset, data_dir, cfg.data.download)
    splits = data_mod.make_splits(ds, cfg.data.val_size, cfg.data.split_seed, cfg.data.train_subset,
                                  cfg.data.test_subset)
    seed_everything(cfg.train.seed)
    model = new_model(cfg, ds.num_classes)
    if weights_from is not None:
        load_weights(model, load_checkpoint(weights_from), weights_from,
                     target=f"{cfg.model.name} with {ds.num_classes} classes")
    model = model.to(runtime.device, memory_format=runtime.memory_format)
    normalize = Normalizer(ds.spec.mean, ds.spec.std, runtime.device, runtime.memory_format)
    return Pipeline(cfg, runtime, ds, splits, normalize, model)


def checkpoint_config(state: dict, path: str | Path) -> Config:
    """The config embedded in a loaded checkpoint, validated."""
    if "config" not in state:
        raise CheckpointError(f"{path}: no embedded config; not a cifarlab model checkpoint")
    return from_dict(state["config"], source=f"{path} (embedded config)")


def load_model(path: str | Path, device: str = "cpu") -> tuple[nn.Module, Config, dict]:
    """(model in eval mode on `device`, config, checkpoint dict) from a cifarlab checkpoint; no data.
    The caller's random generators are left as they were."""
    state = load_checkpoint(path, map_location=device)
    cfg = checkpoint_config(state, path)
    num_classes = data_mod.SPECS[cfg.data.dataset].num_classes
    with kept_rng():  # the initialisation the checkpoint's weights replace draws from the global generator
        model = new_model(cfg, num_classes)
    load_weights(model, state, path, target=f"{cfg.model.name} with {num_classes} classes")
    return model.to(device).eval(), cfg, state
