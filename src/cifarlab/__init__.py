"""cifarlab: train, evaluate, audit and compare CIFAR-10/100 classifiers, fast and reproducibly.

The public API is imported lazily, so `import cifarlab.cli` (and `cifarlab --help`) does not load torch:
`cifarlab.train(cfg)` (defined in `cifarlab.engine`) and `cifarlab.evaluate_checkpoint(path)`
(`cifarlab.evaluate` is the evaluation module).
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

from .errors import ConfigError  # noqa: E402

# public name -> submodule that defines it (loaded on first access)
_LAZY = {"Config": "config", "make_config": "config", "train": "engine", "RunResult": "engine",
         "evaluate_checkpoint": "evaluate", "predict_images": "predict"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cifarlab' has no attribute {name!r}")


__all__ = ["Config", "ConfigError", "make_config", "train", "evaluate_checkpoint", "predict_images", "RunResult",
           "__version__"]
