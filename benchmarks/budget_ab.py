"""Does a recipe earn its place in the --budget table? The same `--budget` run (same seed, one after the
other on this machine) with the committed table and with the table rebuilt with PRESET added, as
scripts/budget_table.py would write it; one record per arm and seed.

    python benchmarks/budget_ab.py --add c100-slim --budget 5m --seed-list 4

Appends to benchmarks/results/budget_ab.jsonl (each record is a `cifarlab bench --budget` record plus
`arm` and `added`). Run it on a quiet machine (benchmarks/quiet.sh): the arms are compared by accuracy,
but the plan of each depends on the speed the machine shows at its start.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import budget_table  # noqa: E402

from cifarlab.bench import run_budget_bench  # noqa: E402
from cifarlab.budget import TABLE, parse_duration  # noqa: E402
from cifarlab.io import append_jsonl, write_json  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--add", required=True, help="a preset with validation points (budget_val.jsonl or a study)")
    p.add_argument("--budget", default="5m")
    p.add_argument("--dataset", default="cifar100")
    p.add_argument("--seed-list", default="0")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/budget_ab.jsonl"))
    a = p.parse_args()
    recipes = budget_table.RECIPES[a.dataset]
    if a.add in recipes:
        p.error(f"--add {a.add}: already in the committed table")
    budget_table.RECIPES[a.dataset] = [recipes[0], a.add, *recipes[1:]]  # after the calibrated recipe
    table = budget_table.build()
    if a.add not in {r["preset"] for r in table["recipes"]}:
        p.error(f"--add {a.add}: no validation points on record (benchmarks/budget_val.py or a tune study)")
    seeds = [int(s) for s in a.seed_list.split(",")]
    command = "python " + " ".join(sys.argv)
    with tempfile.TemporaryDirectory() as tmp:
        with_it = Path(tmp) / "table.json"
        write_json(with_it, table)
        for arm, path in (("committed", TABLE), (f"with {a.add}", with_it)):
            for rec in run_budget_bench(a.dataset, parse_duration(a.budget), seeds, table=path, command=command):
                append_jsonl(a.out, {**rec, "arm": arm, "added": a.add})


if __name__ == "__main__":
    main()
