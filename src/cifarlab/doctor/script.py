"""`cifarlab doctor run SCRIPT [ARGS...]`: run an unmodified training script under the hooks of hooks.py,
then hand what it built (model, optimizer, loss, loaders) and the trace of its loop to the check engine.

Where the script writes: it runs with its working directory in a temporary mirror of the current
directory (small files copied, large files and big folders linked), so relative writes — checkpoints, logs,
`./data` downloads — land in the mirror, which is deleted afterwards. `in_place=True` runs it in the real
directory instead. Absolute paths are not redirected (documented in docs/doctor.md).
"""
from __future__ import annotations

import io
import os
import runpy
import shutil
import sys
import tempfile
import time
import traceback
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path

import torch

from .core import Context, Finding, GlobalState, Report, default_evaluate, default_train_step, run_checks
from .hooks import AuditStop, observe
from .limits import MIRROR_COPY_BYTES, MIRROR_MAX_FILES
from .objects import pick_objects

LINKED_DIRS = {".git", "__pycache__", ".venv", "venv", "node_modules", ".mypy_cache", ".pytest_cache"}


# ---------------------------------------------------------------- the temporary working directory

def _count_files(path: Path, limit: int) -> int:
    n = 0
    for _, _, files in os.walk(path):
        n += len(files)
        if n > limit:
            break
    return n


def mirror(src: Path, dst: Path) -> None:
    """Recreate `src` under `dst`: small files copied; big files, big folders, links and special files
    (sockets, FIFOs, devices: a run from /tmp meets them) linked."""
    dst.mkdir(parents=True, exist_ok=True)
    for entry in os.scandir(src):
        s, d = Path(entry.path), dst / entry.name
        if dst.resolve().is_relative_to(s.resolve()):
            continue  # the temporary directory itself lies in the tree (a run from /tmp)
        if entry.is_symlink():
            os.symlink(os.path.realpath(s), d)
        elif entry.is_dir():
            if entry.name in LINKED_DIRS or _count_files(s, int(MIRROR_MAX_FILES.value)) > MIRROR_MAX_FILES.value:
                os.symlink(s.resolve(), d)
            else:
                mirror(s, d)
        elif not entry.is_file() or entry.stat().st_size > MIRROR_COPY_BYTES.value:
            os.symlink(s.resolve(), d)  # big files, and sockets, FIFOs and devices (never read to copy)
        else:
            try:
                shutil.copy2(s, d)
            except PermissionError:  # unreadable here: the script could not read it either
                os.symlink(s.resolve(), d)


# ---------------------------------------------------------------- running the script as `python SCRIPT ARGS`

@contextmanager
def _as_main(script: Path, args: list[str], cwd: Path):
    """sys.argv, sys.path[0], the working directory, environment and thread count as `python` sets them;
    all restored after, and the script's own modules (from its folder) dropped from sys.modules."""
    saved = (sys.argv[:], sys.path[:], os.getcwd(), dict(os.environ), torch.get_num_threads(),
             set(sys.modules), GlobalState.capture())
    sys.argv, sys.path[0:0] = [str(script), *args], [str(script.parent)]
    os.environ.setdefault("MPLBACKEND", "Agg")  # plt.show() must not block the audit
    os.chdir(cwd)
    try:
        yield
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        os.chdir(saved[2])
        os.environ.clear()
        os.environ.update(saved[3])
        torch.set_num_threads(saved[4])
        for name in set(sys.modules) - saved[5]:
            f = getattr(sys.modules[name], "__file__", None) or ""
            if f.startswith((str(script.parent), str(cwd))):
                del sys.modules[name]
        saved[6].restore()


def _script_traceback(e: BaseException) -> str:
    """The traceback without the doctor's, runpy's and torch's own frames (the user's code and the error)."""
    tb = traceback.TracebackException.from_exception(e)
    hidden = (str(Path(__file__).parent), str(Path(torch.__file__).parent), "<frozen runpy>")
    tb.stack = traceback.StackSummary.from_list([f for f in tb.stack if not f.filename.startswith(hidden)])
    return "".join(tb.format())


