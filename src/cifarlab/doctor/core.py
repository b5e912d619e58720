"""Findings, the report, the check registry, the context every check reads, and diagnose()."""
from __future__ import annotations

import copy
import random
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from .limits import STEP_IMAGES, TOTAL_BUDGET_S

SEVERITIES = ("error", "warning", "info")
# budgets count the CPU time of the thread running the checks, not wall time: a verdict must not depend on
# what else the machine runs (on a busy shared CPU the wall clock ran 30x faster than the work); nor the
# process's CPU time, which intra-op worker threads inflate (spin-waiting on tiny batches) — on an idle
# machine this thread is always busy, so its CPU time tracks the wall time the user would see
clock = time.thread_time


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str  # error | warning | info
    message: str
    fix: str  # one line

    @property
    def docs(self) -> str:
        return f"cifarlab doctor explain {self.code}"

    @property
    def inconclusive(self) -> bool:
        """A check that ran out of budget or could not run: info, never a warning (a warning means a likely
        problem)."""
        return self.severity == "info" and self.message.startswith("inconclusive")


@dataclass(frozen=True)
class Check:
    """One registered check: what it measures and how to fix what it finds (rendered into the docs)."""
    code: str
    family: str  # data | model | loop | fit
    run: Callable[["Context"], list[Finding]]
    severity: str  # the severities it can report, e.g. "error / warning"
    measures: str
    threshold: str
    risks: str  # false-positive risks
    fix: str  # the one-line fix attached to its findings
    needs_model: bool = True  # skipped when the pipeline cannot run a batch


CHECKS: dict[str, Check] = {}  # filled in run order by the family modules (imported in __init__)


def register(check: Check) -> Check:
    CHECKS[check.code] = check
    return check


def found(code: str, severity: str, message: str, fix: str | None = None) -> Finding:
    """A finding of `code`; its fix defaults to the check's registered one-line fix."""
    return Finding(code, severity, message, fix or CHECKS[code].fix)


