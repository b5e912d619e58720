"""Atomic file writes and JSON / JSONL reading and appending. A leaf module: no torch, no cifarlab.

Every file cifarlab writes goes through `atomic_write`: a temporary file in the same folder, flushed and
fsynced, then renamed into place (os.replace is atomic on POSIX), so a killed job leaves either the old
file or the new one, never half of one. Records appended to a shared JSONL file (`append_jsonl`) are one
O_APPEND write each, so processes appending at once never lose one. Importing this module changes
nothing in the process (no umask round trip).
"""
from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path
from typing import Any, Callable


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
    # mode 0o666 through the umask, as for any new file (mkstemp's 0600 would need the umask, and
    # reading the umask means setting it, for every thread of the process)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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
    """Append one record as one line: a single write to a file opened O_APPEND, then fsync. The kernel
    places each such write at the end of the file as a whole, so shards appending at once lose no record,
    and nothing already written is rewritten."""
    line = (json.dumps(record) + "\n").encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a full disk: say so rather than leave half a record unnoticed
            raise OSError(f"could not append a record to {path}: {written} of {len(line)} bytes written")
        os.fsync(fd)
    finally:
        os.close(fd)
