"""cifarlab: train, evaluate, audit and compare CIFAR-10/100 classifiers, fast and reproducibly.

The public API is imported lazily, so `import cifarlab.cli` (and `cifarlab --help`) does not load torch:
`cifarlab.train(cfg)` (the function; the loop's module is `cifarlab.train` in `from cifarlab.train
import ...`) and `cifarlab.evaluate_checkpoint(path)` (`cifarlab.evaluate` is the evaluation module).
"""
from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

from .errors import ConfigError  # noqa: E402

# public name -> submodule that defines it (loaded on first access)
_LAZY = {"Config": "config", "make_config": "config", "train": "train", "RunResult": "train",
         "evaluate_checkpoint": "evaluate", "predict_images": "predict"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cifarlab' has no attribute {name!r}")


class _Package(types.ModuleType):
    """Importing the submodule cifarlab.train must not replace the function `cifarlab.train`."""

    def __setattr__(self, name: str, value) -> None:
        if name == "train" and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = ["Config", "ConfigError", "make_config", "train", "evaluate_checkpoint", "predict_images", "RunResult",
           "__version__"]
