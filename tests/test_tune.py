"""`cifarlab tune`: spec checks, a real Optuna study on the synthetic CIFAR (pruning, the baseline trial,
the best preset, resume, the report), and workers sharing one study in SQLite and in a real PostgreSQL
server: the budget is filled exactly, and a worker killed mid-trial has its trial failed, re-queued and
continued from its checkpoint by the restarted worker."""
import json
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cifarlab.config import make_config
from cifarlab.errors import ConfigError
from cifarlab.io import read_jsonl
from cifarlab.tune.report import load_tune_study, report_tune
from cifarlab.tune.run import tune
from cifarlab.tune.spec import load_spec, trial_config

import forkcli
from pgserver import PgServer

SPEC = """
name: {name}
base: c10-mlp
set: {{train.epochs: {epochs}, train.batch_size: 32}}
search_only: {{data.val_size: 100}}
space:
  optim.lr: {{type: float, low: 0.0003, high: 0.01, log: true}}
  model.dropout: {{type: categorical, choices: [0.0, 0.3, 0.5]}}
  optim.weight_decay: {{type: float, low: 0.0, high: 0.001, when: {{model.dropout: [0.0, 0.5]}}}}
objective: {objective}
budget: {{trials: {trials}}}
pruner: {pruner}
sampler: {{seed: 0}}
baseline: true
"""


def write_spec(folder: Path, name="t", epochs=2, trials=6, objective="val_acc",
               pruner="{startup_trials: 2, warmup_epochs: 0}") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, epochs=epochs, trials=trials, objective=objective, pruner=pruner))
    return path


def test_spec_errors_name_the_key_and_the_fix(tmp_path):
    good = write_spec(tmp_path).read_text()
    cases = [("optim.lr:", "optim.lrr:", "'optim.lrr' is not a config key; did you mean optim.lr"),
             ("type: float, low: 0.0003", "type: floaty, low: 0.0003", "needs type: one of float, int, categorical"),
             ("{data.val_size: 100}", "{data.val_size: 0}", "data.val_size is 0"),
             ("objective: val_acc", "objective: test_acc", "never test"),
             ("budget: {trials: 6}", "budget: {}", "budget needs trials, wall_s or both"),
             ("choices: [0.0, 0.3, 0.5]", "choices: [0.0, 7.0]", "model.dropout = 7.0 gives an invalid config"),
             ("sampler: {seed: 0}", "sampler: {name: grid}", "space.optim.lr: the grid sampler needs categorical"),
             ("sampler: {seed: 0}", "sampler: {seed: 0, popsize: 4}", "popsize is a cmaes option"),
             ("sampler: {seed: 0}", "sampler: {name: cmaes, popsize: 1}", "popsize must be an integer >= 2"),
             ("sampler: {seed: 0}", "sampler: {name: cmaes}", "objective: val_acc", "objective: [val_acc, train_time]",
              "pruner: {startup_trials: 2, warmup_epochs: 0}", "pruner: {name: none}",
              "cmaes optimises one objective; .* use nsga2"),
             ("sampler: {seed: 0}", "sampler: {name: cmaes}", "log: true}", "log: true, when: {model.dropout: 0.3}}",
              "cmaes needs a float or int key without a 'when'")]
    for *edits, message in cases:
        text = good
        for old, new in zip(edits[::2], edits[1::2]):
            assert old in text, old
            text = text.replace(old, new, 1)
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_spec(bad)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory, synthetic_root):
    folder = tmp_path_factory.mktemp("tune")
    return tune(write_spec(folder), data_dir=synthetic_root, quiet=True), folder


