"""Which of the objects a script created are its model, optimizer, loss and loaders — decided from the
trace (what stepped, what was backpropagated, which loader fed training), not from names."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial

import torch.nn.functional as F
from torch import nn
from torch.utils.data import Subset

from .trace import Trace


@dataclass
class Captured:
    model: nn.Module | None = None
    optimizer: object | None = None
    loss_fn: object | None = None
    train_loader: object | None = None
    eval_loader: object | None = None
    num_classes: int = 0

    def missing(self) -> str:
        need = {"a model called on a batch": self.model, "an optimizer": self.optimizer,
                "a training DataLoader": self.train_loader}
        return ", ".join(k for k, v in need.items() if v is None)

    def describe(self, trace: Trace) -> list[str]:
        phases = Counter(trace.phase(c) for c in trace.calls if c.module is self.model)
        lines = [f"observed: {phases['train']} training and {phases['eval']} evaluation forwards of "
                 f"{type(self.model).__name__ if self.model is not None else 'no model'}, {trace.backwards} "
                 f"backward, {trace.steps} {type(self.optimizer).__name__} steps"
                 + (f" (lr {self.optimizer.param_groups[0]['lr']:g})" if self.optimizer is not None else "")]
        for use in trace.loaders.values():
            if use.passes:
                role = "training" if use.loader is self.train_loader else \
                    "evaluation" if use.loader is self.eval_loader else "other"
                lines.append(f"loader ({role}): {describe_loader(use.loader)}; {use.passes} passes, "
                             f"{use.batches} batches seen")
        if trace.cut:
            lines.append(f"audit cut: {trace.cut}")
        return lines


def describe_loader(loader) -> str:
    ds = getattr(loader, "dataset", None)
    base = ds
    while isinstance(base, Subset):
        base = base.dataset
    transform = " ".join(repr(getattr(base, "transform", None)).split())
    sampler = type(getattr(loader, "sampler", None)).__name__
    return (f"{type(ds).__name__} of {len(ds) if hasattr(ds, '__len__') else '?'} items, batch "
            f"{getattr(loader, 'batch_size', '?')}, {sampler}, transform {transform[:120]}")


def _model(trace: Trace):
    """The module whose calls were backpropagated most (else the one called most)."""
    trained = Counter(id(c.module) for c in trace.calls if trace.phase(c) == "train")
    called = Counter(id(c.module) for c in trace.calls)
    best = (trained or called).most_common(1)
    return next((c.module for c in trace.calls if best and id(c.module) == best[0][0]), None)


def _optimizer(trace: Trace, model):
    if trace.stepped:
        return trace.stepped[-1]
    if model is None:
        return None
    params = {p for p in model.parameters()}
    return next((o for o in reversed(trace.optimizers)
                 if any(p in params for g in o.param_groups for p in g["params"])), None)


def _loss(trace: Trace):
    loss = trace.loss_fn
    if isinstance(loss, tuple):  # a functional loss: the same function with the script's keyword arguments
        name, kwargs = loss
        return partial(getattr(F, name), **kwargs)
    return loss if loss is not None else nn.CrossEntropyLoss()


def _loaders(trace: Trace, model):
    uses = list(trace.loaders.values())
    train = max(uses, key=lambda u: (u.train_passes, u.batches), default=None)
    if train is None or not (train.train_passes or train.batches):
        return None, None
    fed_eval = Counter(id(c.loader) for c in trace.calls if c.module is model and trace.phase(c) == "eval"
                       and c.loader is not None and c.loader is not train.loader)
    if fed_eval:
        ev = next(u.loader for u in uses if id(u.loader) == fed_eval.most_common(1)[0][0])
    else:  # no evaluation ran in the audit: the last other loader the script created
        ev = next((u.loader for u in reversed(uses) if u is not train), None)
    return train.loader, ev


def _num_classes(loader, model) -> int:
    ds = getattr(loader, "dataset", None)
    while isinstance(ds, Subset):
        ds = ds.dataset
    classes = getattr(ds, "classes", None)
    if classes is not None and len(classes) > 1:
        return len(classes)
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets):
        return int(max(int(t) for t in targets)) + 1
    last = [m for m in model.modules() if isinstance(m, nn.Linear)] if model is not None else []
    return last[-1].out_features if last else 0


def pick_objects(trace: Trace) -> Captured:
    model = _model(trace)
    train, ev = _loaders(trace, model)
    return Captured(model, _optimizer(trace, model), _loss(trace), train, ev,
                    _num_classes(train, model) if train is not None else 0)
