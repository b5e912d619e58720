"""A tiny study on the synthetic data: 2 experiments x 1 short epoch; verdicts decided on validation."""
import csv
import json

import pytest
from PIL import Image

from cifarlab.cli import main
from cifarlab.config import ConfigError
from cifarlab.study.report import delta, observe
from cifarlab.study.run import run_study
from cifarlab.study.spec import load_study

STUDY = """
name: tiny
description: two quick experiments
seeds: 1
x-small: &small {data.val_size: 100, train.epochs: 1, train.batch_size: 32}
experiments:
  - id: A
    description: MLP baseline
    preset: c10-mlp
    set: *small
  - id: B
    description: + flip and crop
    preset: c10-mlp
    set: {<<: *small, augment.flip: true, augment.crop_pad: 2}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_root):
    d = tmp_path_factory.mktemp("study")
    (d / "tiny.yaml").write_text(STUDY)
    out = run_study(d / "tiny.yaml", data_dir=synthetic_root, quiet=True)
    return d, out


def test_table_columns_and_consistency(study):
    _, out = study
    rows = list(csv.DictReader(open(out / "study.csv")))
    assert [r["Exp ID"] for r in rows] == ["A", "B"]
    for col in ("change", "hyper-parameters", "finished", "train acc %", "val acc %", "test acc %",
                "train−val gap", "training time", "params", "Δ val vs", "Δ test", "observations"):
        assert col in rows[0], col
    recs = json.loads((out / "study.json").read_text())["experiments"]
    for row, rec in zip(rows, recs):
        summ = json.loads(next((out / "runs").glob(f"{rec['id']}-*-s0/summary.json")).read_text())
        assert float(row["test acc %"]) == pytest.approx(summ["test_acc"], abs=0.005)
        assert float(row["train−val gap"]) == pytest.approx(summ["train_acc"] - summ["val_acc"], abs=0.05)
    assert rows[1]["Δ val vs"].endswith("(vs A)")
    d_val = recs[1]["val_acc"][0] - recs[0]["val_acc"][0]
    d_test = recs[1]["test_acc"][0] - recs[0]["test_acc"][0]
    assert float(rows[1]["Δ val vs"].split()[0]) == pytest.approx(d_val, abs=0.005)
    assert float(rows[1]["Δ test"]) == pytest.approx(d_test, abs=0.005)
    assert recs[1]["verdict"] == ("improvement" if d_val > 0.5 else "regression" if d_val < -0.5 else "within noise")
    assert "augment.flip=True" in rows[1]["hyper-parameters"] and "ep=1" in rows[1]["hyper-parameters"]
    assert "| A |" in (out / "study.md").read_text()


def test_2_verdict_is_decided_on_validation_not_test():
    def row(val, test):
        return {"runs": [{"summary": {"val_acc": val, "test_acc": test}}]}

    ref, new = row(60.0, 62.0), row(62.0, 59.0)  # better on validation, worse on test
    d_val = delta(new, ref, "val_acc")
    assert d_val[2] == "improvement" and delta(new, ref, "test_acc")[2] == "regression"
    note = observe(70.0, 62.0, d_val)
    assert "improvement on val (+2.00 pts); keep it" in note
    assert "overfitting" not in observe(75.0, 62.0, None)  # the gap is train − val (13 points)


def test_second_invocation_trains_nothing(study, synthetic_root):
    d, out = study
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()}
    run_study(d / "tiny.yaml", data_dir=synthetic_root, quiet=True)  # only the report is rewritten
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*") if p.is_file()} == mtimes


def test_figures_are_valid_non_blank_pngs(study):
    _, out = study
    names = {p.name for p in (out / "figures").glob("*.png")}
    assert {"val_vs_epoch.png", "val_vs_time.png", "val_bars.png", "curves_A.png", "curves_B.png",
            "per_class.png", "confusion.png", "misclassified.png"} <= names
    for p in (out / "figures").glob("*.png"):
        img = Image.open(p).convert("L")
        lo, hi = img.getextrema()
        assert hi - lo > 50, f"{p.name} looks blank"
        assert p.stat().st_size < 400_000


def test_report_regenerates_without_training_and_table_writes_nothing(study, capsys, synthetic_root):
    _, out = study
    (out / "study.md").unlink()
    assert main(["report", str(out), "--data-dir", str(synthetic_root)]) == 0
    assert (out / "study.md").is_file() and "| B |" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert main(["report", str(out), "--table"]) == 0
    assert "| B |" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


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
