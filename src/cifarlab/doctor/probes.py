"""Instruments the checks share: limited loaders, image identity, layer traces, mode spies, the loop run."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .limits import LOOP_EPOCHS, LOOP_TRAIN_BATCHES

DROPOUTS = nn.modules.dropout._DropoutNd
BATCHNORMS = nn.modules.batchnorm._BatchNorm
MODE_LAYERS = (DROPOUTS, BATCHNORMS)


class Limited:
    """The first `n` batches of a loader; other attributes pass through (len(loader.dataset) etc.).

    `on_batch(tag, images)` is called for every batch it yields (the loop run tags forwards with it).
    """

    def __init__(self, loader, n: int, tag: str = "", on_batch=None, max_items: int | None = None):
        self._loader, self._n, self._tag, self._on_batch, self._max = loader, n, tag, on_batch, max_items

    def __iter__(self):
        for i, batch in enumerate(self._loader):
            if i >= self._n:
                break
            if self._max is not None:
                batch = tuple(b[:self._max] for b in batch)
            if self._on_batch is not None:
                self._on_batch(self._tag, batch[0])
            yield batch

    def __len__(self):
        try:
            return min(self._n, len(self._loader))
        except TypeError:
            return self._n

    def __getattr__(self, name):
        return getattr(self._loader, name)


def logits_of(out):
    """The logits tensor of a model's output: the output itself, or the first tensor of a tuple/list."""
    if isinstance(out, (tuple, list)):
        return next((o for o in out if torch.is_tensor(o)), None)
    return out if torch.is_tensor(out) else None


def loss_value(loss) -> float | None:
    if loss is None:
        return None
    try:
        return float(torch.as_tensor(loss).detach().float().mean())
    except (TypeError, ValueError, RuntimeError):
        return None


# ---------------------------------------------------------------- image identity

def row_hashes(arr) -> list[bytes]:
    arr = arr.detach().cpu().numpy() if torch.is_tensor(arr) else np.asarray(arr)
    flat = np.ascontiguousarray(arr.reshape(len(arr), -1))
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in flat]


def batch_hashes(loader, limit: int | None = None) -> list[bytes]:
    out = []
    for i, batch in enumerate(loader):
        if limit is not None and i >= limit:
            break
        out += row_hashes(batch[0])
    return out


_RAW_NAMES = ("data", "images", "imgs", "x", "X", "inputs", "samples", "image_paths", "files")


def _raw_of(ds) -> list | np.ndarray | torch.Tensor | None:
    """The un-transformed items of a dataset, one row per index: image arrays or file paths."""
    try:
        n = len(ds)
    except TypeError:
        return None
    candidates = [getattr(ds, k, None) for k in _RAW_NAMES]
    candidates += [v for v in vars(ds).values()] if hasattr(ds, "__dict__") else []
    for v in candidates:
        if isinstance(v, (np.ndarray, torch.Tensor)) and v.ndim >= 2 and len(v) == n:
            return v
        if isinstance(v, list) and len(v) == n and v and isinstance(v[0], (str, tuple, np.ndarray)):
            return v  # file paths, (path, label) pairs or per-item arrays
    return None


def _item_hash(item) -> bytes:
    if isinstance(item, tuple):  # (path, label)
        item = item[0]
    data = np.ascontiguousarray(item).tobytes() if isinstance(item, np.ndarray) else str(item).encode()
    return hashlib.blake2b(data, digest_size=16).digest()


def _sampler_indices(loader) -> np.ndarray | None:
    """The dataset indices a DataLoader reads in one pass (order ignored), through its sampler."""
    sampler = getattr(loader, "sampler", None)
    if sampler is None:
        return None
    idx = getattr(sampler, "indices", None)  # SubsetRandomSampler
    if idx is not None:
        return np.asarray(list(idx), dtype=np.int64)
    if isinstance(sampler, (torch.utils.data.SequentialSampler, torch.utils.data.RandomSampler)) and \
            not getattr(sampler, "replacement", False):
        return np.arange(len(loader.dataset))
    return np.fromiter(iter(sampler), dtype=np.int64)


def item_hashes(loader) -> list[bytes] | None:
    """Content hashes of the raw items a loader reads (sampler, Subset chains and arrays resolved).

    cifarlab loaders expose `raw_images`; torchvision-style datasets `.data`; custom datasets any
    array attribute with one row per item, or a list of file paths. None when nothing is reachable.
    """
    raw = getattr(loader, "raw_images", None)
    if raw is not None:
        return row_hashes(raw)
    ds = getattr(loader, "dataset", None)
    if not isinstance(ds, Dataset) or not isinstance(loader, (DataLoader, Limited)):
        return None
    idx = _sampler_indices(loader)
    while isinstance(ds, Subset):
        sub = np.asarray(ds.indices, dtype=np.int64)
        idx = sub if idx is None else sub[idx]
        ds = ds.dataset
    raw = _raw_of(ds)
    if raw is None:
        return None
    if idx is None:
        idx = np.arange(len(raw))
    if isinstance(raw, list):
        return [_item_hash(raw[i]) for i in idx]
    return row_hashes(raw[torch.as_tensor(idx)] if torch.is_tensor(raw) else raw[idx])


