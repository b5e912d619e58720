"""`cifarlab doctor run`: unmodified scripts audited under hooks — planted bugs found from the observed loop,
a crash reported with its traceback and what was seen before it, the user's files left byte-identical,
every hook removed afterwards, and the CLI's exit status."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from cifarlab.doctor import run_script

SCRIPTS = Path(__file__).parent / "doctor_scripts"
PRE = ["shape-mismatch", "step-error"]

# a tiny script on synthetic data (no torchvision import): {step} and {after} are the planted variations
TINY = """
import sys
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

g = torch.Generator().manual_seed(0)
x, y = torch.randn(256, 3, 8, 8, generator=g), torch.randint(0, 4, (256,), generator=g)
train = DataLoader(TensorDataset(x[:192], y[:192]), batch_size=32, shuffle=True)
test = DataLoader(TensorDataset(x[192:], y[192:]), batch_size=32)
model = nn.Sequential(nn.Flatten(), nn.Linear(192, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.2),
                      nn.Linear(32, 4))
opt = torch.optim.SGD(model.parameters(), lr=0.05)
for epoch in range(int(sys.argv[1]) if len(sys.argv) > 1 else 50):
    model.train()
    for xb, yb in train:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        {step}
    model.eval()
    with torch.no_grad():
        acc = sum((model(xb).argmax(1) == yb).sum().item() for xb, yb in test)
    {after}
"""


def _tiny(tmp_path: Path, step: str = "pass", after: str = "pass") -> Path:
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(TINY).replace("{step}", step).replace("{after}", after))
    return path


@pytest.mark.parametrize("name, code", [("b_finetune_train_once", "train-mode"),
                                        ("b_missing_zero_grad", "missing-zero-grad"),
                                        ("b_val_without_eval", "eval-mode")])
def test_planted_bug_in_a_real_script_is_an_error(name, code, c10, tmp_path):
    report = run_script(SCRIPTS / f"{name}.py", [], cwd=tmp_path, quiet=True, checks=PRE + [code])
    assert code in report.codes("error"), str(report)
    assert report.crash is None and report.summary().startswith("1 error(s)"), str(report)


def test_train_once_then_evaluate_is_clean(c10, tmp_path):
    """model.train() once, evaluation only after training: no false train-mode error, and no warning."""
    report = run_script(SCRIPTS / "c_train_once_eval_after.py", [], cwd=tmp_path, quiet=True, budget_s=4)
    assert report.ok and not report.codes("warning"), str(report)
    assert "train-mode" in report.checks_run and "eval-mode" in report.checks_run
    assert not any(f.code in ("train-mode", "eval-mode") for f in report.findings), str(report)


def test_crash_is_reported_with_what_was_seen_before(tmp_path):
    script = _tiny(tmp_path, after="raise ValueError('bad metric')")
    report = run_script(script, [], cwd=tmp_path, quiet=True, checks=PRE + ["train-mode"])
    assert report.crash and "ValueError: bad metric" in report.crash and "train.py" in report.crash
    assert "script" in report.codes("error") and "shape-mismatch" in report.checks_run, str(report)
    assert any("6 training" in a or "3 training" in a for a in report.audit), report.audit


def test_user_files_stay_byte_identical_and_hooks_are_removed(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pt").write_bytes(b"old weights")
    (tmp_path / "log.txt").write_text("old log\n")
    script = _tiny(tmp_path, after="torch.save(model.state_dict(), 'ckpt/model.pt'); "
                                   "open('log.txt', 'a').write('epoch\\n'); open('new.txt', 'w').write('x')")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    originals = (DataLoader.__iter__, DataLoader.__init__, torch.autograd.backward, F.cross_entropy,
                 torch.optim.Optimizer.__init__)
    n_hooks = len(torch.nn.modules.module._global_forward_hooks)
    report = run_script(script, ["3"], cwd=tmp_path, quiet=True, checks=PRE)
    assert report.crash is None, report.crash
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
    assert (DataLoader.__iter__, DataLoader.__init__, torch.autograd.backward, F.cross_entropy,
            torch.optim.Optimizer.__init__) == originals
    assert len(torch.nn.modules.module._global_forward_hooks) == n_hooks
    assert sum(1 for _ in DataLoader(list(range(100)), batch_size=10)) == 10  # no cap left behind


def test_stale_gradients_are_seen_in_the_loop_and_accumulation_is_not(tmp_path):
    bad = run_script(_tiny(tmp_path, step="opt.zero_grad = lambda *a, **k: None"), [], cwd=tmp_path,
                     quiet=True, checks=PRE + ["missing-zero-grad"])
    assert "missing-zero-grad" in bad.codes("error"), str(bad)
    ok = run_script(_tiny(tmp_path), [], cwd=tmp_path, quiet=True, checks=PRE + ["missing-zero-grad", "train-mode",
                                                                                  "eval-mode"])
    assert ok.ok and not ok.findings, str(ok)


def test_cli_runs_the_script_with_its_arguments_and_exits_1_on_error(tmp_path):
    script = _tiny(tmp_path, after="model.eval()")  # harmless; the bug: train mode never restored below
    script.write_text(script.read_text().replace("    model.train()\n", ""))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run([sys.executable, "-m", "cifarlab.doctor", str(script), "4"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[train-mode]" in r.stdout and "train.py 4" in r.stdout, r.stdout
    assert r.stdout.rstrip().splitlines()[-1].endswith("check(s) inconclusive"), r.stdout
