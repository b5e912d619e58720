"""Hooks: what the engine calls at its fixed points, so that a run can be watched and steered without
touching the loop.

    class Hook:
        every_steps = 0                      # on_step after every this-many optimizer steps (0: never)
        agree = True                         # torchrun: rank 0's plan reaches every rank after this hook
        def on_start(self, run): ...         # assembled, resumed, before the first step
        def on_step(self, run): ...          # after optimizer step run.progress.step
        def on_evaluate(self, run, rec): ... # the epoch's validation metrics are in rec
        def on_epoch_end(self, run, rec): ...# rec is in run.progress.history; before last.pt is saved
        def on_save(self, run, path): ...    # rank 0 wrote last.pt (mid-epoch or at an epoch end)

Steering (from any hook): `run.replan(total_steps=...)` or `run.replan(epochs=...)` changes the run's
remaining length: the learning-rate schedule (optim.lr_at reads run.total_steps at every step) and
Lookahead's ramp follow it, it is saved in last.pt, and a resumed run keeps it. `run.request_stop(reason)`
ends the run after the current step (its epoch is validated and saved, then the test split is evaluated
as usual; the summary's status says why). Under torchrun rank 0's plan is the one every rank follows.

A step hook must not read device tensors each time it is called: that is a host sync per step.
`ProgressLines` checks the wall clock per step and reads the running sums only when it prints.
"""
from __future__ import annotations

import time


class Hook:
    """Base class: every method does nothing; override the ones you need."""
    every_steps = 0
    agree = True

    def on_start(self, run) -> None:
        pass

    def on_step(self, run) -> None:
        pass

    def on_evaluate(self, run, rec: dict) -> None:
        pass

    def on_epoch_end(self, run, rec: dict) -> None:
        pass

    def on_save(self, run, path) -> None:
        pass


class Hooks:
    """The run's hooks, called in order; step hooks only on their own cadence."""

    def __init__(self, hooks=()):
        self.all = list(hooks)
        self.stepping = [h for h in self.all if h.every_steps]

    def start(self, run) -> None:
        for h in self.all:
            h.on_start(run)

    def step(self, run) -> bool:
        """Call the step hooks due after this step; whether one that may re-plan was called."""
        called = False
        step = run.progress.step
        for h in self.stepping:
            if step % h.every_steps == 0:
                h.on_step(run)
                called = called or h.agree
        return called

    def evaluate(self, run, rec: dict) -> None:
        for h in self.all:
            h.on_evaluate(run, rec)

    def epoch_end(self, run, rec: dict) -> None:
        for h in self.all:
            h.on_epoch_end(run, rec)

    def save(self, run, path) -> None:
        for h in self.all:
            h.on_save(run, path)


class ProgressLines(Hook):
    """A progress line at least every `every_s` seconds of wall time, for logs without a terminal
    (where no progress bar shows): epoch, step/total, running train accuracy (of this epoch so far),
    the last validation accuracy, images/s and the expected finish time. Reads the device accumulators
    only when it prints."""
    every_steps = 1
    agree = False  # it only reads

    def __init__(self, every_s: float = 30.0, print_fn=None):
        self.every_s = every_s
        self.print = print_fn or (lambda line: print(line, flush=True))
        self.t_start = self.t_last = self.start_step = None

    def on_start(self, run) -> None:
        self.t_start = self.t_last = time.perf_counter()
        self.start_step = run.progress.step

    def on_step(self, run) -> None:
        now = time.perf_counter()
        if now - self.t_last < self.every_s:
            return
        self.t_last = now
        self.print(self.line(run, now))

    def line(self, run, now: float) -> str:
        p, sums = run.progress, run.sums
        done, total = p.step, run.total_steps
        seen = sums.seen if sums is not None else 0
        acc = (f"train acc {int(sums.correct.item()) / seen * 100:.2f}%" if seen else "train acc -")
        val = next((r["val_acc"] for r in reversed(p.history) if r.get("val_acc") is not None), None)
        elapsed = now - self.t_start
        steps = max(done - self.start_step, 1)
        per_step = elapsed / steps
        left = max(total - done, 0) * per_step
        rate = steps * run.loader.batch_size / max(elapsed, 1e-9)
        finish = time.strftime("%H:%M:%S", time.localtime(time.time() + left))
        return (f"epoch {p.epoch + 1}/{run.epochs} | step {done}/{total} | {acc}"
                + (f" | val acc {val:.2f}%" if val is not None else "")
                + f" | {rate:.0f} img/s | ETA {finish} ({_duration(left)} left)")


def _duration(s: float) -> str:
    s = int(round(s))
    h, m = divmod(s // 60, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s % 60:02d}s"
