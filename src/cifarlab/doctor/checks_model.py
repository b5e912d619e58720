"""Model checks: does it run on a real batch, with the right output, loss pairing, layers and start."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .core import Check, Context, Finding, _first_line, clock, found, register
from .limits import (CE_SMOOTHING_TOL, COLLAPSE_MIN_SIGN_CHANGE, COLLAPSE_R2, INIT_LOSS_TOL, LOSS_KIND_TOL,
                     PROB_TOL, RELU_ZEROS, SLOW_STEP_S)
from .probes import Limited, dropout_off, forward_trace, logits_of


def _where(entered, x) -> str:
    """' in layer NAME (...)' for the last leaf layer entered before a failure, with size hints."""
    if not entered:
        return ""
    name, mod, shapes = entered[-1]
    where = f" in layer '{name}' ({mod}) given input of shape {list(shapes[0]) if shapes else '?'}"
    if isinstance(mod, nn.Linear) and shapes:
        got = shapes[0][-1]
        where += (f": it expects {mod.in_features} features but receives {got}"
                  + (f" (images give {'×'.join(map(str, x.shape[1:]))} = {x[0].numel()})"
                     if got == x[0].numel() else ""))
    return where


def _forward(model: nn.Module, x: torch.Tensor, train: bool):
    """model(x) in train or eval mode, recording the leaf layers entered; (output, entered, error)."""
    entered = []
    names = {m: n for n, m in model.named_modules()}
    hooks = [m.register_forward_pre_hook(lambda mod, inp: entered.append((names[mod], mod, tuple(
        i.shape for i in inp if torch.is_tensor(i))))) for m in model.modules() if not list(m.children())]
    model.train(train)
    try:
        with torch.no_grad():
            return model(x), entered, None
    except Exception as e:  # any exception: the model cannot run on the data it will be trained on
        return None, entered, e
    finally:
        for h in hooks:
            h.remove()


def check_shape_mismatch(ctx: Context) -> list[Finding]:
    x = ctx.batch[0]
    for train in (False, True):
        model, _ = ctx.fresh()
        out, entered, err = _forward(model, x, train)
        mode = "train" if train else "eval"
        if err is not None:
            ctx.model_runs = False
            return [found("shape-mismatch", "error",
                          f"the model raises on a real batch of shape {list(x.shape)} ({mode} mode)"
                          f"{_where(entered, x)}: {type(err).__name__}: {_first_line(err)}")]
        logits = logits_of(out)
        expected = [len(x), ctx.num_classes]
        if logits is None or list(logits.shape) != expected:
            ctx.model_runs = False
            got = "None (forward() has no return?)" if out is None else (
                f"a {type(out).__name__} without a tensor" if logits is None else f"shape {list(logits.shape)}")
            hint = ""
            if logits is not None and logits.ndim == 2 and logits.shape[0] != len(x):
                hint = (": the batch dimension changed — a view/reshape with a hard-coded feature count "
                        "(x.view(-1, N)) merges or splits images")
            return [found("shape-mismatch", "error", f"the model returns {got} for a batch of {len(x)} "
                          f"images, expected {expected} (one row of {ctx.num_classes} logits per image){hint}")]
    return []


def check_step_error(ctx: Context) -> list[Finding]:
    """train_step on a real batch and evaluate on one eval batch must run; times the step for budgets."""
    model, opt = ctx.fresh()
    x, y = ctx.batch
    where = "train_step"
    try:
        t0 = clock()
        ctx.train_step(model, x, y, ctx.loss_fn, opt)
        ctx.step_s = clock() - t0
        where = "evaluate"
        ctx.evaluate(model, Limited(ctx.eval_loader, 1), ctx.loss_fn)
    except Exception as e:  # the user's step or evaluation crashes: nothing downstream can be trusted
        ctx.model_runs = False
        return [found("step-error", "error", f"your {where} raises on a real batch: {type(e).__name__}: "
                      f"{_first_line(e)}")]
    if ctx.step_s > SLOW_STEP_S.value and len(x) >= 8:  # a big model: fewer images per step from here on
        ctx.batch = (x[:len(x) // 4], y[:len(x) // 4])
    return []


def outputs(ctx: Context) -> torch.Tensor:
    """Eval-mode logits of the untouched model on the first batch (cached)."""
    if "outputs" not in ctx.cache:
        model, _ = ctx.fresh()
        model.eval()
        with torch.no_grad():
            ctx.cache["outputs"] = logits_of(model(ctx.batch[0])).float()
    return ctx.cache["outputs"]


def _is_probabilities(out: torch.Tensor) -> bool:
    return bool((out >= 0).all() and (out <= 1).all()
                and torch.allclose(out.sum(1), torch.ones(len(out)), atol=PROB_TOL.value))


def _is_log_probabilities(out: torch.Tensor) -> bool:
    return bool((out <= 1e-6).all() and torch.allclose(out.logsumexp(1), torch.zeros(len(out)),
                                                       atol=PROB_TOL.value))


def _loss_kind(ctx: Context, out: torch.Tensor, y: torch.Tensor) -> str:
    """'ce' | 'nll' | 'other' by behaviour: compare the user's loss with the two reference losses."""
    with torch.no_grad():
        got = float(ctx.loss_fn(out, y))
        ce = float(F.cross_entropy(out, y))
        nll = float(F.nll_loss(out, y))
    tol = LOSS_KIND_TOL.value * max(1.0, abs(ce))
    if abs(got - nll) < tol and abs(got - ce) >= tol:
        return "nll"
    if abs(got - ce) < CE_SMOOTHING_TOL.value * max(1.0, abs(ce)):
        return "ce"
    return "other"


