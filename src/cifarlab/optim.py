"""Parameter groups, optimizers and the learning-rate schedule as a pure function of the step."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, decay_norm_bias: bool = False) -> list[dict]:
    """Weight decay on weight matrices and conv kernels; on norm scales/shifts and biases (every
    1-d parameter) only with `decay_norm_bias`, which is what a bare `Adam(model.parameters())` does."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 or decay_norm_bias else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay, cfg.decay_norm_bias)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.name!r}; valid: adam, adamw, sgd")


def lr_at(step: int, total_steps: int, cfg: OptimConfig, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`. Pure: no state."""
    peak, floor = cfg.lr, cfg.lr * cfg.final_lr_frac
    if cfg.schedule == "onecycle":
        # linear rise from 0 to peak over onecycle_pct of the steps, then linear decay to floor
        rise = max(1, round(cfg.onecycle_pct * total_steps))
        if step < rise:
            return peak * (step + 1) / rise
        frac = (step - rise + 1) / max(1, total_steps - rise)
        return peak + (floor - peak) * min(1.0, frac)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.schedule == "constant":
        return peak
    frac = (step - warmup) / max(1, total_steps - warmup)  # cosine
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
