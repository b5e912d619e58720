"""cifarlab doctor: find the classic training-pipeline bugs in anyone's PyTorch code.

    report = diagnose(model, loss_fn, optimizer, train_loader, eval_loader, num_classes,
                      train_step=None, evaluate=None)

Every check works on deep copies of the model and optimizer and restores the global RNG states, so the
caller's objects are unchanged. Each check is a function `check(ctx) -> list[Finding]` registered in
CHECKS; docs/doctor.md lists what each measures, its thresholds and its false-positive risks.
"""
from __future__ import annotations

import copy
import hashlib
import importlib.util
import math
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    message: str
    fix: str


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    time_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def codes(self, severity: str | None = None) -> set[str]:
        return {f.code for f in self.findings if severity is None or f.severity == severity}

    def __str__(self) -> str:
        lines = [f"cifarlab doctor: {len(self.checks_run)} checks in {self.time_s:.1f}s — "
                 + ("no errors" if self.ok else f"{sum(f.severity == 'error' for f in self.findings)} error(s)")]
        for sev in SEVERITIES:
            group = [f for f in self.findings if f.severity == sev]
            if group:
                lines.append(f"\n{sev.upper()}S ({len(group)})")
                for f in group:
                    lines.append(f"  [{f.code}] {f.message}\n      fix: {f.fix}")
        if not self.findings:
            lines.append("all checks passed")
        return "\n".join(lines)


# ---------------------------------------------------------------- defaults for the user's functions

