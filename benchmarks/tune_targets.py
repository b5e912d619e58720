"""Issue 20's targets for `cifarlab tune`, measured on this machine; one record per part is appended to
benchmarks/results/tune_targets.jsonl and each study's trials are exported beside it.

  search:  a 24-trial search over 4 keys of c100-sprint on a 10k-image training subset (validation: 5k
           held out of the training set, scored without test-time augmentation), asynchronous successive halving
           (--pruner; median before), the preset's own values enqueued as trial 0.
           Targets: >= 30% of trials pruned; best validation >= trial 0 (the hand-tuned preset on the same
           subset); finished within the stated wall budget (--wall-s).
  workers: the same kind of search without pruning (so every trial costs the same), 1 thread per worker:
           one worker alone on core 0, then two workers on one PostgreSQL study on cores 0 and 1 (the
           throughput), then the same pair again with the second worker killed (SIGKILL) in its second
           trial and restarted at once. Targets: the pair's throughput (trials per second) >= 1.8x one
           worker's; 0 lost, 0 duplicated trials; the killed trial failed, re-queued and finished.

Full size (about 25 min on 2 cores; nothing else should run):
    python benchmarks/tune_targets.py
Tiny (a check that the script works, ~3 min):
    python benchmarks/tune_targets.py --images 2000 --val 1000 --trials 6 --pair-trials 3 --epochs 1 \
        --tag tiny --results /tmp/tune-tiny

PostgreSQL: a throwaway server started like the test suite's (tests/pgserver.py); needs Debian's package.
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from cifarlab.io import append_jsonl, write_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"  # --results replaces it (a tiny check need not be recorded)
SPACE = {  # the 4 keys of the search; the preset's values lie inside every range
    "optim.lr": "{type: float, low: 4.0, high: 30.0, log: true}",
    "optim.weight_decay": "{type: float, low: 0.005, high: 0.05, log: true}",
    "optim.label_smoothing": "{type: float, low: 0.0, high: 0.3}",
    "train.batch_size": "{type: categorical, choices: [128, 256, 512]}",
}


def write_spec(path: Path, name: str, a, trials: int, prune: bool, keys=tuple(SPACE)) -> Path:
    space = "\n".join(f"  {k}: {SPACE[k]}" for k in keys)
    pruner = {"median": "{name: median, startup_trials: 4, warmup_epochs: 0}",
              "successive_halving": "{name: successive_halving, min_epochs: 1, reduction_factor: 3}"}[a.pruner] \
        if prune else "{name: none}"
    path.write_text(f"name: {name}\ndescription: issue 20 target measurement ({a.tag})\nbase: c100-sprint\n"
                    f"set: {{train.epochs: {a.epochs}}}\n"
                    f"search_only: {{data.train_subset: {a.images}, data.val_size: {a.val}, train.tta: {a.val_tta}}}\n"
                    f"space:\n{space}\nobjective: val_acc\nbudget: {{trials: {trials}, wall_s: {a.wall_s}}}\n"
                    f"pruner: {pruner}\nsampler: {{name: tpe, seed: 0}}\nbaseline: {str(prune).lower()}\n")
    return path


def worker(spec: Path, out: Path, a, core: int | None = None, storage: str | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "cifarlab", "tune", str(spec), "--out", str(out), "--heartbeat", "5",
           *(["--storage", storage] if storage else []), *(["--data-dir", a.data_dir] if a.data_dir else [])]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if core is not None:  # one thread on one core: torch reads OMP_NUM_THREADS at start-up
        cmd = ["taskset", "-c", str(core), *cmd]
        env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(cmd, env=env)


def machine() -> dict:
    import torch

    from cifarlab.runlog import git_commit

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count(),
            "torch": torch.__version__, "optuna": optuna.__version__, "git_commit": git_commit(),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def export(study: optuna.Study, path: Path) -> list:
    trials = study.get_trials()
    write_jsonl(path, [{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
                        "epochs": dict(t.intermediate_values), "user_attrs": t.user_attrs,
                        "retry_of": t.system_attrs.get("failed_trial")} for t in trials])
    return trials


def counts(trials: list) -> dict:
    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    runs = [t.user_attrs.get("run") for t in counted]
    return {"counted": len(counted), "pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "failed": sum(t.state == TrialState.FAIL for t in trials),
            "duplicated": len(runs) - len(set(runs)), "retries": sum("failed_trial" in t.system_attrs for t in trials)}


def run_search(a, work: Path) -> dict:
    """Target 1: pruning rate, best vs the enqueued preset values, wall time, on both cores."""
    spec = write_spec(work / "search.yaml", f"sprint-search-{a.tag}", a, a.trials, prune=True)
    t0 = time.perf_counter()
    if worker(spec, work / "search", a).wait() != 0:
        raise SystemExit("search worker failed")
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name=f"sprint-search-{a.tag}", storage=f"sqlite:///{work / 'search' / 'study.db'}")
    trials = export(study, RESULTS / f"tune_search_{a.tag}_trials.jsonl")
    c, best, base = counts(trials), study.best_trial, trials[0]
    return {"part": "search", **c, "pruned_frac": round(c["pruned"] / max(c["counted"], 1), 3),
            "best_trial": best.number, "best_val": best.value, "best_params": best.params,
            "preset_val": base.value if base.state == TrialState.COMPLETE else None, "wall_s": round(wall, 1),
            "wall_budget_s": a.wall_s, "targets_met": {"pruned>=30%": c["pruned"] >= 0.3 * c["counted"],
                                                       "best>=preset": best.value >= (base.value or 0),
                                                       "within_wall": wall <= a.wall_s}}


def run_solo(a, work: Path) -> float:
    """One worker, one thread on core 0: the throughput the pair is compared with (seconds for the trials)."""
    solo = write_spec(work / "solo.yaml", f"sprint-solo-{a.tag}", a, a.pair_trials, prune=False)
    t0 = time.perf_counter()
    if worker(solo, work / "solo", a, core=0).wait() != 0:
        raise SystemExit("solo worker failed")
    return time.perf_counter() - t0


def run_pair(a, work: Path, url: str, solo_s: float, kill: bool) -> dict:
    """Two workers (cores 0 and 1, one thread each) on one PostgreSQL study of 2x the solo trials; with
    kill, the second is SIGKILLed in its second trial and restarted at once."""
    name = f"sprint-pair{'-kill' if kill else ''}-{a.tag}"
    pair = write_spec(work / f"{name}.yaml", name, a, 2 * a.pair_trials, prune=False)
    storage = optuna.storages.RDBStorage(url)
    t0 = time.perf_counter()
    w0, w1 = worker(pair, work / name, a, 0, url), worker(pair, work / name, a, 1, url)
    killed = None
    if kill:
        killed = _kill_after_first_trial(storage, name, w1)
        w1 = worker(pair, work / name, a, 1, url)
    codes = [w0.wait(), w1.wait()]
    pair_s = time.perf_counter() - t0
    trials = export(optuna.load_study(study_name=name, storage=storage), RESULTS / f"tune_{name}_trials.jsonl")
    c = counts(trials)
    ratio = (c["counted"] / pair_s) / (a.pair_trials / solo_s)
    met = {"0 lost": c["counted"] == 2 * a.pair_trials, "0 duplicated": c["duplicated"] == 0}
    met.update({"killed+retried": c["retries"] >= 1} if kill else {"ratio>=1.8": ratio >= 1.8})
    return {"part": "workers+kill" if kill else "workers", "exit_codes": codes, "solo_trials": a.pair_trials,
            "solo_s": round(solo_s, 1), "pair_s": round(pair_s, 1), **c, "killed_trial": killed,
            "throughput_ratio": round(ratio, 3), "lost": 2 * a.pair_trials - c["counted"], "targets_met": met}


def _kill_after_first_trial(storage, name: str, proc: subprocess.Popen) -> int:
    """SIGKILL `proc` a second into its second trial; returns that trial's number."""
    while True:
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
        except KeyError:
            continue
        mine = [t for t in trials if t.user_attrs.get("worker", "").endswith(f":{proc.pid}")]
        running = [t for t in mine if t.state == TrialState.RUNNING]
        if running and len(mine) >= 2:
            time.sleep(1.0)  # into the trial's training
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return running[0].number


