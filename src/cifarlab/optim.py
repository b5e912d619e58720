"""Parameter groups, optimizers and the learning-rate schedule as a pure function of the step."""
from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, decay_norm_bias: bool = False,
                 lr_scale_1d: float = 1.0) -> list[dict]:
    """Weight decay on weight matrices and conv kernels; on norm scales/shifts and biases (every
    1-d parameter) only with `decay_norm_bias`, which is what a bare `Adam(model.parameters())` does.
    Each group carries `lr_scale`, its learning rate relative to the schedule's (set_lr applies it);
    1-d parameters get `lr_scale_1d`, with their decay divided by it so the decay per step stays put."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
            {"params": no_decay, "weight_decay": weight_decay / lr_scale_1d if decay_norm_bias else 0.0,
             "lr_scale": lr_scale_1d}]


def kilo_examples(momentum: float) -> float:
    """Examples per unit of `optim.lr` when it is stated per 1,024 examples: SGD with (Nesterov)
    momentum m multiplies the step by about 1 + 1/(1-m), so that factor is divided out too."""
    return 1024 * (1 + 1 / (1 - momentum))


def torch_lr_wd(cfg: OptimConfig, batch_size: int) -> tuple[float, float]:
    """(lr, weight_decay) as torch's optimizer takes them for a mean-reduced loss.

    per_1024: lr L and weight decay W are per 1,024 examples (airbench's convention): a step then moves
    the weights by L/kilo per example's gradient and decays them by W*batch/kilo, whatever the batch
    size or momentum, so torch gets lr = L*batch/kilo and weight_decay = W/L."""
    if not cfg.per_1024:
        return cfg.lr, cfg.weight_decay
    if batch_size < 1:
        raise ValueError("optim.per_1024 states lr per 1,024 examples: the batch size is needed to convert it")
    return cfg.lr * batch_size / kilo_examples(cfg.momentum), cfg.weight_decay / cfg.lr


def build_optimizer(model: nn.Module, cfg: OptimConfig, batch_size: int = 0,
                    ns_dtype: torch.dtype = torch.float32):
    """The configured optimizer; with optim.muon_lr > 0, conv filters go to Muon and the rest to it.
    ns_dtype: Muon's Newton-Schulz precision, Runtime.ns_dtype (bf16 only where the hardware has it)."""
    lr, wd = torch_lr_wd(cfg, batch_size)
    filters = [p for p in model.filter_banks() if p.requires_grad] if cfg.muon_lr else []
    taken = {id(p) for p in filters}
    groups = param_groups(model, wd, cfg.decay_norm_bias, cfg.norm_bias_lr_scale)
    for g in groups:
        g["lr"] = lr * g["lr_scale"]
        g["params"] = [p for p in g["params"] if id(p) not in taken]
    rest = _torch_optimizer(cfg, [g for g in groups if g["params"]], lr)
    if not filters:
        return rest
    # set_lr gives every group schedule(step) * unit * lr_scale: this scale makes Muon's peak muon_lr
    muon = MuonFilters(filters, cfg.muon_lr, cfg.muon_momentum, lr_scale=cfg.muon_lr / lr, ns_dtype=ns_dtype)
    return Chained(muon, rest)


def _torch_optimizer(cfg: OptimConfig, groups: list[dict], lr: float) -> torch.optim.Optimizer:
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=True)
    raise ValueError(f"unknown optimizer {cfg.name!r}; valid: adam, adamw, sgd")


def _matrix(t: torch.Tensor) -> torch.Tensor:
    """A 4-d conv tensor (out, in, kh, kw) seen as an (out, in*kh*kw) matrix sharing its storage (columns
    in (kh, kw, in) order when it is channels_last; orthogonalization does not depend on column order)."""
    if t.is_contiguous():
        return t.view(t.shape[0], -1)
    if t.is_contiguous(memory_format=torch.channels_last):
        return t.permute(0, 2, 3, 1).view(t.shape[0], -1)
    return t.reshape(t.shape[0], -1)  # a copy: only ever used for gradients, which are read


# Newton-Schulz quintic coefficients and stabiliser of torch.optim.Muon (Keller Jordan's Muon post)
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5
NS_EPS = 1e-7