def default_train_step(model, images, labels, loss_fn, optimizer):
    model.train()
    optimizer.zero_grad()
    loss = loss_fn(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss


@torch.no_grad()
def default_evaluate(model, loader, loss_fn):
    model.eval()
    total, correct, loss_sum = 0, 0, 0.0
    for images, labels in loader:
        out = model(images)
        loss_sum += float(loss_fn(out, labels)) * len(labels)
        correct += int((out.argmax(1) == labels).sum())
        total += len(labels)
    return loss_sum / max(total, 1), correct / max(total, 1)


# ---------------------------------------------------------------- context

class _Limited:
    """The first `n` batches of a loader; other attributes pass through (len(loader.dataset) etc.)."""

    def __init__(self, loader, n: int):
        self._loader, self._n = loader, n

    def __iter__(self):
        for i, batch in enumerate(self._loader):
            if i >= self._n:
                break
            yield batch

    def __len__(self):
        try:
            return min(self._n, len(self._loader))
        except TypeError:
            return self._n

    def __getattr__(self, name):
        return getattr(self._loader, name)


@dataclass
class Context:
    model: nn.Module
    loss_fn: Callable
    optimizer: torch.optim.Optimizer
    train_loader: Iterable
    eval_loader: Iterable
    num_classes: int
    train_step: Callable
    evaluate: Callable
    batch: tuple[torch.Tensor, torch.Tensor] | None = None  # first training batch
    model_runs: bool = True  # False once shape-mismatch fails the forward pass
    eval_hashes: list[bytes] | None = None
    cache: dict = field(default_factory=dict)

    def fresh(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Deep copy of the model and an optimizer of the same kind and settings bound to the copy."""
        model = copy.deepcopy(self.model)
        index = {id(p): i for i, p in enumerate(self.model.parameters())}
        params = list(model.parameters())
        groups = []
        for g in self.optimizer.param_groups:
            ng = {k: v for k, v in g.items() if k != "params"}
            ng["params"] = [params[index[id(p)]] for p in g["params"] if id(p) in index]
            groups.append(ng)
        opt = type(self.optimizer)(groups, **self.optimizer.defaults)
        return model, opt


def _hash(x: torch.Tensor) -> bytes:
    return hashlib.blake2b(x.detach().cpu().contiguous().numpy().tobytes(), digest_size=16).digest()


def _batch_hashes(loader, limit: int | None = None) -> list[bytes]:
    out = []
    for i, (xb, _) in enumerate(loader):
        if limit is not None and i >= limit:
            break
        out += [_hash(x) for x in xb]
    return out


def _raw_images(loader) -> np.ndarray | None:
    """The un-transformed images behind a loader, (N, ...) uint8, when they can be reached.

    Understands cifarlab loaders (`raw_images`), torchvision-style datasets (`.data`) and
    torch.utils.data.Subset chains.
    """
    raw = getattr(loader, "raw_images", None)
    if raw is not None:
        return np.asarray(raw)
    ds = getattr(loader, "dataset", None)
    idx = None
    while isinstance(ds, torch.utils.data.Subset):
        sub = np.asarray(ds.indices)
        idx = sub if idx is None else sub[idx]
        ds = ds.dataset
    data = getattr(ds, "data", None)
    if data is None:
        return None
    arr = np.asarray(data)
    return arr if idx is None else arr[idx]


def _row_hashes(arr: np.ndarray) -> list[bytes]:
    flat = np.ascontiguousarray(arr.reshape(len(arr), -1))
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in flat]


def _forward_trace(model: nn.Module, x: torch.Tensor):
    """Run model(x) recording, per leaf module in execution order, (name, module, input, output)."""
    trace, hooks = [], []
    names = {m: n for n, m in model.named_modules()}
    for m in model.modules():
        if not list(m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out: trace.append((names[mod], mod, inp[0] if inp else None, out))))
    try:
        out = model(x)
    finally:
        for h in hooks:
            h.remove()
    return out, trace


# ---------------------------------------------------------------- checks

def check_input_normalization(ctx: Context) -> list[Finding]:
    xs = []
    for i, (xb, _) in enumerate(ctx.train_loader):
        xs.append(xb.float())
        if i >= 3:
            break
    x = torch.cat(xs)
    mean, std, peak = x.mean().item(), x.std().item(), x.abs().max().item()
    desc = f"training inputs have mean {mean:.3f}, std {std:.3f}, max |x| {peak:.1f}"
    fix = ("normalize with the dataset's per-channel mean and std of images scaled to [0, 1] "
           "(CIFAR-10 mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616); CIFAR-100 "
           "(0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762)) after ToTensor")
    if abs(mean) > 2 or std > 5 or std < 0.05 or peak > 50:
        return [Finding("input-normalization", "error", desc + ": far from zero mean / unit variance "
                        "(the 'exploding input' of wrong normalization constants)", fix)]
    if abs(mean) > 0.75 or not 0.3 < std < 3:
        return [Finding("input-normalization", "warning", desc + ": inputs look un-normalized", fix)]
    return []


def check_shape_mismatch(ctx: Context) -> list[Finding]:
    model, _ = ctx.fresh()
    model.eval()
    entered: list[tuple[str, nn.Module, tuple]] = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: entered.append((names[mod], mod, tuple(
        i.shape for i in inp if torch.is_tensor(i))))) for m in model.modules() if not list(m.children())]
    x = ctx.batch[0]
    try:
        with torch.no_grad():
            out = model(x)
    except RuntimeError as e:
        ctx.model_runs = False
        where = ""
        if entered:
            name, mod, shapes = entered[-1]
            where = f" in layer '{name}' ({mod}) given input of shape {list(shapes[0]) if shapes else '?'}"
            if isinstance(mod, nn.Linear) and shapes:
                got = shapes[0][-1]
                where += (f": it expects {mod.in_features} features but receives {got}"
                          + (f" (images give {'×'.join(map(str, x.shape[1:]))} = {x[0].numel()})"
                             if got == x[0].numel() else ""))
        return [Finding("shape-mismatch", "error",
                        f"the model fails on a real batch of shape {list(x.shape)}{where}: "
                        f"{str(e).splitlines()[0]}",
                        "make each layer's input size match what the previous layer produces: a first "
                        "Linear on flattened CIFAR images needs 3*32*32 = 3072 inputs; after the conv "
                        "stack, in_features = channels × height × width of the last feature map")]
    finally:
        for h in hooks:
            h.remove()
    if out.ndim != 2 or out.shape[1] != ctx.num_classes:
        ctx.model_runs = False
        return [Finding("shape-mismatch", "error", f"model output has shape {list(out.shape)}, expected "
                        f"[batch, {ctx.num_classes}]", "the last layer must produce one logit per class")]
    return []


def _outputs(ctx: Context) -> torch.Tensor:
    if "outputs" not in ctx.cache:
        model, _ = ctx.fresh()
        model.eval()
        with torch.no_grad():
            ctx.cache["outputs"] = model(ctx.batch[0]).float()
    return ctx.cache["outputs"]


def _is_probabilities(out: torch.Tensor) -> bool:
    return bool((out >= 0).all() and (out <= 1).all() and torch.allclose(out.sum(1), torch.ones(len(out)),
                                                                          atol=1e-3))


def _is_log_probabilities(out: torch.Tensor) -> bool:
    return bool((out <= 1e-6).all() and torch.allclose(out.logsumexp(1), torch.zeros(len(out)), atol=1e-3))


def _loss_kind(ctx: Context, out: torch.Tensor, y: torch.Tensor) -> str:
    """'ce' | 'nll' | 'other' by behaviour: compare the user's loss with the two reference losses."""
    with torch.no_grad():
        got = float(ctx.loss_fn(out, y))
        ce = float(F.cross_entropy(out, y))
        nll = float(F.nll_loss(out, y))
    tol = 1e-4 * max(1.0, abs(ce))
    if abs(got - nll) < tol and abs(got - ce) >= tol:
        return "nll"
    if abs(got - ce) < 0.15 * max(1.0, abs(ce)):  # label smoothing moves CE a little
        return "ce"
    return "other"


def check_activation_before_loss(ctx: Context) -> list[Finding]:
    out, y = _outputs(ctx), ctx.batch[1]
    kind = _loss_kind(ctx, out, y)
    if kind == "nll" and _is_log_probabilities(out):
        return []
    if _is_probabilities(out):
        what = "probabilities (softmax at the end of the model)"
    elif (out >= 0).all() and (out == 0).float().mean() > 0.05:
        what = "non-negative with many exact zeros (a ReLU after the last layer)"
    elif (out >= 0).all():
        what = "all non-negative"
    else:
        return []
    return [Finding("activation-before-loss", "error",
                    f"model outputs are {what}, but {type(ctx.loss_fn).__name__} expects raw logits",
                    "remove the final activation: the last layer must be a plain Linear that returns "
                    "logits; CrossEntropyLoss applies log-softmax itself")]


def check_linear_collapse(ctx: Context) -> list[Finding]:
    """Two Linear layers in a row whose connection is affine (no non-linearity between them)."""
    model, _ = ctx.fresh()
    model.eval()  # dropout off, batch-norm affine: only a true non-linearity breaks the fit
    with torch.no_grad():
        _, trace = _forward_trace(model, ctx.batch[0])
    layers = [(n, m, i, o) for n, m, i, o in trace if isinstance(m, (nn.Linear, nn.Conv2d))]
    findings = []
    for (na, ma, _, out_a), (nb, mb, in_b, _) in zip(layers, layers[1:]):
        if not (isinstance(ma, nn.Linear) and isinstance(mb, nn.Linear)) or out_a.shape != in_b.shape:
            continue
        a, b = out_a.reshape(len(out_a), -1).double(), in_b.reshape(len(in_b), -1).double()
        if len(a) < 8:
            continue
        # per-feature least squares b_j ≈ alpha_j * a_j + beta_j
        am, bm = a - a.mean(0), b - b.mean(0)
        alpha = (am * bm).sum(0) / (am * am).sum(0).clamp(min=1e-12)
        resid = bm - alpha * am
        r2 = 1 - (resid ** 2).sum() / (bm ** 2).sum().clamp(min=1e-12)
        if r2 > 0.9999:
            findings.append(Finding(
                "linear-collapse", "error",
                f"'{nb}' takes an affine function of '{na}'s output (R² = {r2:.6f}): the two Linear "
                "layers collapse into one linear map (BatchNorm and Dropout are not non-linearities)",
                f"put a non-linearity (e.g. ReLU) between '{na}' and '{nb}'"))
    return findings


def check_loss_output_mismatch(ctx: Context) -> list[Finding]:
    out, y = _outputs(ctx), ctx.batch[1]
    kind = _loss_kind(ctx, out, y)
    with torch.no_grad():
        loss = float(ctx.loss_fn(out, y))
    if kind == "nll" and not _is_log_probabilities(out):
        return [Finding("loss-output-mismatch", "error",
                        f"NLLLoss is applied to raw logits (loss {loss:.3f}; it can go negative and "
                        "starts far from ln C)",
                        "use nn.CrossEntropyLoss on logits, or end the model with log_softmax for NLLLoss")]
    if kind == "ce" and _is_probabilities(out):
        return [Finding("loss-output-mismatch", "error",
                        "CrossEntropyLoss is applied to probabilities (outputs sum to 1): softmax runs "
                        "twice and gradients vanish", "return logits from the model (drop the softmax)")]
    return []


def check_eval_augmented(ctx: Context) -> list[Finding]:
    first = ctx.eval_hashes if ctx.eval_hashes is not None else _batch_hashes(ctx.eval_loader)
    ctx.eval_hashes = first
    second = _batch_hashes(ctx.eval_loader, limit=2)
    seen = set(first)
    found = sum(h in seen for h in second) / max(len(second), 1)
    if found < 0.5:
        return [Finding("eval-augmented", "error",
                        f"the eval loader yields different tensors for the same images on two passes "
                        f"(only {found:.0%} of a second pass matches the first): random augmentation is "
                        "applied at evaluation", "give the evaluation data its own transform with no "
                        "randomness (ToTensor + Normalize only), also for a validation split taken from "
                        "the training set")]
    return []


def check_eval_on_train(ctx: Context) -> list[Finding]:
    if ctx.eval_loader is ctx.train_loader:
        return [Finding("eval-on-train", "error", "the eval loader is the training loader",
                        "evaluate on the held-out test (or validation) split")]
    raw_e, raw_t = _raw_images(ctx.eval_loader), _raw_images(ctx.train_loader)
    if raw_e is not None and raw_t is not None:
        train_set = set(_row_hashes(raw_t))
        eh = _row_hashes(raw_e)
        overlap = sum(h in train_set for h in eh)
        ctx.cache["duplicates"] = (overlap, len(eh))
        if overlap / max(len(eh), 1) > 0.5:
            return [Finding("eval-on-train", "error",
                            f"{overlap} of {len(eh)} evaluation images are training images",
                            "evaluate on the held-out test (or validation) split, e.g. "
                            "CIFAR100(train=False)")]
        return []
    # no raw arrays: compare what the loaders yield (works when training has no augmentation)
    eval_hashes = ctx.eval_hashes if ctx.eval_hashes is not None else _batch_hashes(ctx.eval_loader)
    ctx.eval_hashes = eval_hashes
    train_hashes = set(_batch_hashes(ctx.train_loader, limit=20))
    frac = sum(h in train_hashes for h in eval_hashes) / max(len(eval_hashes), 1)
    if frac > 0.05:
        return [Finding("eval-on-train", "error", f"{frac:.0%} of evaluation batches' images also come "
                        "out of the training loader", "evaluate on the held-out test split")]
    return []


def check_duplicates(ctx: Context) -> list[Finding]:
    if "duplicates" not in ctx.cache:
        return []
    n, total = ctx.cache["duplicates"]
    if 0 < n <= total * 0.5:
        return [Finding("duplicates", "info",
                        f"{n} of {total} evaluation images are exact copies of training images",
                        "nothing to fix in the pipeline: this is a property of the data set (CIFAR-100 has "
                        "10 such test images); report accuracy knowing it")]
    return []


def _grads(model: nn.Module) -> list[torch.Tensor | None]:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


def check_missing_zero_grad(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    for g in opt.param_groups:
        g["lr"] = 0.0  # weights stay put, so two calls see the same function
    x, y = ctx.batch
    norms = []
    for _ in range(2):
        torch.manual_seed(0)  # same dropout masks on both calls
        ctx.train_step(model, x, y, ctx.loss_fn, opt)
        g = [t for t in _grads(model) if t is not None]
        norms.append(math.sqrt(sum(float((t.double() ** 2).sum()) for t in g)) if g else 0.0)
    if norms[0] > 0 and norms[1] > 1.5 * norms[0]:
        return [Finding("missing-zero-grad", "error",
                        f"gradients accumulate across train_step calls (grad norm {norms[0]:.3g} after one "
                        f"call, {norms[1]:.3g} after two on the same batch)",
                        "call optimizer.zero_grad() before loss.backward() in every step")]
    return []


@contextmanager
def _modes_seen(model: nn.Module):
    """Yield a list that records the `training` flag of every dropout/batch-norm layer on each forward."""
    seen: list[bool] = []
    kinds = (nn.Dropout, nn.modules.batchnorm._BatchNorm)
    hooks = [m.register_forward_pre_hook(lambda mod, inp: seen.append(mod.training))
             for m in model.modules() if isinstance(m, kinds)]
    try:
        yield seen
    finally:
        for h in hooks:
            h.remove()


def check_train_mode(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    with _modes_seen(model) as seen:
        ctx.evaluate(model, _Limited(ctx.eval_loader, 1), ctx.loss_fn)  # as after a validation pass
        seen.clear()
        ctx.train_step(model, *ctx.batch, ctx.loss_fn, opt)
    if seen and not any(seen):
        return [Finding("train-mode", "error",
                        "dropout / batch-norm layers are in eval mode during train_step after an "
                        "evaluation: dropout is off and batch-norm statistics freeze while training",
                        "call model.train() at the start of each training epoch (or step)")]
    return []


def check_eval_mode(ctx: Context) -> list[Finding]:
    model, _ = ctx.fresh()
    model.train()  # as after a training epoch
    with _modes_seen(model) as seen:
        ctx.evaluate(model, _Limited(ctx.eval_loader, 2), ctx.loss_fn)
    if any(seen):
        return [Finding("eval-mode", "error",
                        "dropout / batch-norm layers are in train mode during evaluate: predictions are "
                        "random (dropout) and batch-norm uses batch statistics",
                        "call model.eval() at the start of evaluation (and model.train() after it)")]
    return []


def check_init_loss(ctx: Context) -> list[Finding]:
    out, y = _outputs(ctx), ctx.batch[1]
    with torch.no_grad():
        loss = float(ctx.loss_fn(out, y))
    expected = math.log(ctx.num_classes)
    if not math.isfinite(loss) or abs(loss - expected) <= 0.5 * expected:
        return []
    return [Finding("init-loss", "warning",
                    f"initial loss {loss:.3f} is far from ln({ctx.num_classes}) = {expected:.3f} expected "
                    "from an untrained classifier", "check the last layer's initialization and the "
                    "loss/output pairing (ignore this for a model that is already trained)")]


def check_cannot_overfit(ctx: Context, steps: int = 150, size: int = 32) -> list[Finding]:
    model, opt = ctx.fresh()
    x, y = ctx.batch[0][:size], ctx.batch[1][:size]
    acc = 0.0
    for i in range(1, steps + 1):
        loss = ctx.train_step(model, x, y, ctx.loss_fn, opt)
        if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
            return []  # reported by nonfinite
        if i % 25 == 0 or i == steps:  # stop as soon as the batch is fit
            model.eval()
            with torch.no_grad():
                acc = float((model(x).argmax(1) == y).float().mean())
            if acc >= 0.9:
                return []
    return [Finding("cannot-overfit", "error",
                    f"after {steps} train_step calls on one batch of {len(y)} images the model gets "
                    f"only {acc:.0%} of that batch right: the pipeline cannot fit even a tiny set",
                    "check that optimizer.step() is called, the optimizer holds the model's "
                    "parameters, the learning rate is > 0 and the loss is connected to the outputs")]


def check_nonfinite(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    x, y = ctx.batch
    problems = []
    with torch.no_grad():
        model.eval()
        out = model(x)
    if not torch.isfinite(out).all():
        problems.append("model outputs")
    loss = ctx.train_step(model, x, y, ctx.loss_fn, opt)
    if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
        problems.append("loss")
    if any(g is not None and not torch.isfinite(g).all() for g in _grads(model)):
        problems.append("gradients")
    if problems:
        return [Finding("nonfinite", "error", f"NaN/Inf in {', '.join(problems)} on the first batch",
                        "look for log/sqrt/division of values that can be ≤ 0, a too-high learning rate, "
                        "or un-normalized inputs; torch.autograd.set_detect_anomaly(True) finds the op")]
    return []


# order matters: shape-mismatch decides whether the model-dependent checks can run
CHECKS: dict[str, Callable[[Context], list[Finding]]] = {
    "input-normalization": check_input_normalization,
    "shape-mismatch": check_shape_mismatch,
    "nonfinite": check_nonfinite,
    "activation-before-loss": check_activation_before_loss,
    "loss-output-mismatch": check_loss_output_mismatch,
    "linear-collapse": check_linear_collapse,
    "init-loss": check_init_loss,
    "eval-augmented": check_eval_augmented,
    "eval-on-train": check_eval_on_train,
    "duplicates": check_duplicates,
    "missing-zero-grad": check_missing_zero_grad,
    "train-mode": check_train_mode,
    "eval-mode": check_eval_mode,
    "cannot-overfit": check_cannot_overfit,
}
NEEDS_MODEL = {"nonfinite", "activation-before-loss", "loss-output-mismatch", "linear-collapse", "init-loss",
               "missing-zero-grad", "train-mode", "eval-mode", "cannot-overfit"}


def diagnose(model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, train_loader: Iterable,
             eval_loader: Iterable, num_classes: int, train_step: Callable | None = None,
             evaluate: Callable | None = None, checks: Iterable[str] | None = None) -> Report:
    """Run the CHECKS on copies of the pipeline; the caller's objects and RNG states are left unchanged."""
    t0 = time.perf_counter()
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    ctx = Context(model, loss_fn, optimizer, train_loader, eval_loader, num_classes,
                  train_step or default_train_step, evaluate or default_evaluate)
    report = Report()
    # overfitting one batch drives gradients into denormal floats, which run ~10x slower on CPUs
    flush = torch.set_flush_denormal(True)
    try:
        xb, yb = next(iter(train_loader))
        ctx.batch = (xb[:64], yb[:64])  # a real batch, small enough that step-based checks stay fast
        for code in checks or CHECKS:
            if code not in CHECKS:
                raise KeyError(f"unknown check {code!r}; valid: {', '.join(CHECKS)}")
            if code in NEEDS_MODEL and not ctx.model_runs:
                continue
            try:
                report.findings += CHECKS[code](ctx)
            except Exception as e:  # a crash in the user's code is a finding, not a doctor crash
                report.findings.append(Finding(code, "warning", f"check could not run: "
                                               f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                                               "run the pipeline once by hand to see the full error"))
            report.checks_run.append(code)
    finally:
        if flush:
            torch.set_flush_denormal(False)
        torch.set_rng_state(rng[0])
        np.random.set_state(rng[1])
        random.setstate(rng[2])
    report.time_s = time.perf_counter() - t0
    return report


# ---------------------------------------------------------------- cifarlab's own pipeline and user scripts

class PipelineLoader:
    """cifarlab's on-device batches as (float images, labels), the way train() feeds the model."""

    def __init__(self, loader, transform):
        self.loader, self.transform = loader, transform
        self.raw_images = loader.x.cpu().numpy()
        self.dataset = None

    def __iter__(self):
        for xb, yb in self.loader:
            yield self.transform(xb), yb

    def __len__(self):
        return len(self.loader)


def preset_pipeline(preset: str, overrides: list[str] | None = None, data_dir=None,
                    eval_split: str = "test") -> dict[str, Any]:
    """The diagnose() arguments for cifarlab's pipeline of a preset (CPU, fp32)."""
    from . import data as data_mod
    from .augment import Augmenter, Normalizer
    from .config import make_config
    from .models import build_model
    from .evaluate import evaluate
    from .optim import build_optimizer
    from .runtime import fp32_runtime
    from .train import train_step as engine_step

    cfg = make_config(preset, overrides or [])
    ds = data_mod.load(cfg.data.dataset, data_dir, cfg.data.download)
    sp = data_mod.make_splits(ds, cfg.data.val_size, cfg.data.split_seed, cfg.data.train_subset)
    dev = torch.device("cpu")
    norm = Normalizer(ds.spec.mean, ds.spec.std, dev)
    g = torch.Generator().manual_seed(cfg.train.seed)
    train = data_mod.DeviceLoader(sp.train_x, sp.train_y, cfg.train.batch_size, dev, shuffle=True, generator=g)
    ex, ey = (sp.test_x, sp.test_y) if eval_split == "test" else (sp.val_x, sp.val_y)
    ev = data_mod.DeviceLoader(ex, ey, 250, dev)  # small batches: the mode checks read one or two
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model.name, ds.num_classes, cfg.model.width, cfg.model.dropout)
    rt = fp32_runtime(dev)

    def step(model, images, labels, loss_fn, optimizer):  # the engine's own step
        return engine_step(model, images, labels, optimizer, rt, cfg.optim)[0]

    def evaluate_fn(model, loader, loss_fn):  # the engine's own evaluation (of the first len(loader) batches)
        n = min(len(loader) * loader.loader.batch_size, len(loader.loader.x))
        m = evaluate(model, loader.loader.x[:n], loader.loader.y[:n], norm, rt, loader.loader.batch_size)
        return m.loss, m.top1 / 100

    return {"model": model, "loss_fn": nn.CrossEntropyLoss(label_smoothing=cfg.optim.label_smoothing),
            "optimizer": build_optimizer(model, cfg.optim),
            "train_loader": PipelineLoader(train, Augmenter(cfg.augment, norm, torch.Generator().manual_seed(1))),
            "eval_loader": PipelineLoader(ev, norm), "num_classes": ds.num_classes,
            "train_step": step, "evaluate": evaluate_fn}


def diagnose_preset(preset: str, overrides: list[str] | None = None, data_dir=None) -> Report:
    return diagnose(**preset_pipeline(preset, overrides, data_dir))


def diagnose_script(path: str | Path) -> Report:
    """Import a user file whose pipeline() returns a dict of diagnose() arguments, and diagnose it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"doctor script not found: {path}")
    spec = importlib.util.spec_from_file_location(f"_cifarlab_doctor_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "pipeline"):
        raise ValueError(f"{path}: define pipeline() returning a dict with model, loss_fn, optimizer, "
                         "train_loader, eval_loader, num_classes (optionally train_step, evaluate)")
    return diagnose(**module.pipeline())
