"""Fit checks, with the user's own step, optimizer and learning rate: can it memorise one batch, and does
a short run on real batches stay finite and bounded. Both are time-budgeted: out of time is a warning."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .core import Check, Context, Finding, clock, found, inconclusive, register
from .limits import (DEAD_OUTPUT_STD, FIT_ACCURACY, FIT_BUDGET_S, FIT_CHECK_EVERY, FIT_IMAGES, FIT_MAX_STEPS,
                     FIT_MIN_STEPS, FIT_NO_PROGRESS, RUN_BLOWUP, RUN_BUDGET_S, RUN_HEALTHY, RUN_MIN_STEPS, RUN_STEPS, RUN_WINDOW)
from .probes import logits_of, loss_value


def _eval_loss_acc(model, x, y) -> tuple[float, float]:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = logits_of(model(x)).float()
    model.train(was)
    return float(F.cross_entropy(out, y)), float((out.argmax(1) == y).float().mean())


def _mean(xs) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def check_cannot_overfit(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    n = int(FIT_IMAGES.value)
    x, y = ctx.batch[0][:n], ctx.batch[1][:n]
    before = [p.detach().clone() for p in model.parameters()]
    start_loss, acc = _eval_loss_acc(model, x, y)
    losses: list[float] = []
    deadline = clock() + ctx.seconds_left(FIT_BUDGET_S.value)
    step = 0
    while step < FIT_MAX_STEPS.value and clock() < deadline:
        step += 1
        value = loss_value(ctx.train_step(model, x, y, ctx.loss_fn, opt))
        if value is not None:
            losses.append(value)
            if not math.isfinite(value):
                return [found("diverges", "error", f"the loss became {value} at step {step} of fitting one batch "
                              f"of {len(y)} images with your optimizer")]
        if step % FIT_CHECK_EVERY.value == 0:
            _, acc = _eval_loss_acc(model, x, y)
            if acc >= FIT_ACCURACY.value:
                return []
            if all(torch.equal(a, b) for a, b in zip(before, model.parameters())):
                break  # nothing moves: no need to spend the rest of the budget
    end_loss, acc = _eval_loss_acc(model, x, y)
    if acc >= FIT_ACCURACY.value:
        return []
    if len(losses) >= 10:  # the losses your step returns, averaged to see through dropout
        k = max(5, len(losses) // 10)
        ratio = _mean(losses[-k:]) / max(_mean(losses[:k]), 1e-12)
    else:
        ratio = end_loss / max(start_loss, 1e-12)
    what = f"after {step} train_step calls on one batch of {len(y)} images the model gets {acc:.0%} of it right"
    frozen = step > 0 and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    if frozen:
        return [found("cannot-overfit", "error", f"{what}: no weight changed in {step} steps (no optimizer.step(), "
                      "an optimizer holding other tensors, a learning rate of 0, or a loss cut from the graph)")]
    no_progress = not math.isfinite(ratio) or ratio > FIT_NO_PROGRESS.value
    if no_progress and step >= FIT_MIN_STEPS.value:
        return [found("cannot-overfit", "error", f"{what} and the loss did not fall (final/initial "
                      f"{ratio:.2f}): the pipeline does not learn")]
    if no_progress:  # too few steps in the budget for a verdict
        return [inconclusive("cannot-overfit", f"{what}; the loss has not fallen yet (final/initial {ratio:.2f}) "
                             f"but the budget allowed only {step} steps", f"needs {int(FIT_MIN_STEPS.value)} "
                             "steps on one batch: fit one by hand for a few hundred steps if the model is large")]
    out_of = "time budget" if step < FIT_MAX_STEPS.value else "step budget"
    return [inconclusive("cannot-overfit", f"{what}; the loss fell (final/initial {ratio:.2f}) but the batch "
                         f"was not fit within the {out_of}", "needs more steps than the budget allows (slow "
                         "optimizer settings, large model); if training stalls, check the learning rate")]


def _batches(loader):
    """Training batches forever (a new epoch when one ends)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch[0], batch[1]
        if empty:
            return


def _output_spread(model, x) -> float:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = logits_of(model(x)).float()
    model.train(was)
    return float(out.std(0).max()) if len(out) > 1 else float("inf")


