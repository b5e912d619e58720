"""Test-only (tests/test_distributed.py puts this folder on PYTHONPATH): in a torchrun worker whose RANK
is not 0, opening a file for writing, creating, renaming or removing anything under
$CIFARLAB_TEST_RANK0_ONLY raises PermissionError, so a rank other than 0 that writes into the run
folder fails the run."""
import builtins
import io
import os

_ROOT = os.environ.get("CIFARLAB_TEST_RANK0_ONLY")

if _ROOT and os.environ.get("RANK", "0") != "0":
    _root = os.path.realpath(_ROOT)
    _rank = os.environ["RANK"]

    def _guard(path, what):
        if isinstance(path, int):
            return
        p = os.path.realpath(os.fsdecode(os.fspath(path)))
        if p == _root or p.startswith(_root + os.sep):
            raise PermissionError(f"rank {_rank} tried to {what} {p}: only rank 0 may write the run folder")

    def _wrap_open(real):
        def opener(file, mode="r", *args, **kwargs):
            if any(c in mode for c in "wax+"):
                _guard(file, "write")
            return real(file, mode, *args, **kwargs)
        return opener

    def _os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            _guard(path, "write")
        return _real_os_open(path, flags, *args, **kwargs)

    def _two(real, what):
        def fn(src, dst, *args, **kwargs):
            _guard(src, what)
            _guard(dst, what)
            return real(src, dst, *args, **kwargs)
        return fn

    def _one(real, what):
        def fn(path, *args, **kwargs):
            _guard(path, what)
            return real(path, *args, **kwargs)
        return fn

    _real_os_open = os.open
    builtins.open = io.open = _wrap_open(io.open)
    os.open = _os_open
    os.replace, os.rename = _two(os.replace, "rename"), _two(os.rename, "rename")
    os.mkdir, os.unlink, os.remove, os.rmdir = (_one(os.mkdir, "create"), _one(os.unlink, "remove"),
                                                _one(os.remove, "remove"), _one(os.rmdir, "remove"))
