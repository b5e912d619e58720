"""`cifarlab tune SPEC`: one worker of an Optuna study. Start one on each machine (or GPU) with the same
spec and --storage, or one alone with the default SQLite file in the study folder; each takes trials
until the budget is filled, then writes the best configuration as a preset.

Budget: `trials` counts finished trials (complete or pruned) over the whole study and all workers;
`wall_s` is this worker's wall time (no trial starts that the longest complete trial so far says would
not end inside it). Kill safety: every running trial sends a
heartbeat; a worker that stops sending it (killed) has its trial marked failed by the next worker that
looks, and Optuna re-queues the same parameters, which continue the dead run's checkpoint. Failed
trials never count, so nothing is counted twice and nothing is lost.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
import yaml
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import TrialState

from ..config import load_preset, make_config, to_yaml
from ..errors import Interrupted
from ..io import write_json, write_text
from .objective import Objective, OverBudget
from .spec import TuneSpec, base_is_named, base_params, grid_space, load_spec, trial_config

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRY = 2  # a trial killed three times is left failed (something is wrong with it, not the worker)


def default_storage(root: Path) -> str:
    return f"sqlite:///{(root / 'study.db').resolve()}"


def shown_url(url: str) -> str:
    """The storage URL without its password, fit to print and to record in tune.json."""
    head, sep, tail = url.partition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, userpass = head.partition("//")
    return f"{scheme}//{userpass.split(':', 1)[0]}:***@{tail}"


SCHEMA_TRIES = 8  # workers started together on an empty database: each try lets one more of them win


def open_storage(url: str, heartbeat_s: int, tries: int = SCHEMA_TRIES) -> RDBStorage:
    """Optuna's SQL storage with heartbeats; a stale trial is failed and its parameters re-queued.

    On an empty database every worker creates Optuna's tables, and on PostgreSQL or MySQL workers started
    together race: all but one fail with 'already exists' / a duplicate key (optuna/optuna#1092). The
    creation is one transaction, so a loser changed nothing; it tries again after a random wait and then
    finds the winner's tables."""
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}

    def make() -> RDBStorage:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.8; used knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=heartbeat_s, grace_period=3 * heartbeat_s,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))

    for attempt in range(tries - 1):
        try:
            return make()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError) as e:
            if not _schema_race(e):
                raise
            time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))
    return make()


def _schema_race(error: Exception) -> bool:
    text = str(error).lower()
    return "already exists" in text or "duplicate" in text


def _sampler(spec: TuneSpec, shared: bool):
    seed = spec.sampler["seed"]
    if seed is not None and shared:  # workers of one study must not draw the same numbers
        seed = int(seed) + os.getpid()
    if spec.sampler["name"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler["name"] == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if spec.sampler["name"] == "grid":  # shared workers take the untried combinations (Optuna's GridSampler)
        return optuna.samplers.GridSampler(grid_space(spec), seed=seed)
    if spec.sampler["name"] == "cmaes":  # numeric keys every trial has; the rest (categorical, conditional) by TPE
        return optuna.samplers.CmaEsSampler(
            seed=seed, popsize=spec.sampler["popsize"], warn_independent_sampling=False,
            independent_sampler=optuna.samplers.TPESampler(seed=seed, constant_liar=True))
    # constant_liar: running trials count as bad guesses, so concurrent workers spread out
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=min(8, spec.trials or 8))


def _pruner(spec: TuneSpec):
    if spec.pruner["name"] == "none":
        return optuna.pruners.NopPruner()
    if spec.pruner["name"] == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=int(spec.pruner["min_epochs"]),
                                                      reduction_factor=int(spec.pruner["reduction_factor"]))
    return optuna.pruners.MedianPruner(n_startup_trials=int(spec.pruner["startup_trials"]),
                                       n_warmup_steps=int(spec.pruner["warmup_epochs"]))


