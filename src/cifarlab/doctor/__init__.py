"""cifarlab doctor: find the classic training-pipeline bugs in anyone's PyTorch code.

    report = diagnose(model, loss_fn, optimizer, train_loader, eval_loader, num_classes,
                      train_step=None, evaluate=None, fit=None)
    report = run_script("train.py", ["--epochs", "5"])   # an unmodified script (`cifarlab doctor run`)

Every check works on deep copies of the model and optimizer, and diagnose() restores the RNG states
(CPU, CUDA, NumPy, Python) and the flush-denormal mode it found, so the caller's objects and global
state are unchanged. Checks are grouped by family (checks_data, checks_model, checks_loop, checks_fit),
registered in CHECKS in run order; every number they decide with is a named Limit in limits.py;
docs/doctor.md is rendered from both (`python -m cifarlab.doctor.docs`).
"""
from __future__ import annotations

from . import checks_data, checks_model, checks_loop, checks_fit  # noqa: F401  (registration, in run order)
from .core import CHECKS, Check, Finding, Report, default_evaluate, default_train_step, diagnose
from .presets import PipelineLoader, diagnose_preset, diagnose_script, preset_pipeline
from .script import run_script

__all__ = ["CHECKS", "Check", "Finding", "Report", "diagnose", "default_train_step", "default_evaluate",
           "PipelineLoader", "preset_pipeline", "diagnose_preset", "diagnose_script", "run_script"]
