"""Tune spec files: a base preset, a search space over config keys, the objective and the budget.

    name: sprint-4keys
    description: ...
    base: c100-sprint                     # preset name (or YAML path)
    set: {train.epochs: 3}                # fixed overrides, kept in the written best preset
    search_only: {data.train_subset: 10000, data.val_size: 2000}   # trials only, not in the preset
    space:                                # sampled in this order
      optim.lr: {type: float, low: 6, high: 20, log: true}
      model.widths: {type: categorical, choices: ["32,64,128", "48,96,192"]}
      optim.muon_lr: {type: float, low: 0.05, high: 0.2, when: {optim.name: sgd}}  # a condition
    objective: val_acc                    # or [val_acc, train_time] for the Pareto front
    budget: {trials: 24, wall_s: 1800}    # either or both
    pruner: {name: median, startup_trials: 4, warmup_epochs: 1}
    #   or {name: successive_halving, min_epochs: 1, reduction_factor: 3} (asynchronous successive halving:
    #   at epochs min_epochs * factor^k a trial continues only in the top 1/factor of those that got there)
    sampler: {name: tpe, seed: 0}         # or random, nsga2, grid (every combination, in random order),
    #   cmaes (CMA-ES over the float/int keys, TPE for categorical and conditional ones; popsize: N optional)
    baseline: true                        # trial 0 = the base values of every space key

No optuna and no torch here: a spec is checked (every key, every bound) before anything trains.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import Config, flatten, load_yaml, make_config, preset_names
from ..errors import ConfigError

TOP_KEYS = ("name", "description", "base", "set", "search_only", "space", "objective", "budget", "pruner",
            "sampler", "baseline")
PARAM_KEYS = {"float": {"type", "low", "high", "log", "step", "when"},
              "int": {"type", "low", "high", "log", "step", "when"},
              "categorical": {"type", "choices", "when"}}
OBJECTIVES = {"val_acc": "maximize", "train_time": "minimize"}  # train_time: seconds of training
PRUNERS = ("median", "successive_halving", "none")
SAMPLERS = ("tpe", "random", "nsga2", "grid", "cmaes")  # grid: every combination once (categorical/int keys)


@dataclass
class Param:
    key: str
    type: str
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: list = field(default_factory=list)
    when: dict = field(default_factory=dict)  # key -> value or list of values: sampled only if it holds


@dataclass
class TuneSpec:
    name: str
    description: str
    base: str
    fixed: dict
    search_only: dict
    space: list[Param]
    objectives: list[str]
    trials: int | None
    wall_s: float | None
    pruner: dict
    sampler: dict
    baseline: bool
    path: Path

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]


def _check_keys(where: str, got, valid) -> None:
    bad = sorted(set(got) - set(valid))
    if bad:
        raise ConfigError(f"{where}: unknown keys {bad}; valid: {', '.join(valid)}")


def _config_key(path: Path, key: str, known: dict) -> str:
    if key not in known:
        near = difflib.get_close_matches(key, list(known), n=3)
        raise ConfigError(f"{path}: space key {key!r} is not a config key"
                          + (f"; did you mean {', '.join(near)}?" if near else "")
                          + " (`cifarlab train --set` takes the same dotted keys)")
    return key


def _param(path: Path, key: str, d, known: dict) -> Param:
    where = f"{path}: space.{key}"
    if not isinstance(d, dict) or d.get("type") not in PARAM_KEYS:
        raise ConfigError(f"{where}: needs type: one of {', '.join(PARAM_KEYS)}")
    _check_keys(where, d, sorted(PARAM_KEYS[d["type"]]))
    p = Param(_config_key(path, key, known), d["type"], d.get("low"), d.get("high"), bool(d.get("log", False)),
              d.get("step"), list(d.get("choices") or []), dict(d.get("when") or {}))
    if p.type == "categorical" and not p.choices:
        raise ConfigError(f"{where}: a categorical parameter needs a non-empty choices list")
    if p.type != "categorical" and (p.low is None or p.high is None or not p.low < p.high):
        raise ConfigError(f"{where}: needs low < high (got low={p.low}, high={p.high})")
    for k in p.when:
        _config_key(path, k, known)
    return p


def _objectives(path: Path, obj) -> list[str]:
    objs = [obj] if isinstance(obj, str) else list(obj or [])
    if not objs or any(o not in OBJECTIVES for o in objs) or len(set(objs)) != len(objs):
        raise ConfigError(f"{path}: objective {obj!r}: one of {', '.join(OBJECTIVES)} or a list of distinct "
                          "ones, e.g. [val_acc, train_time] (validation accuracy only: never test)")
    return objs


def _budget(path: Path, b) -> tuple[int | None, float | None]:
    b = b or {}
    _check_keys(f"{path}: budget", b, ["trials", "wall_s"])
    trials, wall = b.get("trials"), b.get("wall_s")
    if trials is None and wall is None:
        raise ConfigError(f"{path}: budget needs trials, wall_s or both, e.g. budget: {{trials: 24}}")
    if (trials is not None and int(trials) < 1) or (wall is not None and float(wall) <= 0):
        raise ConfigError(f"{path}: budget: trials must be >= 1 and wall_s > 0")
    return (None if trials is None else int(trials)), (None if wall is None else float(wall))


def _choice(path: Path, section: str, d, names, defaults: dict) -> dict:
    d = {**defaults, **(d or {})}
    _check_keys(f"{path}: {section}", d, sorted(defaults))
    if d["name"] not in names:
        raise ConfigError(f"{path}: {section}.name {d['name']!r}; valid: {', '.join(names)}")
    return d


def load_spec(path: Path) -> TuneSpec:
    """Read and check a tune spec; every sampled bound is validated as a config before a trial runs."""
    path = Path(path)
    d = load_yaml(path)
    if not isinstance(d, dict) or not isinstance(d.get("space"), dict) or not d["space"] or "base" not in d:
        raise ConfigError(f"{path}: a tune spec needs 'base' (a preset) and a non-empty 'space' mapping")
    _check_keys(str(path), d, TOP_KEYS)
    base = make_config(str(d["base"]), {**(d.get("set") or {}), **(d.get("search_only") or {})})
    known = flatten(base.to_dict())
    space = [_param(path, str(k), v, known) for k, v in d["space"].items()]
    objectives = _objectives(path, d.get("objective", "val_acc"))
    multi = len(objectives) > 1
    spec = TuneSpec(str(d.get("name", path.stem)), str(d.get("description", "")), str(d["base"]),
                    dict(d.get("set") or {}), dict(d.get("search_only") or {}), space, objectives,
                    *_budget(path, d.get("budget")),
                    _choice(path, "pruner", d.get("pruner"), PRUNERS,
                            {"name": "none" if multi else "median", "startup_trials": 4, "warmup_epochs": 1,
                             "min_epochs": 1, "reduction_factor": 3}),
                    _choice(path, "sampler", d.get("sampler"), SAMPLERS,
                            {"name": "nsga2" if multi else "tpe", "seed": None, "popsize": None}),
                    bool(d.get("baseline", False)), path)
    _check_trial_configs(spec, base)
    if spec.sampler["name"] == "grid":
        grid_space(spec)  # checked now, not when the first worker starts
    _check_cmaes(spec)
    return spec


def _check_cmaes(spec: TuneSpec) -> None:
    """CMA-ES (Optuna's CmaEsSampler) samples the numeric keys that every trial has, as one multivariate
    normal; it optimises one objective only."""
    s, where = spec.sampler, f"{spec.path}: sampler"
    if s["name"] != "cmaes":
        if s["popsize"] is not None:
            raise ConfigError(f"{where}: popsize is a cmaes option (sampler: {{name: cmaes, popsize: 8}})")
        return
    if len(spec.objectives) > 1:
        raise ConfigError(f"{where}: cmaes optimises one objective; for [val_acc, train_time] use nsga2 "
                          "(the default for two objectives) or grid")
    if not any(p.type in ("float", "int") and not p.when for p in spec.space):
        raise ConfigError(f"{where}: cmaes needs a float or int key without a 'when' condition in the space "
                          "(it leaves categorical and conditional keys to TPE); use tpe for this space")
    if s["popsize"] is not None and (not isinstance(s["popsize"], int) or s["popsize"] < 2):
        raise ConfigError(f"{where}: popsize must be an integer >= 2 (got {s['popsize']!r})")


def grid_space(spec: TuneSpec) -> dict:
    """key -> every value, for the grid sampler: categorical keys and int keys (low..high by step), no
    conditions; a ConfigError naming the key otherwise."""
    out = {}
    for p in spec.space:
        if p.when:
            raise ConfigError(f"{spec.path}: space.{p.key}: the grid sampler takes no 'when' conditions")
        if p.type == "categorical":
            out[p.key] = list(p.choices)
        elif p.type == "int" and not p.log:
            out[p.key] = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
        else:
            raise ConfigError(f"{spec.path}: space.{p.key}: the grid sampler needs categorical or linear int "
                              f"keys (got {p.type}{' log' if p.log else ''}); give the values as choices")
    return out


def _check_trial_configs(spec: TuneSpec, base: Config) -> None:
    """Bounds and choices must make valid configs; validation must exist; no early stopping besides
    the pruner (a trial that stops by itself would go on to the test split)."""
    if base.data.val_size <= 0:
        raise ConfigError(f"{spec.path}: data.val_size is 0 in the trials' config; tune decides on validation "
                          "only: set e.g. search_only: {data.val_size: 5000}")
    if base.train.early_stop_patience:
        raise ConfigError(f"{spec.path}: train.early_stop_patience must be 0 in a tune spec (the pruner "
                          "stops trials); set it in 'set'")
    if spec.pruner["name"] != "none" and len(spec.objectives) > 1:
        raise ConfigError(f"{spec.path}: pruner: Optuna cannot prune multi-objective studies; use "
                          "pruner: {name: none} with objective [val_acc, train_time]")
    for p in spec.space:
        for value in (p.choices if p.type == "categorical" else (p.low, p.high)):
            try:
                trial_config(spec, {p.key: value}, search=True)
            except ConfigError as e:
                raise ConfigError(f"{spec.path}: space.{p.key} = {value!r} gives an invalid config: {e}") from None


def trial_config(spec: TuneSpec, params: dict, search: bool = True) -> Config:
    """The config of a trial (search=True: with search_only) or of the written best preset."""
    return make_config(spec.base, {**spec.fixed, **(spec.search_only if search else {}), **params})


def active(p: Param, values: dict) -> bool:
    """Whether p's condition holds for the values known so far (base config, then sampled params)."""
    for key, want in p.when.items():
        allowed = want if isinstance(want, list) else [want]
        if values.get(key) not in allowed:
            return False
    return True


def base_params(spec: TuneSpec) -> dict:
    """The base config's value of every active space key: the hand-tuned baseline, enqueued as a trial."""
    values = flatten(trial_config(spec, {}).to_dict())
    return {p.key: values[p.key] for p in spec.space if active(p, values)}


def base_is_named(spec: TuneSpec) -> bool:
    return spec.base in preset_names()
