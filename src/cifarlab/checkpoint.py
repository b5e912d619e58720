"""Atomic file writes and safe checkpoint loading.

Every file a run writes goes through `atomic_write`: a temporary file in the same folder, flushed and
fsynced, then renamed into place (os.replace is atomic on POSIX), so a killed job leaves either the
old file or the new one, never half of one. Checkpoints load with `torch.load(weights_only=True)`:
tensors and plain containers only, never arbitrary unpickling.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

FORMAT = "cifarlab-checkpoint-v1"
_UMASK = os.umask(0)
os.umask(_UMASK)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded or does not fit; the message names the file and the fix."""


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


def save_checkpoint(path, state: dict) -> None:
    state = {"format": FORMAT, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    write_bytes(path, buf.getvalue())


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a cifarlab checkpoint with weights_only=True; refuse anything that needs full unpickling."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: it holds objects that only full unpickling could build, which "
            f"can run arbitrary code ({str(e).splitlines()[0]}). Only load checkpoints written by "
            "cifarlab from sources you trust.") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{str(e).splitlines()[0]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a cifarlab checkpoint (expected format {FORMAT!r})")
    return state


def load_weights(model: torch.nn.Module, state: dict, path="checkpoint", target: str | None = None) -> None:
    """Load state['model'] into `model`, failing with a message that names both architectures.

    `target` describes `model` (e.g. "cnn with 100 classes") for that message.
    """
    cfg = state.get("config", {})
    saved = f"{cfg.get('model', {}).get('name', '?')} with {state.get('num_classes', '?')} classes"
    try:
        model.load_state_dict(state["model"], strict=True)
    except (RuntimeError, KeyError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{path}: weights are for {saved}, which does not match the model being loaded "
            f"({target or type(model).__name__}): {first}") from None