def inconclusive(code: str, what: str, needs: str) -> Finding:
    """An info finding for a check that could not decide: `what` happened, `needs` says what it would take."""
    return Finding(code, "info", f"inconclusive: {what}", needs)


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    checks_run: list[str] = field(default_factory=list)
    time_s: float = 0.0  # wall
    cpu_s: float = 0.0  # this process's CPU time, all threads
    check_cpu_s: dict[str, float] = field(default_factory=dict)  # per check, the budget clock (this thread)
    audit: list[str] = field(default_factory=list)  # `doctor run`: what the bounded run of the script observed
    crash: str | None = None  # `doctor run`: the script's traceback when it raised

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def count(self, severity: str) -> int:
        return sum(f.severity == severity for f in self.findings)

    def summary(self) -> str:
        """The report's last line: errors, warnings, and checks that could not decide."""
        n_inc = len({f.code for f in self.findings if f.inconclusive})
        return (f"{self.count('error')} error(s), {self.count('warning')} warning(s), "
                f"{n_inc} check(s) inconclusive")

    def codes(self, severity: str | None = None) -> set[str]:
        return {f.code for f in self.findings if severity is None or f.severity == severity}

    def brief(self) -> str:
        """One line per finding (severity, code, message) and the summary; `explain CODE` has the rest."""
        lines = [f"cifarlab doctor: {len(self.checks_run)} checks in {self.time_s:.1f}s"]
        if self.crash:
            lines.append("the script raised: " + self.crash.rstrip().splitlines()[-1])
        lines += [f"{f.severity:<7} [{f.code}] {f.message}" for sev in SEVERITIES for f in self.findings
                  if f.severity == sev]
        return "\n".join(lines + [self.summary()])

    def __str__(self) -> str:
        lines = [f"cifarlab doctor: {len(self.checks_run)} checks in {self.time_s:.1f}s ({self.cpu_s:.1f} CPU s)"]
        lines += [f"  {a}" for a in self.audit]
        if self.crash:
            lines += ["\nTHE SCRIPT RAISED (what was observed before is checked below)", self.crash.rstrip()]
        for sev in SEVERITIES:
            group = [f for f in self.findings if f.severity == sev]
            if group:
                lines.append(f"\n{sev.upper()}S ({len(group)})")
                lines += [f"  [{f.code}] {f.message}\n      fix: {f.fix}\n      more: {f.docs}" for f in group]
        if not self.findings:
            lines.append("all checks passed")
        lines.append("\n" + self.summary())
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
    fit: Callable | None = None  # the user's whole loop: fit(model, loss_fn, optimizer, train, eval, epochs)
    deadline: float = 0.0  # clock() (CPU seconds) after which budgeted checks stop
    batch: tuple[torch.Tensor, torch.Tensor] | None = None  # the first training batch, cut to STEP_IMAGES
    step_s: float = 0.0  # measured time of one train_step on `batch`
    model_runs: bool = True  # False once the pipeline fails on a real batch
    trace: object | None = None  # `doctor run`: the Trace of the user's own loop (trace.py); None for diagnose()
    cache: dict = field(default_factory=dict)

    def fresh(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Deep copies of the model and optimizer, the copied optimizer bound to the copied model.

        Copied together, so the optimizer's references resolve to the copy's parameters: its kind, settings
        and state carry over, and an optimizer that holds other tensors than the model's (built for another
        model object) keeps holding other tensors — the bug is kept, not repaired.
        """
        return copy.deepcopy((self.model, self.optimizer))

    def seconds_left(self, budget_s: float) -> float:
        return max(0.0, min(budget_s, self.deadline - clock()))


# ---------------------------------------------------------------- global state the doctor must leave as found

def flush_denormal_enabled() -> bool:
    """Whether denormal floats are flushed to zero on this thread (torch has no getter: measure it).

    1e-39 is a float32 denormal; multiplied by 1 it survives unless flush-to-zero / denormals-are-zero
    is on.
    """
    tiny = torch.tensor([1e-39], dtype=torch.float32)
    return bool((tiny * torch.tensor([1.0]))[0] == 0)


@dataclass
class GlobalState:
    cpu: torch.Tensor
    cuda: list[torch.Tensor] | None
    numpy: tuple
    python: tuple
    flush_denormal: bool

    @classmethod
    def capture(cls) -> "GlobalState":
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() \
            else None
        return cls(torch.get_rng_state(), cuda, np.random.get_state(), random.getstate(),
                   flush_denormal_enabled())

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        np.random.set_state(self.numpy)
        random.setstate(self.python)
        torch.set_flush_denormal(self.flush_denormal)


# ---------------------------------------------------------------- entry point

def _first_batch(loader) -> tuple[torch.Tensor, torch.Tensor]:
    xb, yb = next(iter(loader))[:2]
    n = int(STEP_IMAGES.value)
    return xb[:n], yb[:n]


def diagnose(model: nn.Module, loss_fn: Callable, optimizer: torch.optim.Optimizer, train_loader: Iterable,
             eval_loader: Iterable, num_classes: int, train_step: Callable | None = None,
             evaluate: Callable | None = None, fit: Callable | None = None,
             checks: Iterable[str] | None = None, budget_s: float | None = None) -> Report:
    """Run the CHECKS on copies of the pipeline; the caller's objects and global state are left unchanged.

    fit(model, loss_fn, optimizer, train_loader, eval_loader, epochs): your whole training loop, optional;
    given, the train-mode / eval-mode checks run it (on a few batches) instead of assuming an evaluation
    after every epoch of train_step calls.
    """
    ctx = Context(model, loss_fn, optimizer, train_loader, eval_loader, num_classes,
                  train_step or default_train_step, evaluate or default_evaluate, fit)
    return run_checks(ctx, Report(), checks, budget_s)


def run_checks(ctx: Context, report: Report, checks: Iterable[str] | None = None,
               budget_s: float | None = None) -> Report:
    """The check engine both entry points share (diagnose() and `doctor run`): CHECKS in order on `ctx`,
    findings appended to `report`; global state restored and times recorded."""
    t0, c0 = time.perf_counter(), time.process_time()
    state = GlobalState.capture()
    ctx.deadline = clock() + (TOTAL_BUDGET_S.value if budget_s is None else budget_s)
    # fixed seeds make every verdict a function of the pipeline alone; CPU generator only, so that a
    # CUDA context that is not initialised yet is not touched (restored, with everything else, below)
    torch.random.default_generator.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    # fitting one batch drives gradients into denormal floats, which run ~10x slower on CPUs
    torch.set_flush_denormal(True)
    try:
        ctx.batch = _first_batch(ctx.train_loader)
        for code in checks or CHECKS:
            if code not in CHECKS:
                raise KeyError(f"unknown check {code!r}; valid: {', '.join(CHECKS)}")
            _run_one(ctx, report, CHECKS[code])
    finally:
        state.restore()
    report.time_s += time.perf_counter() - t0
    report.cpu_s += time.process_time() - c0
    return report


def _run_one(ctx: Context, report: Report, check: Check) -> None:
    if check.needs_model and not ctx.model_runs:
        return
    c_check = clock()
    try:
        report.findings += check.run(ctx)
    except Exception as e:  # the pipeline ran a batch before: an odd object, not a broken pipeline
        report.findings.append(inconclusive(check.code, f"the check could not run: {type(e).__name__}: "
                                            f"{_first_line(e)}", "run the pipeline once by hand to see the full error"))
    report.checks_run.append(check.code)
    report.check_cpu_s[check.code] = round(clock() - c_check, 3)


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text else ""