def check_diverges(ctx: Context) -> list[Finding]:
    """`doctor run`: a non-finite loss the script itself backpropagated is the verdict; otherwise (and in the
    pipeline form) the run continues from the script's model and optimizer state on real batches."""
    bad = ctx.trace.nonfinite_loss() if ctx.trace is not None else None
    if bad is not None:
        return [found("diverges", "error", f"the loss your script backpropagated became {bad[1]} at backward "
                      f"call {bad[0]}")]
    model, opt = ctx.fresh()
    x0 = ctx.batch[0]
    spread0 = _output_spread(model, x0)
    losses: list[float] = []
    deadline = clock() + ctx.seconds_left(RUN_BUDGET_S.value)
    window = int(RUN_WINDOW.value)
    step = 0
    for x, y in _batches(ctx.train_loader):
        if step >= RUN_STEPS.value or clock() > deadline:
            break
        step += 1
        value = loss_value(ctx.train_step(model, x, y, ctx.loss_fn, opt))
        if value is None:
            continue
        losses.append(value)
        if not math.isfinite(value):
            return [found("diverges", "error", f"the loss became {value} at step {step} of a run on real "
                          "training batches with your optimizer and learning rate")]
        if len(losses) >= 2 * window:
            start, now = _mean(losses[:window]), _mean(losses[-window:])
            if now - start > (RUN_BLOWUP.value - 1) * abs(start):  # grew to RUN_BLOWUP x (any sign of loss)
                return [found("diverges", "error", f"the loss grew from {start:.3g} to {now:.3g} (mean of "
                              f"{window} steps) by step {step} of a run on real training batches")]
            if step >= RUN_MIN_STEPS.value and now < RUN_HEALTHY.value * start:
                break  # clearly learning: the rest of the budget is not needed
    if any(not torch.isfinite(p).all() for p in model.parameters()):
        return [found("diverges", "error", f"weights became NaN/Inf within {step} steps with your optimizer")]
    if spread0 > DEAD_OUTPUT_STD.value and _output_spread(model, x0) <= DEAD_OUTPUT_STD.value:
        return [found("diverges", "error", f"after {step} steps every image gets the same output: the run "
                      "killed the network (dead ReLUs after too large updates)")]
    healthy = len(losses) >= 2 * window and _mean(losses[-window:]) < RUN_HEALTHY.value * _mean(losses[:window])
    if step < RUN_STEPS.value and not healthy:
        return [inconclusive("diverges", f"ran {step} of {int(RUN_STEPS.value)} steps within the time budget; "
                             "no divergence so far", f"needs {int(RUN_STEPS.value)} steps: run them by hand and "
                             "watch the loss if the model is large")]
    return []


FAMILY = "fit"
register(Check(
    "cannot-overfit", FAMILY, check_cannot_overfit, "error / info",
    "your `train_step` repeated on the first FIT_IMAGES images of the first batch, with your optimizer and "
    "learning rate, for up to FIT_MAX_STEPS steps or FIT_BUDGET_S; accuracy on them (eval mode) every "
    "FIT_CHECK_EVERY steps; the loss your step returns, first vs last tenth",
    "error: no weight changed, or not fit and final/initial loss > FIT_NO_PROGRESS after ≥ FIT_MIN_STEPS steps "
    "(no learning); info (inconclusive): fewer steps fitted in the budget, or the loss fell but the batch "
    "was not fit",
    "very heavy regularization or frozen models (error); slow settings or big models (info)",
    "check that optimizer.step() is called, the optimizer holds this model's parameters, the learning "
    "rate is > 0 and the loss stays connected to the outputs (no .item()/.detach() before backward)"))
register(Check(
    "diverges", FAMILY, check_diverges, "error / info",
    "`doctor run`: a non-finite loss your script backpropagated; then (both forms) "
    "your `train_step` on real training batches (your optimizer, learning rate and augmentation) for "
    "RUN_STEPS steps or RUN_BUDGET_S (ended early as healthy once the loss has halved, after RUN_MIN_STEPS): "
    "non-finite loss or weights, a running-mean loss that grows, or every image getting the same output "
    "afterwards; also a non-finite loss while fitting one batch",
    "any non-finite value; mean of the last RUN_WINDOW losses > RUN_BLOWUP × the first RUN_WINDOW; output "
    "std across images ≤ DEAD_OUTPUT_STD (was above); info (inconclusive) when the budget ends first",
    "a schedule that is meant to raise the loss early (long warm-up restarts)",
    "lower the learning rate (often 10×), add warm-up or gradient clipping, or add batch-norm"))
