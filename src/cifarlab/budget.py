"""--budget: the most accurate model this machine can train in a stated wall time.

A plan is made from two things: the machine's measured throughput (a few seconds of real training steps
on the real data, `calibrate`) and the committed recipe table (`budget_table.json`: for each recipe, its
validation accuracy after E epochs, chosen on the validation hold-out, and its throughput per hardware
class). For every recipe and test-time-augmentation level the planner sizes the schedule that fits the
time left after calibration and the final evaluation, reads the accuracy that schedule is expected to
reach, and picks the best. During the run a `Replanner` re-sizes the remaining schedule from the
throughput actually achieved, so a machine that slows down still finishes on time.

    plan = make_plan(cfg_dataset, budget_s, rates, n_train, n_test)   # see plan_for_run()
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .config import Config, make_config
from .errors import ConfigError
from .hooks import Hook

TABLE = Path(__file__).with_name("budget_table.json")
VIEWS = {0: 1, 1: 2, 2: 6}  # forward passes per test image at each test-time-augmentation level
MARGIN_FRAC = 0.03  # of the budget, kept free for what the plan cannot see (summary, figures, jitter)
MARGIN_S = 2.0
MIN_EPOCHS_FRAC = 0.5  # a recipe is considered down to this fraction of its shortest measured schedule
CALIBRATE_S = 2.0  # seconds of timed steps per calibrated recipe (after one warm-up step), at most
CALIBRATE_FRAC = 0.01  # ... and at most this fraction of the budget (still at least two steps)


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '5m', '1h30m', '1.5h'; a ConfigError naming the value otherwise."""
    s = str(text).strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?:in)?)?(?:(\d+(?:\.\d+)?)s?)?", s)
    if not s or parts is None or not any(parts.groups()):
        raise ConfigError(f"--budget {text!r}: give a duration such as 90s, 5m, 1h30m or 2h")
    h, m, sec = (float(g) if g else 0.0 for g in parts.groups())
    total = h * 3600 + m * 60 + sec
    if total < 30:
        raise ConfigError(f"--budget {text!r}: at least 30 s (calibration and evaluation alone take seconds)")
    return total


@dataclass(frozen=True)
class Recipe:
    """One row of the table: a preset trained for a variable number of epochs."""
    preset: str
    dataset: str
    batch_size: int
    curve: tuple[tuple[float, float, float], ...]  # (epochs, val top-1 with the preset's TTA, without), sorted
    throughput: dict = field(default_factory=dict)  # hw_class -> training images/s measured there
    tta: int = 2  # the preset's test-time augmentation level (what curve[.][1] used)

    def expected(self, epochs: float, tta: bool) -> float:
        """Validation top-1 expected after `epochs` (piecewise linear in log epochs; below the shortest
        measured schedule the first segment's slope continues; above the longest, flat)."""
        pts = [(math.log(e), a if tta else b) for e, a, b in self.curve]
        x = math.log(max(epochs, 1e-6))
        if len(pts) == 1 or x >= pts[-1][0]:
            return pts[-1][1] if x >= pts[-1][0] else pts[0][1]
        i = max(1, next((k for k, (px, _) in enumerate(pts) if px >= x), len(pts) - 1))
        (x0, y0), (x1, y1) = pts[i - 1], pts[i]
        return y0 + (y1 - y0) * (x - x0) / (x1 - x0)

    @property
    def max_epochs(self) -> float:
        return self.curve[-1][0]

    @property
    def min_epochs(self) -> float:
        """Shortest schedule considered: below the first point only where a slope is known."""
        return self.curve[0][0] * (MIN_EPOCHS_FRAC if len(self.curve) > 1 else 1.0)


