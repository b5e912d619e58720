"""A corpus of CIFAR training pipelines modelled on public code, for the doctor's tests and benchmark.

Each module names its SOURCE (URL of the code, issue or thread) and BUG (the diagnosed bug, or None for
a known-correct pipeline), EXPECT (the doctor code that must be reported as an error; None: no error
allowed), and pipeline(data) returning diagnose() arguments. Written from what each source shows —
architecture family, loss, optimizer and lr, batch size, transforms, step and evaluation structure —
not copied; only the data loading differs (small slices of the real data, see common.py).
"""
from __future__ import annotations

import importlib
import pkgutil

NAMES = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name[:2] in ("b_", "c_"))


def load(name: str):
    return importlib.import_module(f"{__name__}.{name}")
