"""Study files and run identity: a YAML list of experiments -> configs -> run folders named by config hash.

Study file:
    name: cifar100
    description: ...
    seeds: 1                       # default seeds per experiment (--seeds overrides)
    experiments:
      - id: "2.0"
        description: baseline
        preset: c100-cnn-base
        set: {train.epochs: 5}     # overrides, dotted keys
        compare: null              # id to compare against; default: the previous experiment

Top-level keys starting with `x-` are ignored: a place for YAML anchors shared by several `set`s
(`x-pin: &pin {...}`, then `set: {<<: *pin, train.epochs: 40}`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config, ConfigError, flatten, load_preset, load_yaml, make_config
from ..io import read_json, read_jsonl


@dataclass
class Experiment:
    id: str
    description: str
    preset: str
    overrides: dict = field(default_factory=dict)
    compare: str | None = None


@dataclass
class Study:
    name: str
    description: str
    seeds: int
    experiments: list[Experiment]
    path: Path


def load_study(path: Path) -> Study:
    d = load_yaml(path)
    if not isinstance(d, dict) or not isinstance(d.get("experiments"), list) or not d["experiments"]:
        raise ConfigError(f"{path}: a study needs a non-empty 'experiments' list")
    unknown = {k for k in d if not str(k).startswith("x-")} - {"name", "description", "seeds", "experiments"}
    if unknown:
        raise ConfigError(f"{path}: unknown study keys {sorted(unknown)}; valid: name, description, "
                          "seeds, experiments (and x-* for YAML anchors)")
    exps: list[Experiment] = []
    for i, e in enumerate(d["experiments"]):
        where = f"{path}: experiments[{i}]"
        if not isinstance(e, dict) or "id" not in e or "preset" not in e:
            raise ConfigError(f"{where}: each experiment needs 'id' and 'preset'")
        bad = set(e) - {"id", "description", "preset", "set", "compare"}
        if bad:
            raise ConfigError(f"{where}: unknown keys {sorted(bad)}; valid: id, description, preset, set, "
                              "compare")
        ids = [x.id for x in exps]
        if str(e["id"]) in ids:
            raise ConfigError(f"{where}: duplicate id {e['id']!r}")
        compare = e.get("compare", ids[-1] if ids else None)
        if compare is not None and str(compare) not in ids:
            raise ConfigError(f"{where}: compare {compare!r} is not an earlier experiment id ({ids})")
        exps.append(Experiment(str(e["id"]), str(e.get("description", "")), str(e["preset"]),
                               dict(e.get("set") or {}), None if compare is None else str(compare)))
    study = Study(str(d.get("name", path.stem)), str(d.get("description", "")), int(d.get("seeds", 1)),
                  exps, path)
    for e in exps:  # validate every config before any training starts
        resolve(e, 0)
    return study


def resolve(exp: Experiment, seed: int) -> Config:
    return make_config(exp.preset, {**exp.overrides, "train.seed": seed})


def run_dir(root: Path, exp: Experiment, seed: int) -> Path:
    cfg = resolve(exp, seed)
    return root / "runs" / f"{exp.id}-{cfg.hash()}-s{seed}"


def is_done(folder: Path) -> bool:
    f = folder / "summary.json"
    return f.is_file() and "test_acc" in read_json(f)


def study_runs(study: Study, n_seeds: int) -> list[tuple[Experiment, int]]:
    """Every run of the study in one stable order: experiments as listed, seeds 0..n-1 within each."""
    return [(exp, seed) for exp in study.experiments for seed in range(n_seeds)]


def missing_runs(study: Study, root: Path, n_seeds: int) -> list[str]:
    """Folder names (under root/runs) of the study's runs that have not finished yet."""
    folders = [run_dir(root, exp, seed) for exp, seed in study_runs(study, n_seeds)]
    return [f.name for f in folders if not is_done(f)]


def collect(study: Study, root: Path, n_seeds: int) -> list[dict]:
    """One row per experiment with its runs' summaries and histories (only finished runs)."""
    rows = []
    for exp in study.experiments:
        runs = []
        for seed in range(n_seeds):
            folder = run_dir(root, exp, seed)
            if is_done(folder):
                runs.append({"dir": folder, "summary": read_json(folder / "summary.json"),
                             "history": read_jsonl(folder / "metrics.jsonl")})
        cfg = resolve(exp, 0)
        ref = next((e for e in study.experiments if e.id == exp.compare), None)
        rows.append({"exp": exp, "cfg": cfg, "runs": runs, "diff": config_diff(exp, ref)})
    return rows


def config_diff(exp: Experiment, ref: Experiment | None) -> dict:
    """Values that differ from the compared experiment (or, for the first, from its preset),
    plus the always-shown essentials: epochs, batch size, lr, optimizer."""
    base = flatten((resolve(ref, 0) if ref else load_preset(exp.preset)).to_dict())
    cfg = flatten(resolve(exp, 0).to_dict())
    diff = {k: v for k, v in cfg.items() if base.get(k) != v and k not in ("train.seed", "name", "description")}
    for k in ("train.epochs", "train.batch_size", "optim.lr", "optim.name"):
        diff.setdefault(k, cfg[k])
    return diff
