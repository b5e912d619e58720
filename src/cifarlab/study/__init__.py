"""Ablation studies: spec (study files, run identity), run (execution), report (verdicts on validation)."""
