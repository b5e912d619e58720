"""Short real training runs on real CIFAR slices, plus the CLI around them."""
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from cifarlab import train
from cifarlab.cli import main
from cifarlab.config import make_config
from cifarlab.models import MODELS
from cifarlab.engine import NonFiniteLoss, RunError

FAST = ["data.train_subset=5000", "data.val_size=1000", "data.test_subset=2000", "train.epochs=1",
        "train.batch_size=64"]


@pytest.fixture(scope="module")
def c10_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("run") / "c10"
    cfg = make_config("c10-cnn", FAST)
    return train(cfg, out=out, data_dir=data_root, quiet=True)


def test_short_run_beats_chance_and_writes_its_files(c10_run):
    s, out = c10_run.summary, c10_run.out_dir
    assert s["test_acc"] > 30, s  # chance is 10%
    assert s["test_n"] == 2000 and s["n_train"] == 5000 and s["n_val"] == 1000
    for f in ("config.yaml", "metrics.jsonl", "summary.json", "best.pt", "last.pt", "curves.png"):
        assert (out / f).is_file(), f
    rec = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_time_s", "images_per_s"):
        assert k in rec
    summary = json.loads((out / "summary.json").read_text())
    for k in ("test_acc", "test_top5", "test_loss", "best_epoch", "total_time_s", "params", "seed",
              "hardware", "torch", "git_commit"):
        assert k in summary
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli_reproduces_recorded_test_accuracy(c10_run, capsys, data_root):
    rc = main(["eval", str(c10_run.out_dir / "best.pt"), "--data-dir", str(data_root)])
    out = capsys.readouterr().out
    assert rc == 0, out
    s = c10_run.summary
    assert f"Test Accuracy: {s['test_acc']:.2f}%" in out and f"Test Loss:     {s['test_loss']:.4f}" in out
    assert "FINAL RESULT: c10-cnn (cifar10)" in out and "reproduced" in out


def test_existing_out_dir_refused_and_untouched(c10_run, data_root):
    before = {p.name: p.stat().st_mtime_ns for p in c10_run.out_dir.iterdir()}
    with pytest.raises(RunError, match="exists and is not empty.*--resume.*--overwrite"):
        train(make_config("c10-cnn", FAST), out=c10_run.out_dir, data_dir=data_root, quiet=True)
    assert before == {p.name: p.stat().st_mtime_ns for p in c10_run.out_dir.iterdir()}


def test_same_seed_same_result(synthetic_root):
    cfg = make_config("c10-mlp", ["data.val_size=100", "train.epochs=1", "train.batch_size=32",
                                  "augment.crop_pad=2", "augment.flip=true"])
    a = train(cfg, data_dir=synthetic_root, quiet=True)
    b = train(cfg, data_dir=synthetic_root, quiet=True)
    assert a.history[0]["train_loss"] == b.history[0]["train_loss"]
    assert a.summary["test_acc"] == b.summary["test_acc"]


def test_eval_of_a_run_on_a_test_slice_says_so(synthetic_root, tmp_path, capsys):
    cfg = make_config("c10-mlp", ["data.val_size=100", "train.epochs=1", "data.test_subset=40"])
    run = train(cfg, out=tmp_path / "run", data_dir=synthetic_root, quiet=True)
    assert run.summary["test_n"] == 40
    assert main(["eval", str(tmp_path / "run" / "best.pt"), "--data-dir", str(synthetic_root)]) == 0
    assert "first 40 test images only" in capsys.readouterr().out


class _NaNAfter(nn.Module):
    """A real model that starts emitting NaN after a few forward passes in training mode."""
    def __init__(self, num_classes, width=1, dropout=0.0):
        super().__init__()
        self.inner = MODELS["mlp"](num_classes)
        self.calls = 0

    def forward(self, x):
        out = self.inner(x)
        if self.training:
            self.calls += 1
            if self.calls > 40:
                out = out * float("nan")
        return out


