"""A budgeted run on the real CIFAR-100 data: it measures, plans, trains and evaluates inside the budget,
and a machine that slows down mid-run still finishes on time (the replanner shortens the schedule)."""
import json
import time

import pytest

from cifarlab.budget import train_within
from cifarlab.hooks import Hook

BUDGET_S = 16.0
SUBSET, TEST_SUBSET = 4096, 2000  # training and test images (real CIFAR-100 slices)


@pytest.fixture
def small_table(tmp_path):
    """Two real recipes shrunk for the test: presets (YAML) with small FastNets, and their table rows."""
    rows = []
    for name, widths, batch, pts in (("b-tiny", "8,16,16", 128, [[1, 10.0, 9.0], [4, 20.0, 19.0]]),
                                     ("b-wide", "16,32,32", 256, [[1, 11.0, 10.0], [8, 30.0, 29.0]])):
        (tmp_path / f"{name}.yaml").write_text(
            f"description: test\nbase: c100-sprint\nmodel: {{widths: '{widths}'}}\n"
            f"train: {{batch_size: {batch}, eval_batch_size: 500}}\n")
        rows.append({"preset": str(tmp_path / f"{name}.yaml"), "dataset": "cifar100", "batch_size": batch, "tta": 2,
                     "throughput": {"cpu-avx2": 1000.0 * 256 / batch / len(widths), "cpu-amx-bf16": 2000.0 / len(widths)},
                     "curve": pts})
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"recipes": rows}))
    return path


class SlowDown(Hook):
    """From step `after` on, every step takes `delay_s` longer: a machine that got busy."""
    every_steps = 1

    def __init__(self, after: int, delay_s: float):
        self.after, self.delay_s = after, delay_s

    def on_step(self, run) -> None:
        if run.progress.step >= self.after:
            time.sleep(self.delay_s)


@pytest.mark.slow
@pytest.mark.parametrize("slow", [False, True])
def test_a_budgeted_run_ends_inside_its_budget(data_root, small_table, tmp_path, slow):
    hooks = [SlowDown(after=5, delay_s=0.15)] if slow else []
    t0 = time.perf_counter()
    result = train_within("cifar100", BUDGET_S, out=tmp_path / "run", data_dir=data_root, quiet=True,
                          table=small_table, train_subset=SUBSET, test_subset=TEST_SUBSET, t_start=t0,
                          hooks=hooks)
    wall = time.perf_counter() - t0
    b = result.summary["budget"]
    assert wall <= BUDGET_S * 1.05 and b["wall_s"] <= BUDGET_S * 1.05
    assert b["recipe"].endswith((".yaml")) and b["steps_run"] >= 1
    assert result.summary["test_n"] == TEST_SUBSET and result.summary["test_acc"] > 1.5  # above chance (1%)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["budget"]["planned_steps"] == b["planned_steps"]
    if slow:  # the schedule was shortened to the slower pace, and the run still ended in time
        assert b["replans"] and b["replans"][-1]["total"] < b["planned_steps"]


def test_plan_only_prints_the_plan_and_writes_nothing(data_root, tmp_path, monkeypatch, capsys):
    """`cifarlab train --budget 10m --plan-only`: the machine is measured on the real data and the plan
    printed with its alternatives; nothing trains and no folder appears. Flags that would write are refused."""
    from cifarlab.cli import main

    monkeypatch.chdir(tmp_path)
    t0 = time.perf_counter()
    assert main(["train", "--budget", "10m", "--plan-only", "--data-dir", str(data_root)]) == 0
    assert time.perf_counter() - t0 < 60
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    head, header, *rows = lines[[ln.startswith("budget ") for ln in lines].index(True):]
    assert head.startswith("budget 10m: c100-") and "expected top-1 about" in head, out
    assert header.split()[:3] == ["recipe", "img/s", "epochs"] and rows and all(r.split()[0].startswith("c100-")
                                                                                for r in rows), out
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    for extra, message in ((["--budget", "90s", "--out", "x"], "--plan-only trains nothing and writes nothing; "
                                                               "drop --out"),
                           (["--budget", "90s", "--record", "r.jsonl"], "drop --record"),
                           (["--preset", "c100-micro"], "--plan-only shows what --budget would do; drop --preset")):
        assert main(["train", "--plan-only", *extra]) == 2
        assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
