"""Loop checks: gradients cleared between steps, dropout / batch-norm modes in training and evaluation, the
batches batch-norm sees, and whether evaluation builds autograd graphs."""
from __future__ import annotations

import math

import torch

from .core import Check, Context, Finding, _first_line, found, inconclusive, register
from .limits import AUDIT_PASSES, EVAL_GRAPH_RATIO, ZERO_GRAD_RATIO
from .probes import BATCHNORMS, Limited, frozen_batchnorms, logits_of, mode_layers, run_loop
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


def _without(forwards, drop: list[int]):
    """The forwards with the modes of the layers at positions `drop` removed."""
    if not drop:
        return forwards
    return [(phase, [m for i, m in enumerate(modes) if i not in drop]) for phase, modes in forwards]


def check_train_mode(ctx: Context) -> list[Finding]:
    """Judged on the first training forward that follows an evaluation in the user's loop. Batch-norm layers
    frozen on purpose (no parameter requires grad) are left out: eval mode is how they are kept frozen."""
    model, opt = ctx.fresh()
    if not mode_layers(model):
        return []
    forwards = _without(_forwards(ctx, model, opt), frozen_batchnorms(ctx.model))
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


def _last_batch(loader) -> tuple[int, int, int] | None:
    """(items in the last batch, batch size, items per pass) of a loader that keeps a partial last batch
    (DataLoader with drop_last=False); None when that cannot be read."""
    batches = getattr(loader, "batch_sampler", None)
    size, drop = getattr(batches, "batch_size", None), getattr(batches, "drop_last", None)
    if not isinstance(size, int) or size < 1 or drop is not False:
        return None
    try:
        n = len(batches.sampler)
    except (TypeError, AttributeError):
        return None
    return n % size, size, n


def check_bn_batch_of_one(ctx: Context) -> list[Finding]:
    """The last batch of every training epoch holds one image while batch-norm normalises in train mode:
    BatchNorm on (1, C) features raises; on feature maps it normalises one image by its own statistics."""
    last = _last_batch(ctx.train_loader)
    bn = [i for i, m in enumerate(mode_layers(ctx.model)) if isinstance(m, BATCHNORMS)]
    if last is None or last[0] != 1 or not bn:
        return []
    model, opt = ctx.fresh()
    training = [modes for phase, modes in _forwards(ctx, model, opt) if phase == "train"]
    if training and not any(training[0][i] for i in bn if i < len(training[0])):
        return []  # batch-norm kept in eval mode while training: a batch of one is harmless
    what = (f"the training loader yields {last[2]} images per epoch in batches of {last[1]} with "
            f"drop_last=False, so every epoch ends with a batch of 1")
    model.train()
    try:
        with torch.no_grad():
            model(ctx.batch[0][:1])
    except Exception as e:  # the crash the script meets at the end of its first epoch
        return [found("bn-batch-of-one", "error", f"{what}, on which the model in train mode raises: "
                      f"{type(e).__name__}: {_first_line(e)}")]
    return [found("bn-batch-of-one", "warning", f"{what}: batch-norm normalises that image by its own "
                  "statistics and moves its running statistics towards them")]


def check_frozen_bn_updating(ctx: Context) -> list[Finding]:
    """Batch-norm layers whose parameters are frozen (requires_grad=False) but which are in train mode in
    training forwards: their running mean / variance keep following the training batches. An error: the
    part meant to stay fixed computes other features after training than before (observed, not guessed);
    adapting batch-norm statistics on purpose is the false-positive risk its entry names."""
    layers = mode_layers(ctx.model)
    frozen = [i for i in frozen_batchnorms(ctx.model) if _tracks_stats(layers[i])]
    if not frozen:
        return []
    model, opt = ctx.fresh()
    training = [modes for phase, modes in _forwards(ctx, model, opt) if phase == "train"]
    moving = {i for modes in training for i in frozen if i < len(modes) and modes[i]}
    if not moving:
        return []
    names = {m: n for n, m in ctx.model.named_modules()}
    example = ", ".join(f"'{names[layers[i]]}'" for i in sorted(moving)[:3])
    return [found("frozen-bn-updating", "error", f"{len(moving)} of {len(frozen)} batch-norm layers whose "
                  f"parameters are frozen (requires_grad=False; e.g. {example}) are in train mode while the model "
                  "trains: their running mean and variance keep moving to the new data, so the 'frozen' part "
                  "computes different features after training than before")]


def _tracks_stats(bn) -> bool:
    return bool(bn.track_running_stats and bn.running_mean is not None and bn.momentum != 0)


def _eval_grad_flags(ctx: Context) -> list[bool]:
    """torch.is_grad_enabled() at each evaluation forward: observed (`doctor run`) or from one eval batch."""
    if ctx.trace is not None:
        return [c.grad for c in ctx.trace.calls if c.module is ctx.model and ctx.trace.phase(c) == "eval"]
    model, _ = ctx.fresh()
    flags: list[bool] = []
    handle = model.register_forward_pre_hook(lambda mod, inp: flags.append(torch.is_grad_enabled()))
    try:
        ctx.evaluate(model, Limited(ctx.eval_loader, 1, max_items=len(ctx.batch[0])), ctx.loss_fn)
    finally:
        handle.remove()
    return flags


