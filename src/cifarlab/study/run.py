"""Run a study: train what is not done yet (resumable, cached by config hash), then write its report.

Sharding (`cifarlab ablate STUDY --shard I/N`): N processes (machines, GPUs) given the same study file,
--seeds and output folder on a shared filesystem split its runs. Run k of the stable order (experiments
as listed, seeds 0..n-1 within each; see spec.study_runs) belongs to shard k mod N + 1. A shard trains
only its own runs; whichever shard finds every run finished writes the report, and `cifarlab report`
assembles it from the run folders at any time.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError
from ..io import write_text
from ..engine import train
from .report import write_study_report
from .spec import is_done, load_study, missing_runs, resolve, run_dir, study_runs


def parse_shard(text: str) -> tuple[int, int]:
    """'2/4' -> (2, 4): shard 2 of 4, numbered from 1. ConfigError for anything else."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise ConfigError(f"--shard {text!r}: expected I/N with 1 <= I <= N (shards are numbered from 1), "
                          "e.g. --shard 1/2 on one machine and --shard 2/2 on another")
    return int(m[1]), int(m[2])


def shard_of(runs: list, shard: tuple[int, int] | None) -> list:
    """The runs shard (i, n) trains: run k goes to shard k mod n + 1; None = all of them."""
    if shard is None:
        return list(runs)
    i, n = shard
    return [r for k, r in enumerate(runs) if k % n == i - 1]


def run_study(path: Path, out: Path | None = None, seeds: int | None = None, data_dir=None,
              quiet: bool = False, shard: tuple[int, int] | None = None) -> Path:
    """Run what is not done yet (only shard (i, n)'s runs when given), then write study.md/csv/json and
    figures once every run of the study is finished. Returns the study folder."""
    study = load_study(path)
    out = out or path.with_suffix("")
    n_seeds = seeds or study.seeds
    out.mkdir(parents=True, exist_ok=True)
    if path.resolve() != (out / "study.yaml").resolve():
        write_text(out / "study.yaml", path.read_text())  # so `cifarlab report DIR` finds the study
    tag = f"{study.name}" + (f" shard {shard[0]}/{shard[1]}" if shard else "")
    for exp, seed in shard_of(study_runs(study, n_seeds), shard):
        folder = run_dir(out, exp, seed)
        if is_done(folder):
            continue
        resume = (folder / "last.pt").is_file()
        if not quiet:
            print(f"[{tag}] {exp.id} seed {seed}: {'resuming' if resume else 'training'} -> {folder}", flush=True)
        train(resolve(exp, seed), out=folder, data_dir=data_dir, resume=resume, overwrite=not resume, quiet=True)
    missing = missing_runs(study, out, n_seeds)
    if missing:  # other shards' runs: the shard that finishes last writes the report
        if not quiet:
            print(f"[{tag}] done; {len(missing)} of {len(study_runs(study, n_seeds))} runs are not finished "
                  f"yet ({', '.join(missing)}): report not written. The last shard to finish writes it, or "
                  f"`cifarlab report {out}` once all are done", flush=True)
        return out
    write_study_report(study, out, n_seeds, data_dir)
    if not quiet:
        print(f"study written to {out}/study.md")
    return out