def open_study(spec: TuneSpec, storage, shared: bool = False) -> optuna.Study:
    """Create the study or join it (load_if_exists: resuming and other workers continue it)."""
    study = optuna.create_study(storage=storage, study_name=spec.name, directions=spec.directions,
                                sampler=_sampler(spec, shared), pruner=_pruner(spec), load_if_exists=True)
    if spec.baseline and not _in_grid(spec, base_params(spec)) and not study.get_trials(deepcopy=False):
        study.enqueue_trial(base_params(spec), user_attrs={"baseline": True}, skip_if_exists=True)
    return study


def _in_grid(spec: TuneSpec, params: dict) -> bool:
    """A grid runs a combination of its own anyway: an enqueued copy would run twice (GridSampler counts
    only the points it drew itself)."""
    if spec.sampler["name"] != "grid":
        return False
    grid = grid_space(spec)
    return all(params.get(k) in values for k, values in grid.items())


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False)
    return (sum(t.state in COUNTED for t in trials), sum(t.state == TrialState.RUNNING for t in trials))


def _over_budget(study: optuna.Study, n: int | None):
    """trial -> True when n counted-or-running trials were ahead of it (two workers asked at once)."""
    def check(trial) -> bool:
        ahead = [t for t in study.get_trials(deepcopy=False) if t.number < trial.number
                 and t.state in (*COUNTED, TrialState.RUNNING)]
        return n is not None and len(ahead) >= n
    return check


def _say(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, flush=True)


def _trial_line(quiet: bool):
    def callback(study: optuna.Study, t) -> None:
        params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        val = t.user_attrs.get("val_acc")
        what = {TrialState.COMPLETE: f"val {val:.2f}%" if val is not None else "complete",
                TrialState.PRUNED: f"pruned after epoch {t.last_step}"}.get(t.state, t.state.name.lower())
        _say(quiet, f"[{study.study_name}] trial {t.number}: {what} ({params})")
    return callback


class WallBudget:
    """This worker's wall budget: no trial starts that the longest complete trial so far says cannot end
    inside it (a worker that knows no trial yet starts one)."""

    def __init__(self, wall_s: float | None, clock=time.monotonic):
        self.wall_s, self.clock, self.t0, self.longest_s = wall_s, clock, clock(), 0.0

    def left_s(self) -> float:
        return float("inf") if self.wall_s is None else self.wall_s - (self.clock() - self.t0)

    def fits(self) -> bool:
        return self.left_s() > self.longest_s

    def __call__(self, study, trial) -> None:  # an Optuna callback: learn how long a whole trial takes
        if trial.state == TrialState.COMPLETE and trial.duration is not None:
            self.longest_s = max(self.longest_s, trial.duration.total_seconds())


def work(study: optuna.Study, objective: Objective, n: int | None, wall_s: float | None, heartbeat_s: int,
         quiet: bool = False) -> None:
    """Take trials until `n` are counted (complete or pruned) in the study, or the wall budget has no room
    for another trial. With the budget all taken but trials still running elsewhere, wait: a killed
    worker's trial turns stale, is failed and re-queued, and this worker runs it."""
    wall = WallBudget(wall_s)
    callbacks = [_trial_line(quiet), wall]
    while wall.fits():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        done, running = _counts(study)
        if n is not None and done >= n:
            return
        if isinstance(study.sampler, optuna.samplers.GridSampler) and study.sampler.is_exhausted(study):
            _say(quiet, f"[{study.study_name}] every combination of the grid is done ({done} trials)")
            return
        if n is not None and done + running >= n:
            time.sleep(heartbeat_s)
            continue
        try:
            study.optimize(objective, n_trials=1, catch=(OverBudget,), callbacks=callbacks)
        except Interrupted as e:
            _requeue(study, objective.current)  # Ctrl-C / SIGTERM: the next `tune` continues this trial
            raise Interrupted(f"{str(e).split(';')[0]}; trial {objective.current} is re-queued: run the same "
                              "`cifarlab tune` command to continue the study") from None
    _say(quiet, f"[{study.study_name}] wall budget of {wall_s:.0f} s: {max(wall.left_s(), 0):.0f} s left, the "
                f"longest trial took {wall.longest_s:.0f} s; no new trial starts")


def _requeue(study: optuna.Study, number: int | None) -> None:
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is not None and trial.state == TrialState.FAIL:
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)