# ---------------------------------------------------------------- layers

def forward_trace(model: nn.Module, x: torch.Tensor):
    """Run model(x) recording, per leaf module in execution order, (name, module, input, output).

    Tensors are cloned at the moment they are seen: an in-place op after a layer (ReLU(inplace=True))
    would otherwise rewrite the recorded output.
    """
    trace, hooks = [], []
    names = {m: n for n, m in model.named_modules()}

    def record(mod, inp, out):
        first = inp[0] if inp and torch.is_tensor(inp[0]) else None
        trace.append((names[mod], mod, None if first is None else first.detach().clone(),
                      out.detach().clone() if torch.is_tensor(out) else None))

    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(record))
    try:
        out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, trace


def mode_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, MODE_LAYERS)]


def frozen_batchnorms(model: nn.Module) -> list[int]:
    """Positions, in mode_layers(model), of the batch-norm layers frozen on purpose: they have parameters and
    none of them requires grad (a backbone frozen with requires_grad=False freezes its batch-norm affine too).
    """
    return [i for i, m in enumerate(mode_layers(model)) if isinstance(m, BATCHNORMS)
            and (params := list(m.parameters())) and not any(p.requires_grad for p in params)]


# ---------------------------------------------------------------- the loop run

class LoopRecord:
    """What happened during a run of the user's loop: each forward with its phase and layer modes."""

    def __init__(self):
        self.phase = "?"  # the loader that yielded last: "train" or "eval"
        self.last = {}  # phase -> fingerprint of its last batch
        self.forwards: list[tuple[str, list[bool]]] = []  # (phase, training flag of each mode layer)

    @staticmethod
    def _fingerprint(x) -> torch.Tensor | None:
        if not torch.is_tensor(x) or x.numel() == 0:
            return None
        return x.detach().reshape(-1)[:256].float().cpu()

    def on_batch(self, tag: str, images) -> None:
        self.phase = tag
        self.last[tag] = self._fingerprint(images)

    def phase_of(self, x) -> str:
        fp = self._fingerprint(x)
        if fp is not None:
            for tag, last in self.last.items():
                if last is not None and last.shape == fp.shape and torch.equal(last, fp):
                    return tag
        if not torch.is_grad_enabled():
            return "eval"  # images from elsewhere (the evaluation read the arrays itself) under no_grad
        return self.phase  # the images were changed on the way (device, dtype, mixup): the last loader


def _default_fit(ctx):
    def fit(model, loss_fn, optimizer, train_loader, eval_loader, epochs):
        for _ in range(epochs):  # the common loop: train an epoch, then evaluate
            for images, labels in train_loader:
                ctx.train_step(model, images, labels, loss_fn, optimizer)
            ctx.evaluate(model, eval_loader, loss_fn)
    return fit


def run_loop(ctx, model: nn.Module, optimizer) -> LoopRecord:
    """Run the user's loop (ctx.fit, or train_step epochs each followed by evaluate) on a few batches."""
    rec = LoopRecord()
    layers = mode_layers(model)

    def pre_hook(mod, inp):
        rec.forwards.append((rec.phase_of(inp[0] if inp else None), [m.training for m in layers]))

    handle = model.register_forward_pre_hook(pre_hook)
    n = len(ctx.batch[0])  # the modes do not depend on the batch size: as few images as the other checks
    train = Limited(ctx.train_loader, int(LOOP_TRAIN_BATCHES.value), "train", rec.on_batch, max_items=n)
    evals = Limited(ctx.eval_loader, 1, "eval", rec.on_batch, max_items=n)
    try:
        (ctx.fit or _default_fit(ctx))(model, ctx.loss_fn, optimizer, train, evals, int(LOOP_EPOCHS.value))
    finally:
        handle.remove()
    return rec


@contextmanager
def dropout_off(model: nn.Module):
    """Dropout modules in eval mode (batch-norm untouched) for the duration."""
    drops = [m for m in model.modules() if isinstance(m, DROPOUTS) and m.training]
    for m in drops:
        m.eval()
    try:
        yield
    finally:
        for m in drops:
            m.train()


def first(iterable: Iterable):
    return next(iter(iterable))
