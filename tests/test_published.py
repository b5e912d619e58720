"""The committed checkpoint: `cifarlab eval` reproduces the test accuracy and loss in its summary."""
import json
from pathlib import Path

from cifarlab.cli import main

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "c100-cnn-aug.pt"


def test_published_checkpoint_reproduces_its_summary(capsys, data_root):
    summary = json.loads(CKPT.with_suffix(".json").read_text())
    assert main(["eval", str(CKPT), "--data-dir", str(data_root)]) == 0
    out = capsys.readouterr().out
    assert f"Test Accuracy: {summary['test_acc']:.2f}%" in out, out
    assert f"Test Loss:     {summary['test_loss']:.4f}" in out, out
    assert f"Test Top-5:    {summary['test_top5']:.2f}%" in out, out
    assert "FINAL RESULT: c100-cnn-aug (cifar100)" in out