def newton_schulz(g: torch.Tensor, dtype: torch.dtype, steps: int = NS_STEPS) -> torch.Tensor:
    """Approximate orthogonalization of a batch of matrices g (k, rows, cols), computed in `dtype`:
    torch.optim.Muon's iteration, batched over the k matrices (one bmm per product instead of k mms).
    Returns (k, rows, cols) in `dtype`."""
    a, b, c = NS_COEFFICIENTS
    x = g.to(dtype)
    tall = x.shape[-2] > x.shape[-1]
    if tall:  # iterate on the wide side: the Gram matrix is the smaller one
        x = x.mT
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=NS_EPS)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = torch.baddbmm(x, torch.baddbmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return x.mT if tall else x


class Muon(torch.optim.Optimizer):
    """torch.optim.Muon's update (Nesterov momentum, Newton-Schulz orthogonalization, lr scaled by
    sqrt(max(1, rows/cols))) with Newton-Schulz run in `ns_dtype`. torch.optim.Muon casts every update to
    bf16, which CPUs without native bf16 emulate: on an AVX2 Zen 3 the NS iterations for c100-fast's six
    filter banks took 4.2 s per step in bf16 and 0.07 s in fp32 (benchmarks/results/fp32_step.jsonl).
    On an accelerator same-shape matrices go through NS as one batch (fewer kernel launches); on a CPU one
    at a time, which measured ~20% faster there than a bmm over three 256x2304 banks.
    Hyper-parameters and state ("momentum_buffer") are named as torch's, so checkpoints move between them."""

    def __init__(self, params, lr: float, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_dtype: torch.dtype = torch.float32):
        defaults = {"lr": lr, "momentum": momentum, "nesterov": nesterov, "weight_decay": weight_decay,
                    "ns_coefficients": NS_COEFFICIENTS, "eps": NS_EPS, "ns_steps": NS_STEPS,
                    "adjust_lr_fn": None}
        super().__init__(params, defaults)
        self.ns_dtype = ns_dtype

    # torch.optim.Optimizer pickles (and deep-copies) only defaults, state and param_groups: carry ns_dtype too
    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "ns_dtype": self.ns_dtype}

    def __setstate__(self, state: dict) -> None:
        self.ns_dtype = state.pop("ns_dtype", torch.float32)
        super().__setstate__(state)

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            bufs = [self.state[p].setdefault("momentum_buffer", torch.zeros_like(p)) for p in params]
            m = group["momentum"]
            torch._foreach_lerp_(bufs, grads, 1 - m)
            updates = torch._foreach_lerp(grads, bufs, m) if group["nesterov"] else bufs
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            for idx in _batches(params):
                ortho = newton_schulz(torch.stack([updates[i] for i in idx]), self.ns_dtype, group["ns_steps"])
                rows, cols = params[idx[0]].shape
                torch._foreach_add_([params[i] for i in idx], list(ortho.to(params[idx[0]].dtype).unbind()),
                                    alpha=-group["lr"] * max(1.0, rows / cols) ** 0.5)


def _batches(tensors: list[torch.Tensor]) -> list[list[int]]:
    """Indices to orthogonalize together: same-shape groups on an accelerator, singletons on a CPU."""
    if tensors[0].device.type == "cpu":
        return [[i] for i in range(len(tensors))]
    groups: dict[tuple, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(tuple(t.shape), []).append(i)
    return list(groups.values())


class MuonFilters:
    """Muon for conv filters: each (out, in, k, k) filter bank is updated as an (out, in*k*k)
    matrix through a view of the same storage, so the model keeps ordinary Conv2d weights. Before each
    step the bank is rescaled to norm sqrt(out), as in the airbench Muon variant: with BatchNorm after
    every conv the scale is free, and a fixed norm keeps the orthogonalized step's relative size constant
    (this replaces weight decay for them). ns_dtype is the Newton-Schulz precision (runtime.Runtime.ns_dtype):
    bf16 keeps torch.optim.Muon (the path the bf16 records were measured with), anything else optim.Muon."""

    def __init__(self, filters: list[nn.Parameter], lr: float, momentum: float, lr_scale: float,
                 ns_dtype: torch.dtype = torch.float32):
        self.filters = filters
        self.mats = [nn.Parameter(_matrix(p.detach())) for p in filters]
        for p, m in zip(filters, self.mats):
            if m.data_ptr() != p.data_ptr():
                raise ValueError(f"Muon needs conv weights in a contiguous or channels_last layout, got "
                                 f"strides {p.stride()}")
        groups = [{"params": self.mats, "lr_scale": lr_scale}]
        if ns_dtype == torch.bfloat16:
            self.opt = torch.optim.Muon(groups, lr=lr, momentum=momentum, nesterov=True, weight_decay=0.0)
        else:
            self.opt = Muon(groups, lr=lr, momentum=momentum, nesterov=True, ns_dtype=ns_dtype)
        self.param_groups = self.opt.param_groups

    @torch.no_grad()
    def step(self) -> None:
        for p, m in zip(self.filters, self.mats):
            m.grad = None if p.grad is None else _matrix(p.grad)
        torch._foreach_mul_(self.filters, [p.shape[0] ** 0.5 / n.clamp(min=1e-12)
                                           for p, n in zip(self.filters, torch._foreach_norm(self.filters))])
        self.opt.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p, m in zip(self.filters, self.mats):
            p.grad = m.grad = None

    def state_dict(self) -> dict:
        return self.opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.opt.load_state_dict(state)


class Chained:
    """Several optimizers over disjoint parameters, stepped, zeroed, scheduled and saved as one."""

    def __init__(self, *parts):
        self.parts = parts

    @property
    def param_groups(self) -> list[dict]:
        return [g for part in self.parts for g in part.param_groups]

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"chained": [part.state_dict() for part in self.parts]}

    def load_state_dict(self, state: dict) -> None:
        if len(state.get("chained", ())) != len(self.parts):
            raise ValueError("optimizer state does not match this run's optimizers (was optim.muon_lr changed?)")
        for part, s in zip(self.parts, state["chained"]):
            part.load_state_dict(s)


