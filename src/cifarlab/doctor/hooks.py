"""The hooks `doctor run` installs while a user's script runs: they record a Trace and bound the audit.

Observed through torch's own hook points where it has them (global module forward pre/post hooks, the
global optimizer step hook) and by wrapping a few class attributes where it does not
(`torch.autograd.backward`, `F.cross_entropy` / `F.nll_loss`, `DataLoader.__init__` / `__iter__`,
`Optimizer.__init__`). The source is never rewritten, and `observe()` restores every attribute and removes
every hook on exit, whatever the script did. A wrapper the script kept a reference to
(`from torch.nn.functional import cross_entropy`) passes straight through once the audit is over.

Bounding: every loader yields at most AUDIT_BATCHES batches per pass. Once a training loader has had
AUDIT_PASSES passes with optimizer steps, training loaders yield nothing (the script's remaining epochs run
empty, so an evaluation after training is still observed); AuditStop ends the script after
AUDIT_EVAL_PASSES further loader passes, AUDIT_MAX_STEPS steps or AUDIT_BUDGET_S CPU seconds.
"""
from __future__ import annotations

import weakref
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import Optimizer, register_optimizer_step_post_hook
from torch.utils.data import DataLoader

from .core import clock
from .limits import AUDIT_BATCHES, AUDIT_BUDGET_S, AUDIT_EVAL_PASSES, AUDIT_MAX_STEPS, AUDIT_PASSES
from .probes import MODE_LAYERS
from .trace import Call, LoaderUse, Trace

LOSS_FUNCTIONS = ("cross_entropy", "nll_loss")  # functional losses observed (classification)
EMPTY_PASSES = 1000  # empty passes of a cut training loader before a `while` loop over it is stopped


class AuditStop(BaseException):
    """Ends the user's script once the audit has seen enough; a BaseException so `except Exception` in the
    script cannot swallow it."""


class Observer:
    """Fills a Trace from the hook callbacks and decides when the audit has seen enough."""

    def __init__(self, budget_s: float | None = None):
        self.trace = Trace()
        self.active = True
        self.depth = 0  # nesting of module forwards: only depth-0 calls are recorded
        self.episode = 0
        self.current = None  # LoaderUse whose batch is in hand (the innermost open pass that yielded last)
        self.open: list = []  # LoaderUse of the passes under way, outermost first
        self.after_cut = 0  # loader passes since training loaders were cut
        self.empty = 0
        self.deadline = clock() + (AUDIT_BUDGET_S.value if budget_s is None else budget_s)
        self._layers = weakref.WeakKeyDictionary()  # module -> its dropout / BN layers (None: no parameters)
        self._fresh_step = weakref.WeakKeyDictionary()  # optimizer -> stepped since the last backward
        self._last_loss = None
        self._open_calls: list[bool] = []  # module forwards under way, innermost last: has it parameters?
        self._model_out = None  # weakref to the output of the last top-level call of a module with parameters

    def stop_if_over(self, where: str) -> None:
        if clock() > self.deadline:
            self.trace.cut = self.trace.cut or f"CPU budget of {AUDIT_BUDGET_S.value:g} s reached ({where})"
            raise AuditStop(self.trace.cut)

    # ---- modules
    def pre_forward(self, module, args) -> None:
        if not self.active:
            return
        if self.depth == 0:
            self.stop_if_over("module call")
            if isinstance(module, nn.modules.loss._Loss):
                self._last_loss = module
            elif (layers := self._mode_layers(module)) is not None:
                loader = self.current.loader if self.current else None
                x = next((a for a in args if torch.is_tensor(a)), None)
                self.trace.calls.append(Call(module, [m.training for m in layers], torch.is_grad_enabled(),
                                             self.episode, loader, x.numel() if x is not None else 0))
        if self.depth == 0:
            self._open_calls.clear()  # a forward that raised never closed its calls
        self._open_calls.append(self.depth == 0 and self._mode_layers(module) is not None)
        self.depth += 1

    def _mode_layers(self, module) -> list | None:
        """Its dropout / BN layers; None for a module without parameters (torchvision transforms are
        modules too: called per image, never the model)."""
        if module not in self._layers:
            has_params = next(module.parameters(), None) is not None
            self._layers[module] = [m for m in module.modules() if isinstance(m, MODE_LAYERS)] if has_params \
                else None
        return self._layers[module]

    def post_forward(self, module, args, out) -> None:
        if self.active:
            self.depth = max(0, self.depth - 1)
            if self._open_calls and self._open_calls.pop() and torch.is_tensor(out):
                self._model_out = weakref.ref(out)

    # ---- losses, backward, steps
    def functional_loss(self, name: str, args: tuple, kwargs: dict) -> None:
        """A functional loss called by the script itself, or inside a loss module of its own (a module
        without parameters) directly on the model's output."""
        if not self.active:
            return
        x = args[0] if args else kwargs.get("input")
        on_output = self._model_out is not None and self._model_out() is x and not any(self._open_calls)
        if self.depth == 0 or on_output:
            extra = {k: v for k, v in kwargs.items() if k not in ("input", "target")}
            self._last_loss = (name, extra)

    def before_backward(self, loss) -> None:
        t = self.trace
        t.backwards += 1
        t.trained_episodes.add(self.episode)
        if isinstance(loss, (list, tuple)) and loss:
            loss = loss[0]
        if torch.is_tensor(loss) and loss.numel() == 1:
            t.losses.append(float(loss.detach()))
        if t.loss_fn is None and self._last_loss is not None:
            t.loss_fn = self._last_loss
        if t.stepped and self._stale(t.stepped[-1]):
            t.stale_backwards += 1

    def _stale(self, optimizer) -> bool:
        """Gradients still non-zero from before the last step (zero_grad() / grad = None missing)."""
        if not self._fresh_step.get(optimizer, False):
            return False  # a second backward before a step: gradient accumulation, on purpose
        self._fresh_step[optimizer] = False
        return any(p.grad is not None and bool(p.grad.any())
                   for g in optimizer.param_groups for p in g["params"])

    def after_step(self, optimizer, args, kwargs) -> None:
        if not self.active:
            return
        t = self.trace
        t.steps += 1
        if optimizer in t.stepped:
            t.stepped.remove(optimizer)
        t.stepped.append(optimizer)
        self._fresh_step[optimizer] = True
        if self.current is not None:
            self.current.stepped = True
        self.episode += 1  # a loop over tensors of its own (no loader): one step, one episode
        if t.steps >= AUDIT_MAX_STEPS.value:
            t.cut = t.cut or f"{int(AUDIT_MAX_STEPS.value)} optimizer steps reached"
            raise AuditStop(t.cut)
        self.stop_if_over("optimizer step")

    # ---- loaders
    def loader_created(self, loader) -> None:
        if self.active:
            self.trace.loaders[id(loader)] = LoaderUse(loader)  # the Trace holds the loader: ids stay unique

    def loader_iter(self, loader, iterator):
        use = self.trace.loaders.setdefault(id(loader), LoaderUse(loader))
        self.stop_if_over("loader pass")
        if self._cut(use):
            return
        use.passes += 1
        self.open.append(use)
        try:
            for i, batch in enumerate(iterator):
                if i >= AUDIT_BATCHES.value:
                    break
                use.batches += 1
                self.current = use
                self.episode += 1
                yield batch
        finally:  # the pass ended (or the script broke out of it): steps since its start were its steps
            self.open.pop(max(i for i, u in enumerate(self.open) if u is use))
            use.train_passes += use.stepped
            use.stepped = False
            # a validation nested in a training pass hands the batch in hand back to the training pass
            self.current = self.open[-1] if self.open else use

    def _cut(self, use) -> bool:
        """True when this pass runs empty (training seen enough); AuditStop when the audit is over."""
        if not any(u.train_passes >= AUDIT_PASSES.value for u in self.trace.loaders.values()):
            return False
        self.trace.cut = self.trace.cut or f"{int(AUDIT_PASSES.value)} passes of the training loop observed"
        if use.train_passes:  # training seen enough: the script's remaining epochs run empty
            self.empty += 1
            if self.empty > EMPTY_PASSES:
                raise AuditStop(self.trace.cut)
            return True
        self.after_cut += 1
        if self.after_cut > AUDIT_EVAL_PASSES.value:
            raise AuditStop(self.trace.cut)
        return False


