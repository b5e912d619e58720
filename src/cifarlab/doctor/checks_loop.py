"""Loop checks: gradients cleared between steps, and dropout / batch-norm modes in training and evaluation."""
from __future__ import annotations

import math

import torch

from .core import Check, Context, Finding, found, inconclusive, register
from .limits import AUDIT_PASSES, ZERO_GRAD_RATIO
from .probes import logits_of, mode_layers, run_loop
from .trace import eval_in_train_mode, has_phases, train_after_eval_in_eval_mode


def _grad_norm(model) -> float:
    g = [p.grad.detach().double() for p in model.parameters() if p.grad is not None]
    return math.sqrt(sum(float((t ** 2).sum()) for t in g)) if g else 0.0


def check_optimizer_params(ctx: Context) -> list[Finding]:
    """The optimizer must hold the model's trainable parameters (the same tensors, not older copies). A
    tensor the optimizer holds as a view of a parameter's storage counts (e.g. Muon on conv filters seen as
    matrices)."""
    held = {p.untyped_storage().data_ptr() for g in ctx.optimizer.param_groups for p in g["params"]}
    trainable = [n for n, p in ctx.model.named_parameters() if p.requires_grad]
    missing = [n for n, p in ctx.model.named_parameters()
               if p.requires_grad and p.untyped_storage().data_ptr() not in held]
    if trainable and len(missing) == len(trainable):
        ctx.cache["foreign_optimizer"] = True
        return [found("optimizer-params", "error", "the optimizer holds none of the model's parameters: it was "
                      "built for another model object (or before the parameters were replaced), so steps never "
                      "change this model")]
    if missing:
        return [found("optimizer-params", "warning", f"{len(missing)} of {len(trainable)} trainable parameter "
                      f"tensors are not in the optimizer (e.g. {', '.join(missing[:3])}): they never train",
                      "pass model.parameters() to the optimizer after the model is final, or set "
                      "requires_grad=False on what is meant to stay frozen")]
    return []


def check_missing_zero_grad(ctx: Context) -> list[Finding]:
    if ctx.cache.get("foreign_optimizer"):
        return []  # zero_grad() cannot clear gradients the optimizer does not hold: reported above
    if ctx.trace is not None:
        return _zero_grad_observed(ctx.trace)
    model, opt = ctx.fresh()
    for g in opt.param_groups:
        g["lr"] = 0.0  # weights stay put, so two calls see the same function
    x, y = ctx.batch
    norms = []
    for _ in range(2):
        torch.manual_seed(0)  # same dropout masks on both calls
        ctx.train_step(model, x, y, ctx.loss_fn, opt)
        norms.append(_grad_norm(model))
    if norms[0] > 0 and norms[1] > ZERO_GRAD_RATIO.value * norms[0]:
        return [found("missing-zero-grad", "error",
                      f"gradients accumulate across train_step calls (grad norm {norms[0]:.3g} after one call, "
                      f"{norms[1]:.3g} after two on the same batch)")]
    return []


def _zero_grad_observed(trace) -> list[Finding]:
    """`doctor run`: a backward onto gradients the previous optimizer step left in place, as it happened."""
    if trace.stale_backwards:
        return [found("missing-zero-grad", "error", f"{trace.stale_backwards} of {trace.backwards} backward "
                      "calls in your loop added to gradients left over from before the previous optimizer step "
                      "(no zero_grad() between steps)")]
    if trace.steps < 2:
        return [inconclusive("missing-zero-grad", f"the script made {trace.steps} optimizer step(s) in the audit",
                             "needs two steps of the training loop")]
    return []


def _forwards(ctx: Context, model, opt):
    """(phase, modes) of every forward of the user's loop: observed (`doctor run`) or from a loop run."""
    if ctx.trace is not None:
        return ctx.trace.forwards(ctx.model)
    if "loop" not in ctx.cache:
        ctx.cache["loop"] = run_loop(ctx, model, opt)
    return ctx.cache["loop"].forwards