def load_table(dataset: str, path: Path = TABLE) -> list[Recipe]:
    """The recipes for `dataset`, smallest network first; a ConfigError when there are none."""
    table = json.loads(path.read_text())
    recipes = [Recipe(r["preset"], r["dataset"], r["batch_size"],
                      tuple(tuple(p) for p in sorted(r["curve"])), r.get("throughput", {}), r.get("tta", 2))
               for r in table["recipes"] if r["dataset"] == dataset]
    if not recipes:
        have = sorted({r["dataset"] for r in table["recipes"]})
        raise ConfigError(f"--budget has no recipes for {dataset} yet ({path.name} covers {', '.join(have)}); "
                          f"train a named preset instead (cifarlab presets)")
    return recipes


@dataclass(frozen=True)
class Rate:
    train_img_s: float  # training images per second (augment + forward + backward + optimizer)
    eval_img_s: float  # forward passes per second in evaluation
    measured: bool  # False: scaled from a measured recipe by the table's ratio for this class


@dataclass(frozen=True)
class Option:
    recipe: Recipe
    tta: int
    epochs: float
    train_s: float
    eval_s: float
    expected: float
    rate: Rate


@dataclass(frozen=True)
class Plan:
    budget_s: float
    chosen: Option
    options: tuple[Option, ...]  # every feasible (recipe, tta), best first
    steps: int  # optimizer steps of the planned schedule
    epochs: int  # epochs the loop runs (the last one may end early at `steps`)

    def config(self, seed: int = 0, overrides: dict | None = None) -> Config:
        """The chosen recipe as a fixed-schedule config (all training images, no validation hold-out)."""
        cfg = make_config(self.chosen.recipe.preset, {
            "data.val_size": 0, "data.train_subset": 0, "train.epochs": self.epochs, "train.max_steps": self.steps,
            "train.tta": self.chosen.tta, "train.seed": seed, "train.early_stop_patience": 0,
            "train.eval_precision": "train", **(overrides or {})})
        return replace(cfg, name=f"budget-{fmt_duration(self.budget_s)}")

    def describe(self) -> str:
        c = self.chosen
        lines = [f"budget {fmt_duration(self.budget_s)}: {c.recipe.preset} for {c.epochs:.2f} epochs "
                 f"({self.steps} steps of {c.recipe.batch_size}), test-time augmentation {c.tta}; "
                 f"expected top-1 about {c.expected:.1f}% (validation curve, budget_table.json)",
                 f"  {'recipe':<12} {'img/s':>7} {'epochs':>7} {'train s':>8} {'eval s':>7} {'TTA':>4} {'expected':>9}"]
        for o in self.options[:6]:
            mark = "" if o.rate.measured else " (scaled)"
            lines.append(f"  {o.recipe.preset:<12} {o.rate.train_img_s:7.0f} {o.epochs:7.2f} {o.train_s:8.0f} "
                         f"{o.eval_s:7.1f} {o.tta:>4} {o.expected:8.1f}%{mark}")
        return "\n".join(lines)


def fmt_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return "".join(f"{v}{u}" for v, u in ((h, "h"), (m, "m"), (s, "s")) if v) or "0s"


def margin_s(budget_s: float) -> float:
    return MARGIN_FRAC * budget_s + MARGIN_S


def options(recipes: list[Recipe], rates: dict[str, Rate], time_left_s: float, budget_s: float,
            n_train: int, n_test: int) -> list[Option]:
    """Every (recipe, TTA level) that fits in `time_left_s`, best expected accuracy first."""
    found = []
    for r in recipes:
        rate = rates.get(r.preset)
        if rate is None:
            continue
        for tta in sorted({0, r.tta}):
            eval_s = n_test * VIEWS[tta] / rate.eval_img_s
            train_s = time_left_s - eval_s - margin_s(budget_s)
            epochs = min(train_s * rate.train_img_s / n_train, r.max_epochs)
            if epochs < r.min_epochs:
                continue
            found.append(Option(r, tta, epochs, epochs * n_train / rate.train_img_s, eval_s,
                                r.expected(epochs, tta == r.tta), rate))
    return sorted(found, key=lambda o: -o.expected)


