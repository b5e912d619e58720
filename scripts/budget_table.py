"""Write src/cifarlab/budget_table.json, the recipe table `--budget` plans with, from the records.

    python scripts/budget_table.py            # rewrite the table
    python scripts/budget_table.py --check    # exit 1 when the committed table differs from the records

Accuracy: each recipe's validation curve (epochs -> last-epoch val top-1 on the 45k/5k hold-out, with
and without test-time augmentation) from benchmarks/results/budget_val.jsonl, plus the validation runs
of benchmarks/results/tuning.jsonl and the complete trials of the tune studies in studies/*/trials.jsonl
whose config is the preset's as it is today (same config hash); budget_val.jsonl wins where both have a
point (it also records the score without test-time augmentation).
Throughput: training images/s per hardware class from benchmarks/results/budget_throughput.jsonl
(`cifarlab bench --calibrate`, taken on a quiet machine) and, for the bf16 Xeon class, the time-to-accuracy
records of the same recipe. Only the ratios between recipes of one class are used by the planner.
"""
from __future__ import annotations

import json
import statistics
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from cifarlab.config import make_config
from cifarlab.io import read_jsonl as _read_jsonl
from cifarlab.io import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks/results"
TABLE = ROOT / "src/cifarlab/budget_table.json"
# the one-epoch recipe first (every run calibrates it; the others are scaled by the ratios), then by cost
RECIPES = {"cifar100": ["c100-micro", "c100-tiny", "c100-sprint", "c100-fast", "c100-best"]}
# The records of rounds 1-2 name their CPU by model only; that machine was an Intel Xeon with AMX bf16.
LEGACY_CLASS = {("Intel(R) Xeon(R) Processor (2 threads)", "bf16"): "cpu-amx-bf16"}


def read_jsonl(path: Path) -> list[dict]:
    return _read_jsonl(path) if path.is_file() else []


def _class(rec: dict) -> str | None:
    return rec.get("hw_class") or LEGACY_CLASS.get((rec.get("hardware"), rec.get("precision")))


def val_hash(preset: str, epochs: int) -> str:
    cfg = make_config(preset, {"data.val_size": 5000, "train.epochs": epochs, "train.early_stop_patience": 0})
    return cfg.hash()


def curve(preset: str) -> list[dict]:
    """(epochs, val with TTA, val without) points of `preset` at today's config, one per schedule length."""
    points = {}
    for r in read_jsonl(RESULTS / "budget_val.jsonl"):
        if r["preset"] == preset and r["config_hash"] == val_hash(preset, r["epochs"]):
            points[r["epochs"]] = {"epochs": r["epochs"], "val_acc": r["val_acc_last"],
                                   "val_acc_no_tta": r["val_acc_no_tta"], "hw_class": r["hw_class"],
                                   "command": r["command"], "date": r["date"][:10]}
    return [points[e] for e in sorted(points)]


def tuning_points(preset: str) -> list[dict]:
    """Validation runs of tuning.jsonl that trained today's `preset` (no no-TTA score: they are used for
    both, which slightly overstates the no-TTA curve there)."""
    out = []
    for r in read_jsonl(RESULTS / "tuning.jsonl"):
        epochs = r["config"]["train.epochs"]
        if r["preset"] == preset and r["config_hash"] == val_hash(preset, epochs):
            out.append({"epochs": epochs, "val_acc": r["val_acc_last"], "val_acc_no_tta": None,
                        "hw_class": _class(r), "command": "benchmarks/results/tuning.jsonl", "date": r["date"][:10]})
    return out


def study_points(preset: str) -> list[dict]:
    """Complete trials of the committed tune studies (studies/*/trials.jsonl, written by `cifarlab report`)
    whose config is `preset` trained for some number of epochs, as it is today (same config hash). A tune
    trial records validation with the recipe's test-time augmentation only."""
    out = []
    for path, t, epochs in complete_study_trials():
        a = t["user_attrs"]
        if a.get("config_hash") == val_hash(preset, epochs):
            out.append({"epochs": epochs, "val_acc": a[f"epoch_{epochs}"]["val_acc"], "val_acc_no_tta": None,
                        "hw_class": a.get("hardware", {}).get("hw_class"),
                        "command": f"cifarlab tune {path.parent.relative_to(ROOT)}.yaml (trial {t['number']})",
                        "date": a.get("date", "")})
    return out


def complete_study_trials():
    """(trials.jsonl path, trial, its last epoch) for every complete trial of the committed tune studies
    (studies/*/trials.jsonl, written by `cifarlab report`); a trial reports every epoch."""
    for path in sorted((ROOT / "studies").glob("*/trials.jsonl")):
        for t in read_jsonl(path):
            epochs = max((int(k[len("epoch_"):]) for k in t["user_attrs"] if k.startswith("epoch_")), default=0)
            if t["state"] == "COMPLETE" and epochs:
                yield path, t, epochs