def tune(spec_path: Path, out: Path | None = None, storage: str | None = None, data_dir=None,
         heartbeat_s: int = 10, test_best: bool = False, quiet: bool = False) -> Path:
    """Run one worker of the study in `spec_path` (see the module docstring); returns the study folder."""
    spec = load_spec(spec_path)
    root = Path(out) if out else spec_path.with_suffix("")
    root.mkdir(parents=True, exist_ok=True)
    url = storage or default_storage(root)
    write_text(root / "tune.yaml", spec_path.read_text())  # so `cifarlab report DIR` finds the spec
    write_json(root / "tune.json", {"spec": str(spec_path), "study": spec.name, "storage": shown_url(url)})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(spec, open_storage(url, heartbeat_s), shared=storage is not None)
    _say(quiet, f"[{spec.name}] worker {os.getpid()} on {shown_url(url)}; folder {root}")
    objective = Objective(spec, root, data_dir, over_budget=_over_budget(study, spec.trials))
    work(study, objective, spec.trials, spec.wall_s, heartbeat_s, quiet)
    best = write_best_preset(spec, study, root, shown_url(url))
    if best is None:
        _say(quiet, f"[{spec.name}] no complete trial yet: no best preset written")
    elif test_best:
        _say(quiet, f"[{spec.name}] --test-best: training {best} once and evaluating it on the test split")
        from ..engine import train

        result = train(load_preset(str(best)), out=root / "test-best", data_dir=data_dir, overwrite=True, quiet=quiet)
        _say(quiet, f"[{spec.name}] best preset: test top-1 {result.summary['test_acc']:.2f}% "
                    f"(val {result.summary['val_acc']}) -> {root / 'test-best'}")
    return root


def best_trial(study: optuna.Study):
    """Single objective: the best trial; multi-objective: the most accurate trial of the Pareto front."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    if len(study.directions) == 1:
        return study.best_trial
    return max(study.best_trials, key=lambda t: t.values[0])


def write_best_preset(spec: TuneSpec, study: optuna.Study, root: Path, url: str) -> Path | None:
    """root/best.yaml: the base preset plus `set` and the best trial's parameters (search_only is left
    out: it shaped the search, not the recipe), with a header naming the study, trial and score."""
    t = best_trial(study)
    if t is None:
        return None
    cfg = trial_config(spec, t.params, search=False)
    body = _preset_body(spec, t.params, cfg)
    counted = sum(x.state in COUNTED for x in study.get_trials(deepcopy=False))
    pruned = sum(x.state == TrialState.PRUNED for x in study.get_trials(deepcopy=False))
    header = [f"# Generated by `cifarlab tune {spec.path}` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.",
              f"# study: {spec.name} ({url}); {counted} trials, {pruned} pruned",
              f"# trial {t.number}: validation top-1 {t.user_attrs['val_acc']:.2f}% in "
              f"{t.user_attrs['train_time']:.1f} s of training"
              + (f" with {', '.join(f'{k}={v}' for k, v in spec.search_only.items())}" if spec.search_only else ""),
              f"# parameters: {', '.join(f'{k}={v}' for k, v in t.params.items())}",
              "# test split: not used by the search; `cifarlab tune SPEC --test-best` (or `cifarlab train "
              "--preset THIS_FILE`) measures it once", ""]
    path = root / "best.yaml"
    write_text(path, "\n".join(header) + yaml.safe_dump(body, sort_keys=False))
    if make_config(str(path)).hash() != cfg.hash():  # never publish a preset that is not the trial's recipe
        raise RuntimeError(f"{path}: the written preset does not reproduce trial {t.number}'s config")
    return path


def _preset_body(spec: TuneSpec, params: dict, cfg) -> dict:
    desc = f"tuned by cifarlab tune: {spec.name}"
    if not base_is_named(spec):  # a base given as a path: write the whole config
        return {**yaml.safe_load(to_yaml(cfg)), "name": "best", "description": desc}
    body: dict = {"description": desc, "base": spec.base}
    for key, value in {**spec.fixed, **params}.items():
        section, _, name = key.partition(".")
        body.setdefault(section, {})[name] = value
    return body