def check_nonfinite(ctx: Context) -> list[Finding]:
    model, opt = ctx.fresh()
    x, y = ctx.batch
    problems = []
    if not torch.isfinite(outputs(ctx)).all():
        problems.append("model outputs")
    loss = ctx.train_step(model, x, y, ctx.loss_fn, opt)
    if loss is not None and not torch.isfinite(torch.as_tensor(loss)).all():
        problems.append("loss")
    if any(p.grad is not None and not torch.isfinite(p.grad).all() for p in model.parameters()):
        problems.append("gradients")
    if problems:
        return [found("nonfinite", "error", f"NaN/Inf in {', '.join(problems)} on the first batch")]
    return []


def check_activation_before_loss(ctx: Context) -> list[Finding]:
    out, y = outputs(ctx), ctx.batch[1]
    kind = _loss_kind(ctx, out, y)
    if kind == "nll" and _is_log_probabilities(out):
        return []
    if _is_probabilities(out):
        what = "probabilities (softmax at the end of the model)"
    elif (out >= 0).all() and (out == 0).float().mean() > RELU_ZEROS.value:
        what = "non-negative with many exact zeros (a ReLU after the last layer)"
    elif (out >= 0).all():
        what = "all non-negative (a sigmoid or ReLU at the end)"
    else:
        return []
    return [found("activation-before-loss", "error",
                  f"model outputs are {what}, but {_loss_name(ctx.loss_fn)} expects "
                  f"{'log-probabilities' if kind == 'nll' else 'raw logits'}")]


def _loss_name(loss_fn) -> str:
    fn = getattr(loss_fn, "func", loss_fn)  # functools.partial: the script's functional loss and its kwargs
    return getattr(fn, "__name__", None) or type(fn).__name__


def check_loss_output_mismatch(ctx: Context) -> list[Finding]:
    out, y = outputs(ctx), ctx.batch[1]
    kind = _loss_kind(ctx, out, y)
    with torch.no_grad():
        loss = float(ctx.loss_fn(out, y))
    if kind == "nll" and not _is_log_probabilities(out):
        return [found("loss-output-mismatch", "error",
                      f"NLLLoss is applied to outputs that are not log-probabilities (loss {loss:.3f}; it can go "
                      "negative and starts far from ln C)")]
    if kind == "ce" and _is_probabilities(out):
        return [found("loss-output-mismatch", "error",
                      "CrossEntropyLoss is applied to probabilities (outputs sum to 1): softmax runs twice and "
                      "gradients vanish")]
    return []


def _affine_r2(a: torch.Tensor, b: torch.Tensor) -> float:
    """R² of the best per-feature affine fit b_j ≈ alpha_j * a_j + beta_j over the batch."""
    am, bm = a - a.mean(0), b - b.mean(0)
    alpha = (am * bm).sum(0) / (am * am).sum(0).clamp(min=1e-12)
    resid = bm - alpha * am
    return float(1 - (resid ** 2).sum() / (bm ** 2).sum().clamp(min=1e-12))


def check_linear_collapse(ctx: Context) -> list[Finding]:
    """Two Linear layers in a row whose connection is affine (no non-linearity between them).

    Judged in train mode (batch-norm normalizes with batch statistics, as in training; an untrained
    network's eval-mode statistics leave units that never change sign) with dropout off (its masks are
    not a non-linearity of the data).
    """
    model, _ = ctx.fresh()
    model.train()
    with torch.no_grad(), dropout_off(model):
        _, trace = forward_trace(model, ctx.batch[0])
    layers = [(n, m, i, o) for n, m, i, o in trace if isinstance(m, (nn.Linear, nn.Conv2d))]
    findings = []
    for (na, ma, _, out_a), (nb, mb, in_b, _) in zip(layers, layers[1:]):
        if not (isinstance(ma, nn.Linear) and isinstance(mb, nn.Linear)) or out_a is None or in_b is None \
                or out_a.shape != in_b.shape or len(out_a) < 8:
            continue
        a, b = out_a.reshape(len(out_a), -1).double(), in_b.reshape(len(in_b), -1).double()
        crosses = ((a > 0).any(0) & (a < 0).any(0)).double().mean()
        if crosses < COLLAPSE_MIN_SIGN_CHANGE.value:
            continue  # a ReLU would act linearly on this data: cannot tell
        r2 = _affine_r2(a, b)
        if r2 > COLLAPSE_R2.value:
            findings.append(found("linear-collapse", "error",
                                  f"'{nb}' takes an affine function of '{na}'s output (R² = {r2:.6f}): the two "
                                  "Linear layers collapse into one linear map (BatchNorm and Dropout are not "
                                  "non-linearities)", f"put a non-linearity (e.g. ReLU) between '{na}' and '{nb}'"))
    return findings