# ---------------------------------------------------------------- installing and removing

def _wrap_backward(obs: Observer, original):
    def backward(tensors, *args, **kwargs):
        if obs.active:
            obs.before_backward(tensors)
        return original(tensors, *args, **kwargs)
    return backward


def _wrap_loss(obs: Observer, name: str, original):
    def loss(*args, **kwargs):
        obs.functional_loss(name, args, kwargs)
        return original(*args, **kwargs)
    return loss


def _wrap_init(obs: Observer, original, record):
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if obs.active:
            record(self)
    return __init__


def _wrap_iter(obs: Observer, original):
    def __iter__(self):
        if not obs.active:
            return original(self)
        return obs.loader_iter(self, original(self))
    return __iter__


def _patches(obs: Observer) -> list[tuple[object, str, object]]:
    """(owner, attribute, replacement) for every attribute the audit wraps."""
    patches = [(torch.autograd, "backward", _wrap_backward(obs, torch.autograd.backward)),
               (DataLoader, "__init__", _wrap_init(obs, DataLoader.__init__, obs.loader_created)),
               (DataLoader, "__iter__", _wrap_iter(obs, DataLoader.__iter__)),
               (Optimizer, "__init__", _wrap_init(obs, Optimizer.__init__, obs.trace.optimizers.append))]
    patches += [(F, n, _wrap_loss(obs, n, getattr(F, n))) for n in LOSS_FUNCTIONS]
    return patches


@contextmanager
def observe(budget_s: float | None = None):
    """Hooks installed for the duration; yields the Observer (its .trace). Everything is restored on exit."""
    obs = Observer(budget_s)
    saved = [(owner, name, owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name))
             for owner, name, _ in _patches(obs)]
    handles = [nn.modules.module.register_module_forward_pre_hook(obs.pre_forward),
               nn.modules.module.register_module_forward_hook(obs.post_forward, always_call=True),
               register_optimizer_step_post_hook(obs.after_step)]
    try:
        for owner, name, new in _patches(obs):
            setattr(owner, name, new)
        yield obs
    finally:
        obs.active = False
        for h in handles:
            h.remove()
        for owner, name, old in saved:
            setattr(owner, name, old)