def main() -> None:
    global RESULTS
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10000, help="training subset (data.train_subset)")
    p.add_argument("--val", type=int, default=5000, help="validation images held out of the training set")
    p.add_argument("--epochs", type=int, default=3, help="train.epochs (c100-sprint's own)")
    p.add_argument("--trials", type=int, default=24, help="search trials")
    p.add_argument("--pair-trials", type=int, default=6, help="trials of the single worker (the pair runs 2x)")
    p.add_argument("--wall-s", type=float, default=1500, help="the search's stated wall budget")
    p.add_argument("--pruner", choices=["successive_halving", "median"], default="successive_halving")
    p.add_argument("--val-tta", type=int, default=0, help="test-time augmentation of the trials' validation "
                   "scores (the written preset keeps its own)")
    p.add_argument("--parts", default="search,workers")
    p.add_argument("--tag", default="full")
    p.add_argument("--data-dir")
    p.add_argument("--work", default="runs/tune-targets", help="study folders (not committed)")
    p.add_argument("--results", default=str(RESULTS), help="where the records and trial exports go")
    a = p.parse_args()
    RESULTS = Path(a.results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    work = Path(a.work) / a.tag
    work.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/tune_targets.py " + " ".join(sys.argv[1:])
    base = {"kind": "tune_targets", "tag": a.tag, "command": command, **machine(),
            "setup": {"images": a.images, "val": a.val, "epochs": a.epochs, "keys": list(SPACE), "pruner": a.pruner,
                      "val_tta": a.val_tta}}
    if "search" in a.parts:
        rec = {**base, **run_search(a, work)}
        append_jsonl(RESULTS / "tune_targets.jsonl", rec)
        print(rec, flush=True)
    if "workers" in a.parts:
        from pgserver import PgServer

        server = PgServer()
        try:
            url, solo_s = server.start(), run_solo(a, work)
            for kill in (False, True):
                rec = {**base, **run_pair(a, work, url, solo_s, kill)}
                append_jsonl(RESULTS / "tune_targets.jsonl", rec)
                print(rec, flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
