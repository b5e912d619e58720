"""Atomic file writes and JSON / JSONL reading and appending. A leaf module: no torch, no cifarlab.

Every file cifarlab writes goes through `atomic_write`: a temporary file in the same folder, flushed and
fsynced, then renamed into place (os.replace is atomic on POSIX), so a killed job leaves either the old
file or the new one, never half of one.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

_UMASK = os.umask(0)
os.umask(_UMASK)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write via `write(fileobj)` to a temp file beside `path`, fsync, rename. Cleans up on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the final file the usual mode
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OSError(e.errno, f"could not write {path} ({e.strerror}); the previous version, "
                                   "if any, is intact") from e
        raise
    _fsync_dir(path.parent)


def write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path) -> Any:
    with open(path) as f:
        return json.load(f)


def write_jsonl(path, records: list[dict]) -> None:
    """Rewrite a JSONL file atomically, one record per line."""
    write_text(path, "".join(json.dumps(rec) + "\n" for rec in records))


def read_jsonl(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_jsonl(path, record: dict) -> None:
    """Append one record; the file is rewritten atomically, so a kill never leaves half a line."""
    old = read_jsonl(path) if Path(path).is_file() else []
    write_jsonl(path, [*old, record])