def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, synthetic_root, monkeypatch):
    monkeypatch.setitem(MODELS, "nan_mlp", _NaNAfter)
    cfg = make_config("c10-mlp", ["model.name=nan_mlp", "data.val_size=100", "train.epochs=3",
                                  "train.batch_size=6"])  # 200 training images: 33 steps per epoch
    with pytest.raises(NonFiniteLoss, match="epoch 2, batch 8"):
        train(cfg, out=tmp_path / "r", data_dir=synthetic_root, quiet=True)
    from cifarlab.checkpoint import load_checkpoint

    state = load_checkpoint(tmp_path / "r" / "last.pt")
    assert state["progress"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert "non-finite" in json.loads((tmp_path / "r" / "summary.json").read_text())["status"]


def test_nonfinite_skip_counts_steps(synthetic_root, monkeypatch):
    monkeypatch.setitem(MODELS, "nan_mlp", _NaNAfter)
    cfg = make_config("c10-mlp", ["model.name=nan_mlp", "data.val_size=100", "train.epochs=2",
                                  "train.batch_size=6", "train.nonfinite=skip", "train.max_skipped_steps=10"])
    with pytest.raises(NonFiniteLoss, match="11 steps skipped"):
        train(cfg, data_dir=synthetic_root, quiet=True)


def test_cli_bad_input_exit_codes(capsys, tmp_path):
    assert main(["train", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "valid presets" in capsys.readouterr().err
    assert main(["train", "--preset", "c10-mlp", "--set", "train.epochs=0", "--out", str(tmp_path / "y")]) == 2
    assert "train.epochs" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_presets_and_data_check_commands(capsys, data_root):
    assert main(["presets"]) == 0
    assert "c100-cnn-aug" in capsys.readouterr().out
    assert main(["data", "check", "--data-dir", str(data_root), "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "de64658905c6b161606e3649ddafce7cf86c7634a0cf9116d518e64ef46a33c5" in out
    assert "unverified" in out and "genuine" in out


def test_git_commit_is_dirty_only_when_code_changed(tmp_path, monkeypatch):
    import subprocess

    from cifarlab.runlog import git_commit

    monkeypatch.delenv("CIFARLAB_GIT_COMMIT", raising=False)

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "src").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    (tmp_path / "results" / "r.jsonl").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    clean = git_commit(tmp_path / "src")
    assert len(clean) == 12 and not clean.endswith("-dirty")
    (tmp_path / "results" / "r.jsonl").write_text('{"a": 1}\n')  # a new result is not a code change
    assert git_commit(tmp_path / "src") == clean
    (tmp_path / "src" / "m.py").write_text("x = 2\n")
    assert git_commit(tmp_path / "src") == clean + "-dirty"


def test_bare_train_is_the_make_train_job(monkeypatch, tmp_path, capsys):
    """`cifarlab train` without --preset runs the budgeted CIFAR-100 job, with make train's budget."""
    import re

    from cifarlab import budget
    from cifarlab.cli import DEFAULT_BUDGET

    make_budget = re.search(r"^BUDGET\s*\?=\s*(\S+)", (Path(__file__).parents[1] / "Makefile").read_text(), re.M)
    assert make_budget.group(1) == DEFAULT_BUDGET
    seen = {}

    class Done(Exception):
        pass

    def fake_train_within(dataset, budget_s, **kw):
        seen.update(dataset=dataset, budget_s=budget_s)
        raise Done
    monkeypatch.setattr(budget, "train_within", fake_train_within)
    with pytest.raises(Done):
        main(["train", "--out", str(tmp_path / "r")])
    assert seen == {"dataset": "cifar100", "budget_s": budget.parse_duration(DEFAULT_BUDGET)}
    assert main(["train", "--set", "optim.lr=0.1", "--out", str(tmp_path / "s")]) == 2
    assert "--preset" in capsys.readouterr().err