def make_plan(recipes: list[Recipe], rates: dict[str, Rate], budget_s: float, time_left_s: float,
              n_train: int, n_test: int) -> Plan:
    """The best option that fits; a ConfigError saying what would fit when none does."""
    found = options(recipes, rates, time_left_s, budget_s, n_train, n_test)
    if not found:
        need = min((r.min_epochs * n_train / rates[r.preset].train_img_s
                    + n_test / rates[r.preset].eval_img_s + margin_s(budget_s)) for r in recipes if r.preset in rates)
        raise ConfigError(f"--budget {fmt_duration(budget_s)} is too short for this machine: the smallest "
                          f"recipe needs about {need + budget_s - time_left_s:.0f} s here")
    best = found[0]
    steps_per_epoch = n_train // best.recipe.batch_size
    steps = max(1, int(best.epochs * steps_per_epoch))
    return Plan(budget_s, best, tuple(found), steps, math.ceil(steps / steps_per_epoch))


def scaled_rates(recipes: list[Recipe], measured: dict[str, Rate], hw_class: str) -> dict[str, Rate]:
    """Rates of the recipes not measured here, scaled from a measured one by the table's throughput ratio
    for this hardware class (or, when the class is not in the table, the nearest: same bf16-ness)."""
    rates = dict(measured)
    ref = next((r for r in recipes if r.preset in measured), None)
    if ref is None:
        return rates
    for r in recipes:
        if r.preset in rates:
            continue
        cls = _nearest_class(hw_class, set(r.throughput) & set(ref.throughput))
        if cls is None:
            continue
        k = r.throughput[cls] / ref.throughput[cls]
        m = measured[ref.preset]
        rates[r.preset] = Rate(m.train_img_s * k, m.eval_img_s * k, measured=False)
    return rates


def _nearest_class(hw_class: str, classes: set[str]) -> str | None:
    if hw_class in classes:
        return hw_class
    bf16 = hw_class.endswith("bf16") or hw_class == "cuda"
    same = sorted(c for c in classes if (c.endswith("bf16") or c == "cuda") == bf16)
    return same[0] if same else (sorted(classes)[0] if classes else None)


class Replanner:
    """Keeps a running schedule inside its deadline. Every `every_s` of wall time it measures the
    throughput of the steps since its last look and sets the run's total steps to what fits before
    `deadline` (a time.perf_counter() value) minus the final evaluation and the margin: fewer steps when
    the machine slowed, more (up to the recipe's longest measured schedule) while in the first half of a
    run that goes faster than planned. The throughput is taken over the last `WINDOW` looks, so one slow
    moment (a collector pause, another process's burst) does not cut the schedule as a lasting slowdown
    does. Returns the new total; a total <= the current step means stop."""

    WINDOW = 5  # looks the throughput is averaged over (time-weighted)

    def __init__(self, plan: Plan, deadline: float, steps_per_epoch: int, every_s: float | None = None):
        self.batch = plan.chosen.recipe.batch_size
        self.eval_s, self.margin = plan.chosen.eval_s, margin_s(plan.budget_s)
        self.deadline = deadline
        self.max_steps = int(plan.chosen.recipe.max_epochs * steps_per_epoch)
        self.every_s = every_s if every_s is not None else max(2.0, plan.budget_s / 50)
        self.looks: list[tuple[float, int]] = []  # (time, step) of the recent looks, oldest first
        self.history: list[dict] = []  # every change: step, old and new total, measured img/s

    def update(self, step: int, total: int, now: float | None = None) -> int:
        now = time.perf_counter() if now is None else now
        if not self.looks:
            self.looks.append((now, step))
            return total
        if now - self.looks[-1][0] < self.every_s or step == self.looks[-1][1]:
            return total
        self.looks = [*self.looks[-self.WINDOW:], (now, step)]
        t0, step0 = self.looks[0]
        rate = (step - step0) * self.batch / (now - t0)
        left_s = self.deadline - now - self.eval_s - self.margin
        fits = step + max(0, int(left_s * rate / self.batch))
        new = min(fits, total if step > total / 2 else self.max_steps)
        if total < new < total * 1.02:  # growth only when worth a schedule change; shrinking always
            new = total
        if new != total:
            self.history.append({"step": step, "total_was": total, "total": new, "img_s": round(rate, 1)})
        return new


