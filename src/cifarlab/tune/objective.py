"""A trial: sample the space, train on the training split, report validation accuracy per epoch to
Optuna (which may prune), return the objective values. Validation only: a trial stops right after its
last validated epoch, so the test split is never evaluated for a trial.

`run_with_epoch_hook` is the one place that gets per-epoch records out of cifarlab's training loop (an
engine hook).
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable

import optuna
import torch

from ..config import Config, flatten
from ..errors import NonFiniteLoss
from ..io import read_jsonl
from ..engine import train
from ..hooks import Hook
from ..runlog import write_metrics
from ..runtime import pick_device
from .spec import TuneSpec, active, trial_config


class _Validated(Exception):
    """Raised by the epoch hook after the last epoch: the trial has its numbers, and the run must not
    go on to evaluate the test split."""


class _EpochReports(Hook):
    """Hands each validated epoch's record to `on_epoch` once that epoch's last.pt is on disk (on_save
    after on_epoch_end), so on_epoch may raise to stop the run without losing the epoch."""

    def __init__(self, on_epoch: Callable[[dict], None]):
        self.on_epoch, self.pending = on_epoch, None

    def on_epoch_end(self, run, rec: dict) -> None:
        self.pending = rec

    def on_save(self, run, path) -> None:
        rec, self.pending = self.pending, None
        if rec is not None:
            if run.dist.is_main:  # the epoch's metrics line too: on_epoch may stop the run before the engine writes it
                write_metrics(Path(path).parent / "metrics.jsonl", run.progress.history)
            self.on_epoch(rec)


def run_with_epoch_hook(cfg: Config | None, out: Path, on_epoch: Callable[[dict], None], data_dir=None,
                        resume: bool = False) -> None:
    """Train `cfg` into `out` (resume: continue `out` from its last.pt), calling on_epoch(record) after
    every validated epoch. on_epoch may raise to stop the run; its checkpoint is already written."""
    train(cfg, out=out, data_dir=data_dir, resume=resume, overwrite=not resume, quiet=True,
          hooks=[_EpochReports(on_epoch)])


def suggest(trial: optuna.Trial, spec: TuneSpec) -> dict:
    """Sample every space key whose condition holds, in spec order; conditions see the base config's
    values and the keys sampled before them."""
    values = flatten(trial_config(spec, {}).to_dict())
    params = {}
    for p in spec.space:
        if not active(p, values):
            continue
        if p.type == "categorical":
            v = trial.suggest_categorical(p.key, p.choices)
        elif p.type == "int":
            v = trial.suggest_int(p.key, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
        else:
            v = trial.suggest_float(p.key, float(p.low), float(p.high), step=p.step, log=p.log)
        params[p.key] = values[p.key] = v
    return params


def run_folder(root: Path, trial: optuna.Trial) -> Path:
    """trials/NNNN by trial number; a re-queued trial (a retry copies the user attributes) keeps the
    killed trial's folder, so it continues that run's checkpoint instead of starting over."""
    return root / trial.user_attrs.get("run", f"trials/{trial.number:04d}")


class Objective:
    """The callable Optuna optimizes: one trial = one training run with per-epoch reports."""

    def __init__(self, spec: TuneSpec, root: Path, data_dir=None, over_budget: Callable | None = None):
        self.spec, self.root, self.data_dir = spec, root, data_dir
        self.over_budget = over_budget  # trial -> bool: another worker filled the budget first
        self.current: int | None = None  # the running trial's number (re-queued when interrupted)

    def __call__(self, trial: optuna.Trial):
        self.current = trial.number
        if self.over_budget is not None and self.over_budget(trial):
            raise OverBudget(f"trial {trial.number} started after the budget was filled; not run")
        cfg = trial_config(self.spec, suggest(trial, self.spec))
        out = run_folder(self.root, trial)
        resume = (out / "last.pt").is_file()
        history = read_jsonl(out / "metrics.jsonl") if resume and (out / "metrics.jsonl").is_file() else []
        trial.set_user_attr("run", str(out.relative_to(self.root)))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("config_hash", cfg.hash())
        rt = pick_device(cfg.train)  # what the trial's training time depends on
        trial.set_user_attr("hardware", {**rt.hw.record(), "precision": rt.precision, "torch": torch.__version__})
        trial.set_user_attr("date", time.strftime("%Y-%m-%d", time.gmtime()))
        for rec in history:  # a continued run: the killed trial's epochs, reported again
            self._report(trial, rec, cfg)
        try:
            run_with_epoch_hook(None if resume else cfg, out, lambda rec: self._epoch(trial, rec, cfg, history),
                                self.data_dir, resume=resume)
        except _Validated:
            pass
        except NonFiniteLoss as e:  # a diverging recipe is a result (a bad one), not a broken trial
            trial.set_user_attr("diverged", str(e))
            raise optuna.TrialPruned(f"diverged: {e}") from None
        return self._values(trial, history)

    def _epoch(self, trial: optuna.Trial, rec: dict, cfg: Config, history: list) -> None:
        history.append(rec)
        self._report(trial, rec, cfg)
        if rec["epoch"] >= cfg.train.epochs:  # done: pruning now would save nothing, the result is known
            raise _Validated()
        if len(self.spec.objectives) == 1 and trial.should_prune():
            raise optuna.TrialPruned(f"epoch {rec['epoch']}: val {rec['val_acc']:.2f}%")

    def _report(self, trial: optuna.Trial, rec: dict, cfg: Config) -> None:
        trial.set_user_attr(f"epoch_{rec['epoch']}", {"val_acc": rec["val_acc"], "time_s": rec["epoch_time_s"]})
        if len(self.spec.objectives) == 1:  # Optuna prunes single-objective studies only
            trial.report(rec["val_acc"], step=rec["epoch"])

    def _values(self, trial: optuna.Trial, history: list):
        best = max(r["val_acc"] for r in history)  # what train()'s best-on-validation selection keeps
        train_s = sum(r["epoch_time_s"] for r in history)
        trial.set_user_attr("val_acc", best)
        trial.set_user_attr("train_time", train_s)
        values = [{"val_acc": best, "train_time": train_s}[o] for o in self.spec.objectives]
        return values[0] if len(values) == 1 else values


class OverBudget(Exception):
    """A trial asked for after other workers filled the budget (it is marked failed, never run)."""
