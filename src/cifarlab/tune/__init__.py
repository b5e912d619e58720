"""Hyper-parameter search on Optuna: spec (the search space), objective (a validation run), run (the worker), report."""
