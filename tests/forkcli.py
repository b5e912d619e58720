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
    assert run(["--help"]) == 0


def _main(argv: list[str], env: dict, log: str | None, threads: int | None) -> None:
    os.environ.update(env)
    if threads:  # the server's torch was imported with OMP_NUM_THREADS=2; no pool exists yet in this child
        import torch
        torch.set_num_threads(threads)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if log else os.open(os.devnull, os.O_WRONLY)
    os.dup2(out, 1)
    if log:
        os.dup2(out, 2)
    from cifarlab.cli import main
    sys.exit(main(argv))


def start(argv: list[str], data_root: Path | None = None, log: Path | None = None,
          threads: int | None = None) -> mp.Process:
    """Start `cifarlab ARGV` (stdout and stderr to the file `log`, else stdout discarded); `.exitcode` is its
    status. data_root: $CIFARLAB_DATA; threads: torch's intra-op threads."""
    env = {} if data_root is None else {"CIFARLAB_DATA": str(data_root)}
    p = _context().Process(target=_main, args=(list(argv), env, None if log is None else str(log), threads))
    p.start()
    return p


def run(argv: list[str], data_root: Path | None = None, log: Path | None = None, timeout: float = 300) -> int:
    """Run `cifarlab ARGV` to the end; its exit status."""
    p = start(argv, data_root, log)
    p.join(timeout)
    if p.exitcode is None:
        p.kill()
        raise TimeoutError(f"cifarlab {' '.join(argv)} still running after {timeout} s")
    return p.exitcode
