"""Deprecated location: `load_model` lives in pipeline.py, `evaluate_checkpoint` in evaluate.py."""
from __future__ import annotations

from .evaluate import evaluate_checkpoint
from .pipeline import load_model

__all__ = ["evaluate_checkpoint", "load_model"]
