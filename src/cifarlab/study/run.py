"""Run a study: train what is not done yet (resumable, cached by config hash), then write its report."""
from __future__ import annotations

from pathlib import Path

from ..io import write_text
from ..train import train
from .report import write_study_report
from .spec import is_done, load_study, resolve, run_dir


def run_study(path: Path, out: Path | None = None, seeds: int | None = None, data_dir=None,
              quiet: bool = False) -> Path:
    """Run what is not done yet, then write study.md/csv/json and figures. Returns the study folder."""
    study = load_study(path)
    out = out or path.with_suffix("")
    n_seeds = seeds or study.seeds
    out.mkdir(parents=True, exist_ok=True)
    if path.resolve() != (out / "study.yaml").resolve():
        write_text(out / "study.yaml", path.read_text())  # so `cifarlab report DIR` finds the study
    for exp in study.experiments:
        for seed in range(n_seeds):
            folder = run_dir(out, exp, seed)
            if is_done(folder):
                continue
            resume = (folder / "last.pt").is_file()
            if not quiet:
                print(f"[{study.name}] {exp.id} seed {seed}: {'resuming' if resume else 'training'} "
                      f"-> {folder}", flush=True)
            train(resolve(exp, seed), out=folder, data_dir=data_dir, resume=resume, overwrite=not resume,
                  quiet=True)
    write_study_report(study, out, n_seeds, data_dir)
    if not quiet:
        print(f"study written to {out}/study.md")
    return out
