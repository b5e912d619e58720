"""The event trace of a user's own training loop, as `doctor run` observes it (hooks.py fills it), and the
judgements the loop checks make on any sequence of (phase, layer modes) forwards — from this trace or from
the pipeline form's loop run (probes.run_loop) alike."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

Forwards = list[tuple[str, list[bool]]]  # (phase "train" | "eval", training flag of each dropout/BN layer)


@dataclass
class Call:
    """One top-level call of a module (not nested in another module's forward)."""
    module: object
    modes: list[bool]  # training flag of each dropout / batch-norm layer at call time
    grad: bool  # torch.is_grad_enabled() at call time
    episode: int  # the batch (loader yield) or the step it belongs to
    loader: object | None  # the loader that yielded last
    size: int = 0  # elements of the first tensor argument (batch x channels x height x width): the input's size


@dataclass
class LoaderUse:
    """How the script used one DataLoader."""
    loader: object
    passes: int = 0  # __iter__ calls
    train_passes: int = 0  # passes during which an optimizer step happened
    batches: int = 0  # batches yielded (after the cap)
    stepped: bool = False  # an optimizer step happened during the current pass


@dataclass
class Trace:
    calls: list[Call] = field(default_factory=list)
    trained_episodes: set[int] = field(default_factory=set)  # episodes with a backward
    loaders: dict[int, LoaderUse] = field(default_factory=dict)  # by creation order
    optimizers: list = field(default_factory=list)  # created, in order
    stepped: list = field(default_factory=list)  # optimizers that stepped, last one last
    loss_fn: object | None = None  # the loss whose value was backpropagated (module or functional)
    losses: list[float] = field(default_factory=list)  # value of each backpropagated scalar loss
    steps: int = 0
    backwards: int = 0
    stale_backwards: int = 0  # backwards onto gradients left over from before the previous step
    cut: str | None = None  # why the audit shortened the script (None: it ran to its end)

    def phase(self, call: Call) -> str:
        """A forward is training when gradients were on and its batch (episode) was backpropagated."""
        return "train" if call.grad and call.episode in self.trained_episodes else "eval"

    def forwards(self, model) -> Forwards:
        return [(self.phase(c), c.modes) for c in self.calls if c.module is model]

    def nonfinite_loss(self) -> tuple[int, float] | None:
        return next(((i + 1, v) for i, v in enumerate(self.losses) if not math.isfinite(v)), None)


# ---------------------------------------------------------------- judgements shared by both entry points

def train_after_eval_in_eval_mode(forwards: Forwards) -> bool:
    """The first training forward that follows an evaluation has every dropout / BN layer in eval mode."""
    seen_eval = False
    for phase, modes in forwards:
        if phase == "eval":
            seen_eval = True
        elif seen_eval:
            return bool(modes) and not any(modes)
    return False


def eval_in_train_mode(forwards: Forwards) -> bool:
    return any(phase == "eval" and any(modes) for phase, modes in forwards)


def has_phases(forwards: Forwards) -> set[str]:
    return {phase for phase, _ in forwards}