def check_train_mode(ctx: Context) -> list[Finding]:
    """Judged on the first training forward that follows an evaluation in the user's loop."""
    model, opt = ctx.fresh()
    if not mode_layers(model):
        return []
    forwards = _forwards(ctx, model, opt)
    if train_after_eval_in_eval_mode(forwards):
        return [found("train-mode", "error",
                      "dropout / batch-norm layers are in eval mode in the first training step after an "
                      "evaluation: dropout is off and batch-norm statistics freeze while training")]
    if "train" not in has_phases(forwards):
        return [inconclusive("train-mode", "no training forward was observed",
                             f"needs {int(AUDIT_PASSES.value)} passes of the training loop")]
    return []


def _eval_is_random(ctx: Context, model) -> bool:
    """Two eval-mode forwards of the same images differ: dropout that ignores model.eval()."""
    x = ctx.batch[0]
    model.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        a = logits_of(model(x))
        torch.manual_seed(2)
        b = logits_of(model(x))
    return a is not None and b is not None and not torch.equal(a, b)


def check_eval_mode(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    findings = []
    if mode_layers(model):
        forwards = _forwards(ctx, model, opt)
        if "eval" not in has_phases(forwards):
            findings.append(inconclusive("eval-mode", "no evaluation forward was observed in the audit",
                                         "needs the script to evaluate within its first passes or after training"))
        if eval_in_train_mode(forwards):
            findings.append(found("eval-mode", "error",
                                  "dropout / batch-norm layers are in train mode during evaluation: predictions "
                                  "are random (dropout) and batch-norm uses (and updates) batch statistics"))
    fresh, _ = ctx.fresh()
    if _eval_is_random(ctx, fresh):
        findings.append(found("eval-mode", "error",
                              "the model in eval mode gives different outputs for the same images on two calls: "
                              "a dropout ignores model.eval() (F.dropout without training=self.training, or an "
                              "nn.Dropout created inside forward())",
                              "use an nn.Dropout created in __init__, or F.dropout(x, p, training=self.training)"))
    return findings


FAMILY = "loop"
register(Check(
    "optimizer-params", FAMILY, check_optimizer_params, "error / warning",
    "the parameter tensors the optimizer holds vs the model's trainable parameters (by identity)",
    "error: none held; warning: some trainable tensors missing",
    "a second optimizer for the missing part (warning only)",
    "create the optimizer from model.parameters() after the model (and any replaced layer) is final"))
register(Check(
    "missing-zero-grad", FAMILY, check_missing_zero_grad, "error / info",
    "`doctor run`: at every backward of your loop, gradients still non-zero from before the previous "
    "optimizer step; diagnose(): gradient norm after one and after two `train_step` calls on the same batch "
    "with the learning rate set to 0 and the same dropout masks",
    "any backward onto left-over gradients; second / first > ZERO_GRAD_RATIO",
    "a step that intentionally accumulates gradients (gradient accumulation)",
    "call optimizer.zero_grad() before loss.backward() in every step"))
register(Check(
    "train-mode", FAMILY, check_train_mode, "error / info",
    "`doctor run`: your loop as it ran (AUDIT_PASSES training passes); diagnose(): your loop (`fit`, or "
    "`train_step` epochs each followed by `evaluate`) run for LOOP_EPOCHS epochs of LOOP_TRAIN_BATCHES "
    "batches; each forward is training or evaluation (backpropagated or not / by the batch it receives); "
    "the dropout/batch-norm modes of the first training forward after an evaluation",
    "all in eval mode", "diagnose() without `fit`: a loop that never evaluates mid-training is assumed to "
    "evaluate after each epoch (pass `fit`, or use `doctor run`)",
    "call model.train() at the start of each training epoch (and after every mid-epoch validation)"))
register(Check(
    "eval-mode", FAMILY, check_eval_mode, "error / info",
    "the dropout/batch-norm modes of every evaluation forward in the same loop run (or observed by `doctor run`); and two eval-mode "
    "forwards of the same batch under different seeds", "any layer in train mode; any difference",
    "MC-dropout evaluation on purpose",
    "call model.eval() at the start of evaluation (and model.train() after it)"))