def test_a_study_prunes_keeps_the_baseline_and_writes_a_preset_of_its_best_trial(study_dir):
    root, _ = study_dir
    study = load_tune_study(root)
    trials = study.get_trials()
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials) == 6 == len(trials)
    assert any(t.state == TrialState.PRUNED for t in trials)
    assert trials[0].user_attrs["baseline"] and trials[0].params == {"optim.lr": 0.001, "model.dropout": 0.3}
    for t in trials:  # the condition: weight decay only sampled with dropout 0.0 or 0.5
        assert ("optim.weight_decay" in t.params) == (t.params["model.dropout"] != 0.3)
        assert list(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
        # the trial's folder has a metrics line for every epoch it reported, the last (stopping) one included
        lines = read_jsonl(root / t.user_attrs["run"] / "metrics.jsonl")
        assert [r["epoch"] for r in lines] == list(t.intermediate_values), t.number
    # trials never touch the test split: no summary, no test predictions in any trial folder
    assert not list(root.glob("trials/*/summary.json")) and not list(root.glob("trials/*/test_predictions.json"))
    best = study.best_trial
    cfg = make_config(str(root / "best.yaml"))
    assert cfg.hash() == trial_config(load_spec(root / "tune.yaml"), best.params, search=False).hash()
    assert cfg.data.val_size == 5000  # search_only is not part of the recipe
    header = f"trial {best.number}: validation top-1 {best.user_attrs['val_acc']:.2f}%"
    assert header in (root / "best.yaml").read_text()


def test_resume_continues_the_study_and_counts_nothing_twice(study_dir, synthetic_root):
    root, folder = study_dir
    tune(write_spec(folder), out=root, data_dir=synthetic_root, quiet=True)  # budget filled: nothing runs
    assert len(load_tune_study(root).get_trials()) == 6
    tune(write_spec(folder, trials=8), out=root, data_dir=synthetic_root, quiet=True)  # a larger budget
    trials = load_tune_study(root).get_trials()
    assert len(trials) == 8 and len({t.user_attrs["run"] for t in trials}) == 8


def test_report_renders_history_importances_and_top_trials(study_dir):
    root, _ = study_dir
    md = report_tune(root)
    assert "| trial | val top-1 % |" in md and (root / "tune.md").is_file()
    for fig in ("history", "importances", "intermediate"):
        assert (root / "figures" / f"{fig}.png").stat().st_size > 1000


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # cmaes' weights for a 1-D space
def test_cmaes_samples_the_numeric_keys_as_one_distribution_and_tpe_the_others(tmp_path, synthetic_root):
    """sampler: {name: cmaes}: after the baseline, every trial's unconditional numeric key comes from
    CMA-ES generations of `popsize` trials (Optuna's CmaEsSampler, its state in each trial); the categorical
    key and the conditional one are still sampled (by TPE) and the condition holds."""
    spec = write_spec(tmp_path, name="cma", epochs=1, trials=5, pruner="{name: none}")
    spec.write_text(spec.read_text().replace("sampler: {seed: 0}", "sampler: {name: cmaes, seed: 0, popsize: 2}"))
    study = load_tune_study(tune(spec, data_dir=synthetic_root, quiet=True))
    trials = study.get_trials()
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    generations = [t.system_attrs.get("cma:generation") for t in trials[1:]]
    assert generations == [0, 0, 1, 1], generations  # 2 told solutions end generation 0
    assert any("cma:optimizer:0" in t.system_attrs for t in trials[3:])  # the updated distribution, stored
    for t in trials:
        assert 0.0003 <= t.params["optim.lr"] <= 0.01 and t.params["model.dropout"] in (0.0, 0.3, 0.5)
        assert ("optim.weight_decay" in t.params) == (t.params["model.dropout"] != 0.3)
    assert len({t.params["optim.lr"] for t in trials}) == 5


GRID = """
name: grid
base: c10-mlp
set: {train.epochs: 1, train.batch_size: 32}
search_only: {data.val_size: 100}
space:
  model.dropout: {type: categorical, choices: [0.0, 0.3]}
  train.epochs: {type: int, low: 1, high: 2}
objective: [val_acc, train_time]
budget: {trials: 10}
sampler: {name: grid, seed: 0}
baseline: true
"""


def test_multi_objective_grid_study_runs_every_combination_once_and_gives_a_pareto_front(tmp_path, synthetic_root):
    spec = tmp_path / "grid.yaml"
    spec.write_text(GRID)
    root = tune(spec, data_dir=synthetic_root, quiet=True)
    study = load_tune_study(root)
    done = sorted((t.params["model.dropout"], t.params["train.epochs"]) for t in study.trials
                  if t.state == TrialState.COMPLETE)
    # the grid, once each, though 10 trials were allowed; the baseline (0.3, 1) is a grid point: not run twice
    assert done == [(0.0, 1), (0.0, 2), (0.3, 1), (0.3, 2)]
    assert len(study.directions) == 2 and study.best_trials
    assert "Pareto" in report_tune(root) and (root / "figures" / "pareto.png").is_file()
    exported = read_jsonl(root / "trials.jsonl")  # what a repository commits instead of the database
    assert [r["number"] for r in exported] == [t.number for t in study.trials]
    assert all(r["values"] == t.values and r["user_attrs"]["config_hash"] == t.user_attrs["config_hash"]
               for r, t in zip(exported, study.trials))
    assert make_config(str(root / "best.yaml")).train.epochs in (1, 2)


# ---------------------------------------------------------------- many workers, one killed

def _worker(spec: Path, root: Path, storage: str | None, data: Path, log: Path):
    """`cifarlab tune SPEC` as its own process (forked from tests/forkcli.py's server: no torch import to
    wait for), one torch thread: the two workers run on disjoint cores."""
    argv = ["tune", str(spec), "--out", str(root), "--data-dir", str(data), "--heartbeat", "1", "--quiet",
            *(["--storage", storage] if storage else [])]
    return forkcli.start(argv, log=log, threads=1)


def _wait_for_running_epoch(storage: str, name: str, proc, timeout: float = 60):
    """A trial of `proc`'s that is running and has reported at least one epoch (a checkpoint exists)."""
    deadline = time.monotonic() + timeout
    storage = optuna.storages.RDBStorage(storage)  # one connection pool for the whole poll
    while time.monotonic() < deadline:
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:  # the study is not created yet
            trials = []
        for t in trials:
            if (t.state == TrialState.RUNNING and t.intermediate_values
                    and t.user_attrs.get("worker", "").endswith(f":{proc.pid}")):
                return t
        time.sleep(0.05)
    raise AssertionError(f"no running trial with a reported epoch within {timeout} s")


def _two_workers_one_killed(tmp_path: Path, storage: str | None, data: Path) -> None:
    """Workers A and B on one study; A is SIGKILLed mid-trial and restarted; the budget is met exactly."""
    spec = write_spec(tmp_path, name="shared", epochs=4, trials=6, pruner="{name: none}")
    root = tmp_path / "shared"
    url = storage or f"sqlite:///{root / 'study.db'}"
    root.mkdir()
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    a, b = (_worker(spec, root, storage, data, log) for log in logs[:2])
    victim = _wait_for_running_epoch(url, "shared", a)
    a.kill()  # SIGKILL: no handler runs, the trial stays RUNNING until its heartbeat is stale
    a.join()
    restarted = _worker(spec, root, storage, data, logs[2])
    for p, log in ((b, logs[1]), (restarted, logs[2])):
        p.join(120)
        assert p.exitcode == 0, log.read_text()
    trials = optuna.load_study(study_name="shared", storage=url).get_trials()
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(counted) == 6, [(t.number, t.state) for t in trials]  # exactly the budget: none lost, none extra
    killed = trials[victim.number]
    assert killed.state == TrialState.FAIL
    retry = [t for t in counted if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].params == killed.params  # re-queued once, same parameters
    assert retry[0].user_attrs["run"] == killed.user_attrs["run"]  # and it continued the killed run's folder
    assert len({t.user_attrs["run"] for t in counted}) == 6  # no run trained twice as two trials
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # A (killed) and another worker took trials
    assert (root / "best.yaml").is_file()


@pytest.fixture(scope="module")
def postgres():
    server = PgServer()
    if not server.available:
        pytest.skip("PostgreSQL is not installed (initdb/pg_ctl not found): apt-get install -y postgresql")
    url = server.start()
    yield url
    server.stop()


def test_workers_started_together_on_an_empty_postgresql_database_all_open_it(postgres):
    """Every worker creates Optuna's tables on an empty database; started at once they race and all but one
    got a duplicate-key error (a red CI run of the two-worker test). Six openers behind a barrier."""
    import threading

    import psycopg

    from cifarlab.tune.run import open_storage

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute("CREATE DATABASE empty_race")
    url = postgres.replace("/postgres?", "/empty_race?")
    barrier, outcomes = threading.Barrier(6), []

    def worker():
        barrier.wait()
        try:
            open_storage(url, heartbeat_s=1).get_all_studies()
            outcomes.append("ok")
        except Exception as e:  # noqa: BLE001 - the assertion below shows which
            outcomes.append(f"{type(e).__name__}: {str(e).splitlines()[0]}")

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert outcomes == ["ok"] * 6, outcomes


def test_two_postgresql_workers_share_a_study_and_survive_a_kill(tmp_path, synthetic_root, postgres):
    _two_workers_one_killed(tmp_path, postgres, synthetic_root)


def test_wall_budget_starts_no_trial_that_cannot_end_in_time():
    import datetime as dt

    import optuna
    from optuna.trial import TrialState

    from cifarlab.tune.run import WallBudget

    now = [0.0]
    wall = WallBudget(100.0, clock=lambda: now[0])
    assert wall.fits()  # nothing known yet: a first trial starts
    start = dt.datetime(2026, 1, 1)
    done = optuna.trial.create_trial(state=TrialState.COMPLETE, value=1.0, params={}, distributions={})
    done.datetime_start, done.datetime_complete = start, start + dt.timedelta(seconds=30)
    pruned = optuna.trial.create_trial(state=TrialState.PRUNED, params={}, distributions={})
    pruned.datetime_start, pruned.datetime_complete = start, start + dt.timedelta(seconds=60)
    wall(None, done), wall(None, pruned)  # a pruned trial's length says nothing about a whole one
    assert wall.longest_s == 30.0
    now[0] = 65.0
    assert wall.fits()  # 35 s left > 30 s
    now[0] = 75.0
    assert not wall.fits()  # 25 s left: a 30-s trial would end after the budget
    assert WallBudget(None).fits()


def test_successive_halving_pruner_from_the_spec(tmp_path):
    import optuna

    from cifarlab.tune.run import _pruner
    from cifarlab.tune.spec import load_spec

    spec = load_spec(write_spec(tmp_path, pruner="{name: successive_halving, min_epochs: 2, reduction_factor: 4}"))
    pruner = _pruner(spec)
    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert (pruner._min_resource, pruner._reduction_factor) == (2, 4)
    assert isinstance(_pruner(load_spec(write_spec(tmp_path, name="m"))), optuna.pruners.MedianPruner)


def test_a_committed_study_reports_from_a_clone_at_another_path(tmp_path):
    """tune.json records the SQLite file by absolute path; a clone elsewhere (CI) reads the study.db
    next to it instead of creating an empty database at the old path."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "studies" / "budget-mid"
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.copy(src / "study.db", moved / "study.db")
    info = json.loads((src / "tune.json").read_text())
    gone = tmp_path / "the-machine-it-ran-on" / "study.db"
    (moved / "tune.json").write_text(json.dumps({**info, "storage": f"sqlite:///{gone}"}))
    done = [t for t in load_tune_study(moved).get_trials() if t.state == TrialState.COMPLETE]
    assert done  # an empty database at the recorded path would have no trials (or no study at all)
    best = max(done, key=lambda t: t.values[0])
    assert f"| {best.number} | {best.values[0]:.2f} |" in report_tune(moved, table_only=True)
    assert not gone.parent.exists()  # nothing was created at the recorded path
