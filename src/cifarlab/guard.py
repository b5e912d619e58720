"""What stops a run that should not go on: SIGINT/SIGTERM (finish the step, checkpoint, stop) and
non-finite losses (skip a few, or stop keeping the last good checkpoint), per train.nonfinite."""
from __future__ import annotations

import signal
from contextlib import contextmanager

from .config import TrainConfig
from .errors import NonFiniteLoss


@contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set flag["signal"]; the loop finishes its step, checkpoints and stops. The
    previous handlers come back on exit."""
    flag = {"signal": None}

    def handler(signum, _frame):
        flag["signal"] = signal.Signals(signum).name
    old = {}
    try:
        for s in (signal.SIGINT, signal.SIGTERM):
            old[s] = signal.signal(s, handler)
    except ValueError:  # not the main thread: no signal handling
        pass
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def handle_nonfinite(tc: TrainConfig, progress, batch: int) -> None:
    """A non-finite loss at `batch` (0-based) of the current epoch: count it as skipped
    (train.nonfinite=skip, up to train.max_skipped_steps), else raise NonFiniteLoss."""
    where = f"epoch {progress.epoch + 1}, batch {batch + 1} (step {progress.step + 1})"
    if tc.nonfinite == "skip":
        progress.skipped_steps += 1
        if progress.skipped_steps <= tc.max_skipped_steps:
            return
        raise NonFiniteLoss(f"non-finite loss at {where}: {progress.skipped_steps} steps skipped, more "
                            f"than train.max_skipped_steps={tc.max_skipped_steps}")
    if tc.finite_check_every > 1:
        where = f"within the {tc.finite_check_every} steps before {where} (train.finite_check_every)"
    raise NonFiniteLoss(f"non-finite loss (NaN/Inf) at {where}; lower optim.lr, set optim.grad_clip, "
                        "or train.nonfinite=skip. The last good checkpoint is kept.")