def _graph_ratio(ctx: Context) -> float:
    """`doctor run`: how many times larger the largest evaluation input forwarded with gradients on is than
    the largest training input (0 when either is unknown). The graph a forward keeps grows with its input,
    so a ratio above 1 means evaluation holds more activations than a training step ever did."""
    if ctx.trace is None:
        return 0.0
    calls = [c for c in ctx.trace.calls if c.module is ctx.model]
    train = max((c.size for c in calls if ctx.trace.phase(c) == "train"), default=0)
    evals = max((c.size for c in calls if ctx.trace.phase(c) == "eval" and c.grad), default=0)
    return evals / train if train and evals else 0.0


def check_eval_without_no_grad(ctx: Context) -> list[Finding]:
    if not any(p.requires_grad for p in ctx.model.parameters()):
        return []  # nothing to record a graph for
    flags = _eval_grad_flags(ctx)
    if not flags:
        return [inconclusive("eval-without-no-grad", "no evaluation forward was observed",
                             "needs the script to evaluate within its first passes or after training")]
    if not any(flags):
        return []
    what = (f"{sum(flags)} of {len(flags)} evaluation forwards ran with gradients enabled: each builds an "
            "autograd graph and keeps every activation alive until its outputs are freed")
    ratio = _graph_ratio(ctx)
    if ratio > EVAL_GRAPH_RATIO.value:
        return [found("eval-without-no-grad", "error", f"{what}, and the largest of their inputs is {ratio:.3g}x "
                      "the largest training input, so evaluation holds more activation memory than a training step: "
                      "where training just fits (a batch size chosen for the GPU), evaluation runs out of "
                      "memory (the 'out of memory during validation' threads)")]
    return [found("eval-without-no-grad", "warning", f"{what} (memory and time, not accuracy; no larger than "
                  "a training step's graph here, so it fits wherever training does)")]


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
    "the dropout/batch-norm modes of the first training forward after an evaluation (batch-norm layers whose "
    "parameters are all frozen, requires_grad=False, left out: eval mode is how they are kept frozen)",
    "all in eval mode", "diagnose() without `fit`: a loop that never evaluates mid-training is assumed to "
    "evaluate after each epoch (pass `fit`, or use `doctor run`)",
    "call model.train() at the start of each training epoch (and after every mid-epoch validation)"))
register(Check(
    "eval-mode", FAMILY, check_eval_mode, "error / info",
    "the dropout/batch-norm modes of every evaluation forward in the same loop run (or observed by `doctor run`); and two eval-mode "
    "forwards of the same batch under different seeds", "any layer in train mode; any difference",
    "MC-dropout evaluation on purpose",
    "call model.eval() at the start of evaluation (and model.train() after it)"))
register(Check(
    "bn-batch-of-one", FAMILY, check_bn_batch_of_one, "error / warning",
    "the training DataLoader's batch size, drop_last and items per pass (its sampler); the model's batch-norm "
    "layers and their mode in training forwards; the model in train mode on one image of the first batch",
    "last batch of exactly 1 item with batch-norm in train mode: error when the model raises on it, warning "
    "when it runs", "none for the error (the script crashes at the end of its first epoch); the warning: a "
    "single-image batch on feature maps is legal, only noisy",
    "pass drop_last=True to the training DataLoader (or change the batch size so that no batch of 1 is left)"))
register(Check(
    "frozen-bn-updating", FAMILY, check_frozen_bn_updating, "error",
    "batch-norm layers whose parameters all have requires_grad=False and that track running statistics: "
    "their mode in the training forwards of your loop (observed by `doctor run`, or the loop run)",
    "any such layer in train mode during training",
    "updating the statistics of a frozen backbone on purpose (adapting batch-norm to the new data; momentum "
    "encoders)",
    "put the frozen part's batch-norm layers in eval mode after every model.train() (e.g. override train() or "
    "call backbone.eval() at the start of each epoch), or unfreeze them on purpose"))
register(Check(
    "eval-without-no-grad", FAMILY, check_eval_without_no_grad, "error / warning / info",
    "torch.is_grad_enabled() at every evaluation forward (`doctor run`: observed; diagnose(): your `evaluate` "
    "on one eval batch) of a model with trainable parameters; `doctor run` also compares the size of the "
    "evaluation inputs forwarded with gradients on with the largest training input",
    "error (`doctor run`): an evaluation input with gradients on more than EVAL_GRAPH_RATIO times the largest "
    "training input (its graph "
    "outgrows a training step's: out of memory where training fits); warning: any other evaluation forward "
    "with gradients enabled",
    "evaluations that need gradients on purpose (adversarial or gradient-based attribution metrics)",
    "wrap evaluation in `with torch.no_grad():` (or torch.inference_mode())"))
