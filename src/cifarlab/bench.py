"""Time to accuracy: train a preset's fixed schedule on every training image and time it like the
CIFAR speed records do.

Each seed trains with no validation hold-out, no early stopping and no selection (the last weights are
the result) and is evaluated once on the test split, with and without test-time augmentation.
The clock (`clock_s`) is the records' clock: training + data-dependent init (whitening) + the final
evaluation. Process start (interpreter + imports), data loading and compile warm-up are measured
separately, and so is the whole run's wall time. Other processes' CPU use during the run is recorded
(`other_cpu_frac`), because a timing taken on a busy machine is not a timing of the recipe.
"""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

from .config import Config
from .io import append_jsonl



def default_record(name: str) -> Path | None:
    """benchmarks/results/NAME of the source checkout cifarlab runs from, or None for an installed
    package (the CLI then prints only; --record FILE keeps the records)."""
    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    return results / name if results.is_dir() else None


def timing_conditions() -> dict:
    """How this process was timed, as record fields: its nice value and scheduling policy, and how many
    other processes were paused for it (`benchmarks/quiet.sh` sets CIFARLAB_OTHERS_PAUSED)."""
    policies = {getattr(os, n): n for n in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
                if hasattr(os, n)}
    try:
        nice, policy = os.getpriority(os.PRIO_PROCESS, 0), policies.get(os.sched_getscheduler(0), "other")
    except (AttributeError, OSError):
        nice, policy = None, None
    paused = os.environ.get("CIFARLAB_OTHERS_PAUSED", "")
    return {"nice": nice, "sched_policy": policy, "others_paused": int(paused) if paused.isdigit() else 0}


def bench_config(cfg: Config, seed: int) -> Config:
    """The preset as a fixed-schedule benchmark: all 50,000 training images, last weights, seed `seed`."""
    return replace(cfg, data=replace(cfg.data, val_size=0, train_subset=0, test_subset=0),
                   train=replace(cfg.train, seed=seed, early_stop_patience=0))


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc), i.e. interpreter start + imports so far."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        return uptime_s - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


class CpuShare:
    """Fraction of the machine's CPU time used by *other* processes between start() and stop()."""

    def __init__(self):
        self.start_busy = self.start_own = self.start_wall = None

    @staticmethod
    def _busy_jiffies() -> int | None:
        try:
            with open("/proc/stat") as f:
                v = [int(x) for x in f.readline().split()[1:]]
            return sum(v) - v[3] - v[4]  # all but idle and iowait
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _own_jiffies() -> int:
        t = os.times()
        return round((t.user + t.system) * os.sysconf("SC_CLK_TCK"))

    def start(self) -> "CpuShare":
        self.start_busy, self.start_own, self.start_wall = self._busy_jiffies(), self._own_jiffies(), \
            time.monotonic()
        return self

    def stop(self) -> float | None:
        busy = self._busy_jiffies()
        if busy is None or self.start_busy is None:
            return None
        wall = time.monotonic() - self.start_wall
        other = (busy - self.start_busy) - (self._own_jiffies() - self.start_own)
        capacity = wall * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)
        return round(max(0.0, other / max(capacity, 1e-9)), 3)

    def fields(self) -> dict:
        """The record fields of a timing: other processes' CPU share, priority and pausing."""
        return {"other_cpu_frac": self.stop(), **timing_conditions()}