def lr_at(step: int, total_steps: int, cfg: OptimConfig, steps_per_epoch: int) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`, in `optim.lr`'s units
    (set_lr converts). Pure: no state."""
    peak, floor = cfg.lr, cfg.lr * cfg.final_lr_frac
    if cfg.schedule == "onecycle":
        # linear rise from 0 to peak over onecycle_pct of the steps, then linear decay to floor
        rise = max(1, round(cfg.onecycle_pct * total_steps))
        if step < rise:
            start = cfg.initial_lr_frac
            return peak * (start + (1 - start) * (step + 1) / rise)
        frac = (step - rise + 1) / max(1, total_steps - rise)
        return peak + (floor - peak) * min(1.0, frac)
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return peak * (step + 1) / warmup
    if cfg.schedule == "constant":
        return peak
    frac = (step - warmup) / max(1, total_steps - warmup)  # cosine
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float, unit: float = 1.0) -> None:
    """Set every group to lr * unit * its lr_scale (unit converts `optim.lr`'s units to torch's)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * unit * group.get("lr_scale", 1.0)


class Lookahead:
    """Lookahead with an EMA as the slow weights (airbench's form): every `every` steps the slow copy
    moves toward the fast weights, ema = decay*ema + (1-decay)*w, and the fast weights restart from it.
    decay ramps as decay_max * (step/total)^3: no pull early, strong averaging late. BN statistics are
    averaged too. `finish()` leaves the model at the slow weights. Built on torch.optim.swa_utils."""

    def __init__(self, model: nn.Module, every: int, decay_max: float, total_steps: int):
        from torch.optim.swa_utils import AveragedModel

        self.model, self.every, self.decay_max, self.total = model, every, decay_max, max(1, total_steps)
        self.decay = 0.0
        self.slow = AveragedModel(model, multi_avg_fn=self._lerp, use_buffers=True)
        self.slow.n_averaged.fill_(1)  # the copy made here is the first average: updates always lerp

    def _lerp(self, slow: list, fast: list, _n) -> None:
        if slow and slow[0].is_floating_point():  # skip integer buffers (num_batches_tracked)
            torch._foreach_lerp_(slow, fast, 1 - self.decay)

    @torch.no_grad()
    def step(self, step: int) -> None:
        """Call after optimizer step number `step` (1-based)."""
        if step % self.every == 0:
            self.decay = self.decay_max * (step / self.total) ** 3
            self.slow.update_parameters(self.model)
            self._copy_back()

    @torch.no_grad()
    def _copy_back(self) -> None:
        for fast, slow in zip(self.model.state_dict().values(), self.slow.module.state_dict().values()):
            if fast.is_floating_point():
                fast.copy_(slow)

    def finish(self) -> None:
        self._copy_back()

    def state_dict(self) -> dict:
        return {"slow": self.slow.state_dict(), "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.slow.load_state_dict(state["slow"])
        self.decay = state["decay"]