# ---------------------------------------------------------------- measuring this machine

def calibrate(cfg: Config, train_x, rt, num_classes: int, seconds: float = CALIBRATE_S) -> Rate:
    """Training and evaluation throughput of `cfg`'s model on this machine: one warm-up step, then real
    steps (augmented real images, forward, backward, the recipe's optimizer) for about `seconds`, then
    evaluation forwards. The caller's RNG states are left as they were."""
    import torch
    import torch.nn.functional as F

    from .augment import Augmenter, Normalizer
    from .data import SPECS
    from .optim import build_optimizer
    from .pipeline import new_model

    bs, dev = cfg.train.batch_size, rt.device
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(0)
        model = new_model(cfg, num_classes).to(dev, memory_format=rt.memory_format)
        opt = build_optimizer(model, cfg.optim, bs, rt.ns_dtype)
        spec = SPECS[cfg.data.dataset]
        norm = Normalizer(spec.mean, spec.std, dev, rt.memory_format)
        x = train_x[:bs].to(dev)
        aug = Augmenter(cfg.augment, norm, torch.Generator(device=dev).manual_seed(0), n_train=len(x))
        idx, y = torch.arange(len(x), device=dev), torch.randint(0, num_classes, (len(x),), device=dev)

        def step():
            with rt.autocast():
                loss = F.cross_entropy(model(aug(x, idx)).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_img_s = bs / _time_per_call(step, seconds, dev)
        model.eval()
        xe = norm(train_x[:min(cfg.train.eval_batch_size, len(train_x))].to(dev))

        @torch.inference_mode()
        def forward():
            with rt.autocast():
                model(xe)
        eval_img_s = len(xe) / _time_per_call(forward, seconds / 4, dev)
    return Rate(train_img_s, eval_img_s, measured=True)


def _time_per_call(fn, seconds: float, device) -> float:
    """Median seconds per call of fn after one warm-up call, over at least 2 calls and `seconds`."""
    import statistics

    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    fn()
    sync()
    times, t_end = [], time.perf_counter() + seconds
    while len(times) < 2 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def plan_for_run(dataset: str, budget_s: float, t_start: float, train_x, n_test: int, rt, num_classes: int,
                 log=print, table: Path = TABLE) -> Plan:
    """Measure this machine and plan: the smallest recipe is calibrated, the others scaled by the table's
    ratios for this hardware class; the chosen one is then calibrated too when that costs at most 3% of
    the budget, and the plan remade. `t_start` (time.perf_counter()) is when the budget's clock started."""
    recipes = load_table(dataset, table)
    n_train = len(train_x)
    cfgs = {r.preset: make_config(r.preset) for r in recipes}
    seconds = min(CALIBRATE_S, CALIBRATE_FRAC * budget_s)
    measured = {recipes[0].preset: calibrate(cfgs[recipes[0].preset], train_x, rt, num_classes, seconds)}
    hw_class = rt.hw.hw_class if rt.hw is not None else "cpu"
    plan = _plan_now(recipes, measured, hw_class, budget_s, t_start, n_train, n_test)
    chosen = plan.chosen.recipe.preset
    cost_s = 3 * plan.chosen.recipe.batch_size / plan.chosen.rate.train_img_s + seconds
    if chosen not in measured and cost_s <= 0.03 * budget_s:
        measured[chosen] = calibrate(cfgs[chosen], train_x, rt, num_classes, seconds)
        plan = _plan_now(recipes, measured, hw_class, budget_s, t_start, n_train, n_test)
    log(plan.describe())
    return plan


def _plan_now(recipes, measured, hw_class, budget_s, t_start, n_train, n_test) -> Plan:
    time_left = budget_s - (time.perf_counter() - t_start)
    return make_plan(recipes, scaled_rates(recipes, measured, hw_class), budget_s, time_left, n_train, n_test)


# ---------------------------------------------------------------- a budgeted run

class BudgetHook(Hook):
    """The engine hook that keeps a run inside its deadline: the Replanner's total becomes the run's plan
    (run.replan), and a total at or below the current step stops the run (run.request_stop)."""
    every_steps = 1  # a clock read per step; the replanner acts every few seconds

    def __init__(self, plan: Plan, deadline: float, steps_per_epoch: int):
        self.replanner = Replanner(plan, deadline, steps_per_epoch)

    def on_step(self, run) -> None:
        total = self.replanner.update(run.progress.step, run.total_steps)
        if total == run.total_steps:
            return
        if total <= run.progress.step:
            run.request_stop(f"budget: stopped at step {run.progress.step} to finish on time")
        else:
            run.replan(total_steps=total)


def train_within(dataset: str, budget_s: float, out=None, data_dir=None, seed: int = 0, quiet: bool = False,
                 overwrite: bool = False, t_start: float | None = None, device: str = "auto",
                 table: Path = TABLE, train_subset: int = 0, test_subset: int = 0, hooks=(),
                 plan_only: bool = False):
    """Train the most accurate model this machine can reach in `budget_s` seconds of wall time, counted
    from `t_start` (default now) to the end of the final test evaluation; returns the engine's RunResult
    with a `budget` entry in its summary (and summary.json): the plan, every re-plan and the wall time.
    plan_only: measure this machine and return the Plan the run would start with; nothing trains or is
    written."""
    from . import data as data_mod
    from .config import TrainConfig
    from .engine import train
    from .io import write_json
    from .runtime import pick_device

    t_start = time.perf_counter() if t_start is None else t_start
    say = (lambda msg: None) if quiet else (lambda msg: print(msg, flush=True))
    rt = pick_device(TrainConfig(device=device))
    ds = data_mod.load(dataset, data_dir)
    train_x = ds.train_x[:train_subset] if train_subset else ds.train_x
    n_test = min(test_subset or len(ds.test_y), len(ds.test_y))  # the subsets: tests on a slice
    plan = plan_for_run(dataset, budget_s, t_start, train_x, n_test, rt, ds.num_classes, log=say, table=table)
    if plan_only:
        return plan
    cfg = plan.config(seed, {"train.device": device, "data.train_subset": train_subset,
                             "data.test_subset": test_subset})
    hook = BudgetHook(plan, t_start + budget_s, len(train_x) // plan.chosen.recipe.batch_size)
    result = train(cfg, out=out, data_dir=data_dir, quiet=quiet, overwrite=overwrite, hooks=[hook, *hooks])
    wall_s = time.perf_counter() - t_start
    c = plan.chosen
    result.summary["budget"] = {
        "budget_s": budget_s, "wall_s": round(wall_s, 2), "within": wall_s <= budget_s,
        "recipe": c.recipe.preset, "batch_size": c.recipe.batch_size, "tta": c.tta, "planned_epochs": round(c.epochs, 3), "planned_steps": plan.steps,
        "steps_run": result.history[-1]["step"] if result.history else 0, "expected_val_acc": round(c.expected, 2),
        "train_img_s": round(c.rate.train_img_s, 1), "eval_img_s": round(c.rate.eval_img_s, 1),
        "replans": hook.replanner.history, "hw": rt.hw.record() if rt.hw else {}}
    if out is not None:
        write_json(Path(out) / "summary.json", result.summary)
    say(f"budget {fmt_duration(budget_s)}: {wall_s:.0f} s used ({c.recipe.preset}, "
        f"{len(hook.replanner.history)} re-plans); test top-1 {result.summary['test_acc']:.2f}%")
    return result