def check_init_loss(ctx: Context) -> list[Finding]:
    """`doctor run` judges the first loss the script computed (its model as initialised), not a loss of the
    model after the audit's steps."""
    if ctx.trace is not None and ctx.trace.losses:
        loss = ctx.trace.losses[0]
    else:
        out, y = outputs(ctx), ctx.batch[1]
        with torch.no_grad():
            loss = float(ctx.loss_fn(out, y))
    expected = math.log(ctx.num_classes)
    if not math.isfinite(loss) or abs(loss - expected) <= INIT_LOSS_TOL.value * expected:
        return []
    return [found("init-loss", "warning", f"initial loss {loss:.3f} is far from ln({ctx.num_classes}) = "
                  f"{expected:.3f} expected from an untrained classifier")]


FAMILY = "model"
register(Check(
    "shape-mismatch", FAMILY, check_shape_mismatch, "error",
    "the model on the first training batch in eval and in train mode: any exception (with the last layer "
    "entered, its input shape and, for a Linear, expected vs received features), or an output that is not "
    "one row of `num_classes` logits per image (both dimensions; None from a forward without return)",
    "any exception; output shape ≠ [batch, num_classes]",
    "models that need extra inputs; a tuple output uses its first tensor",
    "make each layer's input size match what the previous layer produces (flatten with x.flatten(1), "
    "in_features = channels × height × width of the last feature map) and return one logit per class",
    needs_model=False))
register(Check(
    "step-error", FAMILY, check_step_error, "error",
    "one `train_step` on the first batch and `evaluate` on one eval batch; any exception",
    "any exception", "none: your code raises on your data",
    "run one step by hand and fix the exception (see the message for the failing call)"))
register(Check(
    "nonfinite", FAMILY, check_nonfinite, "error",
    "NaN/Inf in outputs, the loss of one `train_step`, or gradients", "any non-finite value", "none known",
    "look for log/sqrt/division of values that can be ≤ 0 or un-normalized inputs; "
    "torch.autograd.set_detect_anomaly(True) finds the op"))
register(Check(
    "activation-before-loss", FAMILY, check_activation_before_loss, "error",
    "outputs of the untrained model: all ≥ 0 (ReLU/sigmoid at the end) or rows that are probabilities, "
    "while the loss expects logits", "all outputs ≥ 0, or rows in [0, 1] summing to 1 (PROB_TOL)",
    "a model whose logits are legitimately non-negative (rare)",
    "remove the final activation: the last layer must be a plain Linear returning logits "
    "(CrossEntropyLoss applies log-softmax itself)"))
register(Check(
    "loss-output-mismatch", FAMILY, check_loss_output_mismatch, "error",
    "the loss value compared with `nll_loss` and `cross_entropy` on the same outputs: NLLLoss on "
    "non-log-probabilities, CrossEntropyLoss on probabilities",
    "equality within LOSS_KIND_TOL; log-probabilities: logsumexp = 0 ± PROB_TOL",
    "custom losses equal to NLL by coincidence",
    "use nn.CrossEntropyLoss on logits, or end the model with log_softmax for NLLLoss"))
register(Check(
    "linear-collapse", FAMILY, check_linear_collapse, "error",
    "for consecutive Linear layers in execution order (forward hooks, tensors cloned so in-place ReLUs "
    "cannot rewrite them), a per-feature affine fit of the second layer's input on the first layer's "
    "output, in train mode with dropout off; skipped where too few units change sign",
    "R² > COLLAPSE_R2 with ≥ COLLAPSE_MIN_SIGN_CHANGE of units crossing zero",
    "an activation that is linear on the observed range",
    "put a non-linearity (e.g. ReLU) between the two Linear layers"))
register(Check(
    "init-loss", FAMILY, check_init_loss, "warning",
    "the loss of the model as given on the first batch (`doctor run`: the first loss your script "
    "backpropagated) vs ln(C)", "|loss − ln C| > INIT_LOSS_TOL × ln C",
    "a model that is already trained (expected to be low)",
    "check the last layer's initialization and the loss/output pairing (ignore for a trained model)"))
