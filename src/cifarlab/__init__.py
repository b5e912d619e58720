"""cifarlab: train, evaluate, audit and compare CIFAR-10/100 classifiers, fast and reproducibly."""
from __future__ import annotations

__version__ = "0.1.0"

from .config import Config, ConfigError, make_config  # noqa: E402
from .train import RunResult, train  # noqa: E402
from .api import evaluate_checkpoint as evaluate  # noqa: E402

__all__ = ["Config", "ConfigError", "make_config", "train", "evaluate", "RunResult", "__version__"]