def run_one(cfg: Config, seed: int, data_dir=None, quiet: bool = True, out: Path | None = None) -> dict:
    """Train and time one seed (keeping its run folder in `out` if given); returns the record."""
    from .engine import train

    share = CpuShare().start()
    t0 = time.perf_counter()
    result = train(bench_config(cfg, seed), out=out, data_dir=data_dir, quiet=quiet, overwrite=True)
    wall_s = time.perf_counter() - t0
    s = result.summary
    t = s["timing"]
    return {
        "kind": "time_to_accuracy", "preset": cfg.name, "dataset": cfg.data.dataset, "model": cfg.model.name,
        "config_hash": s["config_hash"], "recipe_hash": bench_config(cfg, 0).hash(), "seed": seed,
        "epochs": cfg.train.epochs,
        "batch_size": cfg.train.batch_size, "n_train": s["n_train"], "tta": cfg.train.tta,
        "test_acc": s["test_acc"], "test_acc_no_tta": s["test_acc_no_tta"],
        "clock_s": round(t["init_s"] + t["train_s"] + t["eval_s"], 2),
        "train_s": round(t["train_s"], 2), "init_s": round(t["init_s"], 3), "eval_s": round(t["eval_s"], 2),
        "data_s": round(t["data_s"], 3), "compile_s": round(t.get("compile_s", 0.0), 2),
        "wall_s": round(wall_s, 2), **share.fields(),
        **{k: s[k] for k in ("device", "hardware", "precision", "eval_precision", "torch", "python", "date",
                             "git_commit") if k in s},
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def run_bench(cfg: Config, seeds: list[int], data_dir=None, record: Path | None = None,
              command: str = "", log=print, keep: Path | None = None) -> list[dict]:
    """Run every seed, append each record to `record` (JSONL) as it finishes, print a summary.
    keep: a folder for each seed's run folder (checkpoint, metrics); writing it is outside the clock."""
    started = process_age_s()
    records = []
    for seed in seeds:
        rec = run_one(cfg, seed, data_dir, out=None if keep is None else Path(keep) / f"{cfg.name}-s{seed}")
        rec["process_start_s"] = round(started, 2) if started is not None and not records else None
        rec["command"] = command
        records.append(rec)
        if record is not None:
            append_jsonl(record, rec)
        log(f"{cfg.name} seed {seed}: test {rec['test_acc']:.2f}% (no TTA {rec['test_acc_no_tta']:.2f}%) "
            f"in {rec['clock_s']:.1f}s [train {rec['train_s']:.1f} + init {rec['init_s']:.2f} + eval "
            f"{rec['eval_s']:.1f}; data {rec['data_s']:.1f}; wall {rec['wall_s']:.1f}; other CPU "
            f"{rec['other_cpu_frac']}]")
    if len(records) > 1:
        acc, clock = mean_std([r["test_acc"] for r in records]), mean_std([r["clock_s"] for r in records])
        log(f"{cfg.name}: {acc[0]:.2f} ± {acc[1]:.2f}% in {clock[0]:.1f} ± {clock[1]:.1f}s "
            f"(n={len(records)}, {records[0].get('hardware', '?')})")
    return records


def run_budget_bench(dataset: str, budget_s: float, seeds: list[int], data_dir=None,
                     record: Path | None = None, command: str = "", log=print,
                     keep: Path | None = None, table: Path | None = None) -> list[dict]:
    """`cifarlab bench --budget`: per seed, a `train --budget` run on every training image, its clock
    started before the data is read; one record per seed with the plan, the re-plans, the wall time
    against the budget and the hardware class. `table`: another recipe table than the committed one."""
    from .budget import TABLE, fmt_duration, train_within

    records = []
    for seed in seeds:
        share = CpuShare().start()
        t0 = time.perf_counter()
        out = None if keep is None else Path(keep) / f"budget-{fmt_duration(budget_s)}-s{seed}"
        result = train_within(dataset, budget_s, out=out, data_dir=data_dir, seed=seed, quiet=True,
                              overwrite=True, t_start=t0, table=table or TABLE)
        s, b = result.summary, result.summary["budget"]
        rec = {"kind": "budget", "dataset": dataset, "budget_s": budget_s, "seed": seed, "recipe": b["recipe"],
               "tta": b["tta"], "batch_size": b["batch_size"], "n_train": s["n_train"],
               "planned_epochs": b["planned_epochs"], "planned_steps": b["planned_steps"],
               "steps_run": b["steps_run"], "replans": b["replans"], "expected_val_acc": b["expected_val_acc"],
               "test_acc": s["test_acc"], "test_acc_no_tta": s["test_acc_no_tta"], "wall_s": b["wall_s"],
               "within_5pct": b["wall_s"] <= 1.05 * budget_s, "calibrated_img_s": b["train_img_s"],
               "images_per_s": round(s["images_per_s"], 1), "train_s": round(s["timing"]["train_s"], 2),
               "eval_s": round(s["timing"].get("eval_s", 0.0), 2), "config_hash": s["config_hash"],
               **share.fields(), **b["hw"],
               **{k: s[k] for k in ("precision", "torch", "python", "date", "git_commit") if k in s},
               "command": command}
        records.append(rec)
        if record is not None:
            append_jsonl(record, rec)
        log(f"budget {fmt_duration(budget_s)} seed {seed}: {rec['recipe']} {rec['steps_run']} steps, test "
            f"{rec['test_acc']:.2f}% (no TTA {rec['test_acc_no_tta']:.2f}%) in {rec['wall_s']:.1f} s "
            f"({rec['wall_s'] / budget_s:.0%} of the budget; expected {rec['expected_val_acc']:.1f}%; other CPU "
            f"{rec['other_cpu_frac']})")
    return records