def latest_pass() -> list[dict]:
    """The calibration records the ratios come from: per hardware class, the newest run of
    benchmarks/budget_throughput.py that measured every recipe measured in that class (one command, its
    records consecutive). This host's speed drifts between sessions, so medians over records of
    different sessions gave ratios between recipes that no single session showed."""
    recs = [r for r in read_jsonl(RESULTS / "budget_throughput.jsonl")
            if r["preset"] in RECIPES.get(r.get("dataset", "cifar100"), ())]
    keep = []
    for hw in sorted({r["hw_class"] for r in recs}):
        mine = [r for r in recs if r["hw_class"] == hw]
        presets, runs = {r["preset"] for r in mine}, []
        for r in mine:  # file order: one run's records are consecutive
            if runs and runs[-1][-1]["command"] == r["command"] and _same_run(runs[-1][-1], r):
                runs[-1].append(r)
            else:
                runs.append([r])
        full = [run for run in runs if {r["preset"] for r in run} == presets]
        keep += full[-1] if full else mine
    return keep


def _same_run(a: dict, b: dict) -> bool:
    """b follows a in one run: within 30 minutes (a run of every recipe takes about 4)."""
    return abs((datetime.fromisoformat(b["date"]) - datetime.fromisoformat(a["date"])).total_seconds()) < 1800


def throughput(preset: str) -> dict:
    """hw_class -> median training images/s of the recipe there."""
    by_class: dict[str, list[float]] = {}
    for r in latest_pass():
        if r["preset"] == preset:
            by_class.setdefault(r["hw_class"], []).append(r["train_img_s"])
    recipe = make_config(preset)
    bench_hash = replace(recipe, data=replace(recipe.data, val_size=0, train_subset=0),
                         train=replace(recipe.train, seed=0, early_stop_patience=0)).hash()
    from_bench: dict[str, list[float]] = {}  # classes without a calibration record: the bench's own rate
    for r in read_jsonl(RESULTS / "time_to_accuracy.jsonl"):
        if r.get("recipe_hash") == bench_hash and _class(r):
            from_bench.setdefault(_class(r), []).append(r["n_train"] * r["epochs"] / r["train_s"])
    merged = {**from_bench, **by_class}
    return {c: round(statistics.median(v), 1) for c, v in sorted(merged.items())}


def points(preset: str) -> dict[int, dict]:
    """epochs -> the validation record the table uses for `preset` (this round's runs win)."""
    pts = {p["epochs"]: p for p in tuning_points(preset)}
    pts.update({p["epochs"]: p for p in study_points(preset)})
    pts.update({p["epochs"]: p for p in curve(preset)})
    return pts


def tta_gain(pts: dict[int, dict], every: list[dict]) -> float:
    """What test-time augmentation adds where a record has no figure without it (tune trials and the
    tuning runs validate with TTA only): the median gain measured on this recipe, else on every recipe.
    Copying the TTA figure instead made TTA look free to leave out, and the planner dropped it."""
    def gains(ps):
        return [p["val_acc"] - p["val_acc_no_tta"] for p in ps if p["val_acc_no_tta"] is not None]
    return statistics.median(gains(pts.values()) or gains(every) or [0.0])


def build() -> dict:
    recipes = []
    for dataset, presets in RECIPES.items():
        by_preset = {preset: points(preset) for preset in presets}
        every = [p for pts in by_preset.values() for p in pts.values()]
        for preset, pts in by_preset.items():
            if not pts:
                continue
            cfg, gain = make_config(preset), tta_gain(pts, every)
            recipes.append({"preset": preset, "dataset": dataset, "batch_size": cfg.train.batch_size,
                            "tta": cfg.train.tta, "throughput": throughput(preset),
                            "curve": [[e, round(p["val_acc"], 2), round(p["val_acc_no_tta"] if p["val_acc_no_tta"]
                                                                          is not None else p["val_acc"] - gain, 2)]
                                      for e, p in sorted(pts.items())],
                            "no_tta_estimate": {"gain": round(gain, 2), "at_epochs": sorted(
                                e for e, p in pts.items() if p["val_acc_no_tta"] is None)},
                            "sources": [pts[e] for e in sorted(pts)]})
    return {"generated_by": "python scripts/budget_table.py", "recipes": recipes}


def main(argv: list[str]) -> int:
    table = build()
    if "--check" in argv:
        same = TABLE.is_file() and json.loads(TABLE.read_text()) == table
        print("budget_table.json is current" if same else "budget_table.json differs from the records: "
              "run python scripts/budget_table.py")
        return 0 if same else 1
    write_json(TABLE, table)
    print(f"wrote {TABLE.relative_to(ROOT)}: " + ", ".join(f"{r['preset']} ({len(r['curve'])} points, "
                                                          f"{', '.join(r['throughput'])})" for r in table["recipes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
