"""Issue 10's correctness defects, each pinned by a test that failed before its fix (synthetic data)."""
import json
import shutil

import pytest
import torch
from torch import nn

from cifarlab import train
from cifarlab.checkpoint import load_checkpoint, save_checkpoint
from cifarlab.cli import main
from cifarlab.config import TrainConfig, make_config
from cifarlab.errors import ConfigError, RunError
from cifarlab.evaluate import evaluate_checkpoint
from cifarlab.models import build_model
from cifarlab.runtime import pick_device

SYN = ["data.val_size=100", "train.batch_size=32", "train.eval_batch_size=256"]


@pytest.fixture(scope="module")
def early_stopped(synthetic_root, tmp_path_factory):
    """The same early-stopped run twice: without a run folder and with one."""
    cfg = make_config("c10-cnn", [*SYN, "train.epochs=8", "train.early_stop_patience=1", "optim.lr=0.01"])
    out = tmp_path_factory.mktemp("defects") / "run"
    return (train(cfg, data_dir=synthetic_root, quiet=True),
            train(cfg, out=out, data_dir=synthetic_root, quiet=True))


def test_1_train_without_out_tests_the_selected_weights(early_stopped, synthetic_root):
    bare, saved = early_stopped
    s = bare.summary
    assert s["best_epoch"] < s["epochs_run"], "precondition: the selected epoch is not the last"
    assert s["test_loss"] == saved.summary["test_loss"] and s["test_acc"] == saved.summary["test_acc"]
    m, _ = evaluate_checkpoint(saved.out_dir / "best.pt", data_dir=synthetic_root)
    assert f"{m.loss:.4f}" == f"{s['test_loss']:.4f}"


def test_3_summary_numbers_come_from_the_selected_epoch(early_stopped):
    s, hist = early_stopped[0].summary, early_stopped[0].history
    sel, last = hist[s["best_epoch"] - 1], hist[-1]
    assert sel["epoch"] == s["best_epoch"] and sel is not last
    assert (s["train_acc"], s["train_loss"], s["val_acc"]) == (sel["train_acc"], sel["train_loss"], sel["val_acc"])
    assert (s["last_epoch_train_acc"], s["last_epoch_val_acc"]) == (last["train_acc"], last["val_acc"])


@pytest.fixture
def finished_copy(early_stopped, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(early_stopped[1].out_dir, dst)
    return dst


def test_4_resume_records_and_refuses_flags_it_cannot_honour(finished_copy, synthetic_root, tmp_path, capsys):
    rec = tmp_path / "results.jsonl"
    base = ["train", "--resume", str(finished_copy), "--data-dir", str(synthetic_root), "--quiet"]
    assert main([*base, "--record", str(rec)]) == 0
    lines = rec.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["run_dir"] == str(finished_copy)
    for extra in (["--set", "optim.lr=0.5"], ["--overwrite"], ["--out", str(tmp_path / "x")]):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert extra[0] in err and "last.pt" in err


def test_5_dropout_zero_means_zero_and_resnets_honour_it():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 32, 32)
    mlp = build_model("mlp", 10, dropout=0.0).train()
    assert torch.equal(mlp(x), mlp(x)), "train-mode MLP with dropout=0 must be deterministic"
    assert [m.p for m in build_model("mlp", 10, dropout=0.3).modules() if isinstance(m, nn.Dropout)] == [0.3, 0.3]
    for name in ("resnet9", "resnet18"):
        plain, dropped = build_model(name, 10), build_model(name, 10, dropout=0.2)
        assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
        assert [m.p for m in dropped.modules() if isinstance(m, nn.Dropout)] == [0.2]


def test_5_mlp_preset_keeps_its_hash_and_a_true_zero_gets_a_new_one():
    from pathlib import Path

    from cifarlab.io import read_jsonl

    recs = read_jsonl(Path(__file__).parents[1] / "results" / "c10-mlp.jsonl")
    for r in recs:  # runs of the implicit 0.3; the preset now says 0.3
        assert make_config("c10-mlp", [f"train.seed={r['seed']}"]).hash() == r["config_hash"]
    assert make_config("c10-mlp", ["model.dropout=0"]).hash() != make_config("c10-mlp").hash()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_7_unavailable_device_is_a_clear_error_not_a_traceback(capsys, tmp_path):
    with pytest.raises(ConfigError, match="train.device='cuda'.*not available"):
        pick_device(TrainConfig(device="cuda"))
    assert main(["train", "--preset", "c10-mlp", "--set", "train.device=cuda", "--out", str(tmp_path / "r")]) == 2
    assert "train.device" in capsys.readouterr().err


def test_7_cpu_run_resumes_on_a_gpu_host_on_the_cpu(finished_copy, synthetic_root, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # "a GPU host": device auto would pick cuda
    result = train(None, out=finished_copy, data_dir=synthetic_root, resume=True, quiet=True)
    assert result.summary["test_acc"] >= 0 and next(result.model.parameters()).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_7_gpu_run_on_a_cpu_host_says_so(finished_copy, synthetic_root):
    state = load_checkpoint(finished_copy / "last.pt")
    save_checkpoint(finished_copy / "last.pt", {**{k: v for k, v in state.items() if k != "format"},
                                                "device": "cuda"})
    with pytest.raises(RunError, match="trained on a CUDA GPU and this machine has none"):
        train(None, out=finished_copy, data_dir=synthetic_root, resume=True, quiet=True)