def _execute(script: Path, args: list[str], cwd: Path, quiet: bool, budget_s: float | None):
    """Run the script under the hooks; (observer, exception or None, captured output tail)."""
    out = io.StringIO()
    error = None
    with ExitStack() as stack:
        if quiet:
            stack.enter_context(redirect_stdout(out))
            stack.enter_context(redirect_stderr(out))
        stack.enter_context(_as_main(script, args, cwd))
        obs = stack.enter_context(observe(budget_s))
        try:
            runpy.run_path(str(script), run_name="__main__")
        except AuditStop:
            pass
        except SystemExit as e:
            if e.code not in (None, 0):
                error = e
        except Exception as e:  # the script's own failure: reported, with what was observed before it
            error = e
    return obs, error, out.getvalue()[-2000:]


# ---------------------------------------------------------------- the audit

def run_script(script: str | Path, args: list[str] | None = None, *, cwd: str | Path | None = None,
               in_place: bool = False, quiet: bool = False, budget_s: float | None = None,
               checks=None) -> Report:
    """Audit `python SCRIPT ARGS` run from `cwd` (default: the current directory) without changing it.

    The script runs a bounded audit under hooks (hooks.py); then the doctor's checks run on the objects it
    built and on the trace of its loop. in_place=True lets its relative writes reach `cwd`; quiet=True
    captures its output. budget_s bounds the checks (the script's own run has AUDIT_BUDGET_S).
    """
    t0 = time.perf_counter()
    script = Path(script).resolve()
    if not script.is_file():
        raise FileNotFoundError(f"doctor run: script not found: {script}")
    base = Path(cwd or os.getcwd()).resolve()
    with tempfile.TemporaryDirectory(prefix="cifarlab-doctor-") as tmp:
        work = base if in_place else Path(tmp) / "cwd"
        if not in_place:
            mirror(base, work)
        inside = not in_place and script.is_relative_to(base)
        target = work / script.relative_to(base) if inside else script
        obs, error, output = _execute(target, list(args or []), work, quiet, None)
        script_s = time.perf_counter() - t0
        report = _judge(obs, error, budget_s, checks)
        report.audit.insert(0, f"ran {' '.join([script.name, *(args or [])])} in "
                            + ("place" if in_place else "a temporary copy of the working directory (removed)")
                            + f": {script_s:.1f} s for the script's bounded run")
    report.time_s = time.perf_counter() - t0
    if quiet and error is not None and output.strip():
        report.audit.append("the script's last output: " + output.strip().splitlines()[-1])
    return report


def _judge(obs, error, budget_s, checks) -> Report:
    report = Report()
    trace = obs.trace
    if error is not None:
        text = _script_traceback(error)
        if obs.empty:  # raised on the empty epochs the audit made: the cut, not the script, is the likely cause
            report.audit.append("the script raised after its remaining training epochs were emptied by the "
                                f"audit (likely a consequence of that cut): {text.strip().splitlines()[-1]}")
        else:
            report.crash = text
            report.findings.append(Finding("script", "error", "the script raised: "
                                           + text.strip().splitlines()[-1], "see the traceback above"))
    objs = pick_objects(trace)
    report.audit += objs.describe(trace)
    if objs.missing():
        report.findings.append(Finding("script", "info", f"inconclusive: the checks need {objs.missing()}, "
                                       "which the script did not create or use before it ended",
                                       "let the script reach its training loop (arguments, data path)"))
        return report
    ctx = Context(objs.model, objs.loss_fn, objs.optimizer, objs.train_loader, objs.eval_loader,
                  objs.num_classes, default_train_step, default_evaluate, trace=trace)
    return run_checks(ctx, report, checks, budget_s)
