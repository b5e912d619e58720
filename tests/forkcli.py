"""`cifarlab` commands as real, killable processes that skip the ~5 s of importing torch.

A multiprocessing fork server imports torch, torch._dynamo, the engine and matplotlib once; every command is then a
fresh process forked from it (milliseconds), with its own pid, signal handlers and exit status, so
SIGKILL and SIGTERM land on a real training process exactly as they would on `python -m cifarlab`. The
server has run no torch computation when it forks, so no OpenMP pool is copied into a child.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path

_PRELOAD = ["torch", "torch._dynamo", "cifarlab.cli", "cifarlab.engine", "matplotlib.figure",
            "matplotlib.backends.backend_agg"]
_ctx = None


def _context():
    global _ctx
    if _ctx is None:
        os.environ.setdefault("OMP_NUM_THREADS", "2")  # read by the server's torch import
        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(_PRELOAD)
    return _ctx


def warm() -> None:
    """Start the fork server and wait until its imports are done (so that a timed command is not)."""
    assert run(["--help"], Path(".")) == 0


def _main(argv: list[str], env: dict, stderr: str | None) -> None:
    os.environ.update(env)
    out = os.open(os.devnull, os.O_WRONLY)
    os.dup2(out, 1)
    if stderr is not None:
        err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(err, 2)
    from cifarlab.cli import main
    sys.exit(main(argv))


def start(argv: list[str], data_root: Path, stderr: Path | None = None) -> mp.Process:
    """Start `cifarlab ARGV` (stdout discarded, stderr to the file `stderr`); `.exitcode` is its status."""
    p = _context().Process(target=_main, args=(list(argv), {"CIFARLAB_DATA": str(data_root)},
                                               None if stderr is None else str(stderr)))
    p.start()
    return p


def run(argv: list[str], data_root: Path, stderr: Path | None = None, timeout: float = 300) -> int:
    """Run `cifarlab ARGV` to the end; its exit status."""
    p = start(argv, data_root, stderr)
    p.join(timeout)
    if p.exitcode is None:
        p.kill()
        raise TimeoutError(f"cifarlab {' '.join(argv)} still running after {timeout} s")
    return p.exitcode
