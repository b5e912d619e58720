"""A tiny real study: 2 experiments x 1 short epoch on a slice of real CIFAR-10."""
import csv
import json
import time

import pytest
from PIL import Image

from cifarlab.ablate import load_study, run_study
from cifarlab.cli import main
from cifarlab.config import ConfigError

STUDY = """
name: tiny
description: two quick experiments
seeds: 1
experiments:
  - id: A
    description: MLP baseline
    preset: c10-mlp
    set: {data.train_subset: 3000, data.val_size: 1000, train.epochs: 1}
  - id: B
    description: + flip and crop
    preset: c10-mlp
    set: {data.train_subset: 3000, data.val_size: 1000, train.epochs: 1, augment.flip: true,
          augment.crop_pad: 2}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory, data_root):
    d = tmp_path_factory.mktemp("study")
    (d / "tiny.yaml").write_text(STUDY)
    out = run_study(d / "tiny.yaml", data_dir=data_root, quiet=True)
    return d, out


def test_table_columns_and_consistency(study):
    _, out = study
    rows = list(csv.DictReader(open(out / "study.csv")))
    assert [r["Exp ID"] for r in rows] == ["A", "B"]
    for col in ("change", "hyper-parameters", "finished", "train acc %", "val acc %", "test acc %",
                "train−test gap", "training time", "params", "Δ test vs", "observations"):
        assert col in rows[0], col
    recs = json.loads((out / "study.json").read_text())["experiments"]
    for row, rec in zip(rows, recs):
        summ = json.loads(next((out / "runs").glob(f"{rec['id']}-*-s0/summary.json")).read_text())
        assert float(row["test acc %"]) == pytest.approx(summ["test_acc"], abs=0.005)
        assert float(row["train−test gap"]) == pytest.approx(summ["train_acc"] - summ["test_acc"], abs=0.05)
    assert rows[1]["Δ test vs"].endswith("(vs A)")
    delta = recs[1]["test_acc"][0] - recs[0]["test_acc"][0]
    assert float(rows[1]["Δ test vs"].split()[0]) == pytest.approx(delta, abs=0.005)
    assert "augment.flip=True" in rows[1]["hyper-parameters"] and "ep=1" in rows[1]["hyper-parameters"]
    assert "| A |" in (out / "study.md").read_text()


def test_second_invocation_trains_nothing(study, data_root):
    d, out = study
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("summary.json")}
    t0 = time.perf_counter()
    run_study(d / "tiny.yaml", data_dir=data_root, quiet=True)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("summary.json")} == mtimes
    assert time.perf_counter() - t0 < 30


def test_figures_are_valid_non_blank_pngs(study):
    _, out = study
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert {"val_vs_epoch.png", "val_vs_time.png", "test_bars.png", "curves_A.png", "curves_B.png",
            "per_class.png", "confusion.png", "misclassified.png"} <= names
    for p in (out / "figures").glob("*.png"):
        img = Image.open(p).convert("L")
        lo, hi = img.getextrema()
        assert hi - lo > 50, f"{p.name} looks blank"
        assert p.stat().st_size < 400_000


def test_report_regenerates_without_training(study, capsys):
    _, out = study
    (out / "study.md").unlink()
    assert main(["report", str(out)]) == 0
    assert (out / "study.md").is_file() and "| B |" in capsys.readouterr().out


def test_bad_study_files(tmp_path):
    (tmp_path / "s.yaml").write_text("experiments: []\n")
    with pytest.raises(ConfigError, match="non-empty 'experiments'"):
        load_study(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("experiments:\n  - {id: A, preset: c10-mlp, set: {optim.lrr: 1}}\n")
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_study(tmp_path / "s.yaml")
    (tmp_path / "s.yaml").write_text("experiments:\n  - {id: A, preset: c10-mlp, compare: Z}\n")
    with pytest.raises(ConfigError, match="compare 'Z'"):
        load_study(tmp_path / "s.yaml")
