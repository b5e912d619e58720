"""The committed checkpoints: `cifarlab eval` reproduces the test numbers in each one's summary (the
fp32 `check` block for checkpoints that were evaluated in bf16, whose kernels differ between CPUs)."""
import json
from pathlib import Path

import pytest

from cifarlab.cli import main

CKPTS = sorted((Path(__file__).resolve().parents[1] / "checkpoints").glob("*.pt"))


@pytest.mark.parametrize("ckpt", CKPTS, ids=[c.stem for c in CKPTS])
def test_published_checkpoint_reproduces_its_summary(capsys, data_root, ckpt):
    summary = json.loads(ckpt.with_suffix(".json").read_text())
    want, flags = summary, []
    if "check" in summary:
        want, flags = summary["check"], ["--fp32", "--tta", str(summary["check"]["tta"])]
    assert main(["eval", str(ckpt), "--data-dir", str(data_root), *flags]) == 0
    out = capsys.readouterr().out
    assert f"Test Accuracy: {want['test_acc']:.2f}%" in out, out
    assert f"Test Loss:     {want['test_loss']:.4f}" in out, out
    assert f"Test Top-5:    {want['test_top5']:.2f}%" in out, out
    assert f"FINAL RESULT: {summary['preset']} ({summary['dataset']})" in out
    assert "reproduced" in out
