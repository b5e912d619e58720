"""`cifarlab doctor run`: unmodified scripts audited under hooks — planted bugs found from the observed loop,
a crash reported with its traceback and what was seen before it, the user's files left byte-identical,
every hook removed afterwards, and the CLI's exit status."""
from __future__ import annotations

import ast
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


def _constants(path: Path) -> dict:
    """SOURCE, EXPECT (EXPECT_SEVERITY when not "error") and KNOWN_MISS of a corpus script, read without
    running it."""
    out = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("SOURCE", "EXPECT", "EXPECT_SEVERITY", "KNOWN_MISS"):
                out[node.targets[0].id] = ast.literal_eval(node.value)
    return out


CORPUS = sorted(SCRIPTS.glob("[bc]_*.py"))
# a known miss is not run here (it is, at full budget, in benchmarks/doctor_run_corpus.py)
BUGGY = [pytest.param(p, id=p.stem, marks=pytest.mark.xfail(reason=_constants(p)["KNOWN_MISS"], run=False))
         if _constants(p).get("KNOWN_MISS") else pytest.param(p, id=p.stem)
         for p in CORPUS if p.stem.startswith("b_")]
CORRECT = [pytest.param(p, id=p.stem) for p in CORPUS if p.stem.startswith("c_")]


def test_script_corpus_size_and_provenance():
    """Every pipeline of tests/doctor_corpus/ also exists as a plain script, plus scripts of their own."""
    import doctor_corpus

    assert len(BUGGY) >= 28 and len(CORRECT) >= 9
    assert set(doctor_corpus.NAMES) <= {p.stem for p in CORPUS}
    misses = [p.stem for p in CORPUS if _constants(p).get("KNOWN_MISS")]
    assert len(misses) <= 0.05 * len(BUGGY), misses
    for p in CORPUS:
        c = _constants(p)
        assert c["SOURCE"].startswith("https://") and ast.get_docstring(ast.parse(p.read_text())), p.stem
        assert (c.get("EXPECT") is None) == p.stem.startswith("c_"), p.stem


@pytest.mark.parametrize("path", BUGGY)
def test_real_bug_in_a_plain_script_is_an_error_with_its_code(path, c10, tmp_path):
    """The script as its source wrote it, audited for its bug (the checks that bug needs, a short budget;
    every check at full budget: benchmarks/doctor_run_corpus.py)."""
    const = _constants(path)
    code = const["EXPECT"]
    report = run_script(path, [], cwd=tmp_path, quiet=True, checks=PRE + [code], budget_s=6)
    assert code in report.codes(const.get("EXPECT_SEVERITY", "error")), str(report)


@pytest.mark.parametrize("path", CORRECT)
def test_correct_plain_script_has_no_error(path, c10, tmp_path):
    report = run_script(path, [], cwd=tmp_path, quiet=True, budget_s=4)
    assert report.ok, str(report)
    if path.stem == "c_train_once_eval_after":  # model.train() once, evaluation only after training:
        assert not report.codes("warning"), str(report)  # no false train-mode finding, and no warning
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


def test_a_working_directory_with_a_socket_and_a_fifo_is_mirrored(tmp_path):
    """A run from a folder holding special files (/tmp has sockets): they are linked, never read."""
    import socket

    from cifarlab.doctor.script import mirror

    src = tmp_path / "cwd"
    src.mkdir()
    (src / "data.txt").write_text("x")
    os.mkfifo(src / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(src / "listener"))
    try:
        mirror(src, tmp_path / "copy")
    finally:
        sock.close()
    assert (tmp_path / "copy" / "data.txt").read_text() == "x" and not (tmp_path / "copy" / "data.txt").is_symlink()
    assert (tmp_path / "copy" / "pipe").is_symlink() and (tmp_path / "copy" / "listener").is_symlink()


def test_stale_gradients_are_seen_in_the_loop_and_accumulation_is_not(tmp_path):
    bad = run_script(_tiny(tmp_path, step="opt.zero_grad = lambda *a, **k: None"), [], cwd=tmp_path,
                     quiet=True, checks=PRE + ["missing-zero-grad"])
    assert "missing-zero-grad" in bad.codes("error"), str(bad)
    ok = run_script(_tiny(tmp_path), [], cwd=tmp_path, quiet=True, checks=PRE + ["missing-zero-grad", "train-mode",
                                                                                  "eval-mode"])
    assert ok.ok and not ok.findings, str(ok)


@pytest.mark.parametrize("body, bad", [("F.nll_loss(out, y)", True),
                                       ("F.nll_loss(F.log_softmax(out, 1), y)", False)])
def test_functional_loss_inside_a_loss_module_of_the_script_is_seen(tmp_path, body, bad):
    """A parameter-free loss module of the script's own that calls F.nll_loss on the model's raw output is
    the loss (not the cross-entropy the doctor would otherwise assume); the same module applying
    log_softmax first is correct."""
    script = _tiny(tmp_path)
    module = (f"import torch.nn.functional as F\nclass Loss(nn.Module):\n    def forward(self, out, y):\n"
              f"        return {body}\ncrit = Loss()\n")
    text = script.read_text().replace("opt = torch.optim", module + "opt = torch.optim", 1)
    script.write_text(text.replace("nn.functional.cross_entropy(model(xb), yb)", "crit(model(xb), yb)"))
    report = run_script(script, ["3"], cwd=tmp_path, quiet=True, checks=PRE + ["loss-output-mismatch"])
    assert report.crash is None, report.crash
    assert ("loss-output-mismatch" in report.codes("error")) == bad, str(report)


def test_cli_runs_the_script_with_its_arguments_and_exits_1_on_error(tmp_path):
    script = _tiny(tmp_path, after="model.eval()")  # harmless; the bug: train mode never restored below
    script.write_text(script.read_text().replace("    model.train()\n", ""))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    r = subprocess.run([sys.executable, "-m", "cifarlab.doctor", "--budget", "2", str(script), "4"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[train-mode]" in r.stdout and "train.py 4" in r.stdout, r.stdout
    assert r.stdout.rstrip().splitlines()[-1].endswith("check(s) inconclusive"), r.stdout


def test_readme_example_still_gets_its_recorded_report(data_root, monkeypatch, tmp_path):
    """README's example (examples/buggy_train.py) is the script its record was made from, and the doctor
    still reports the recorded errors and warnings (the full report: benchmarks/doctor_example.py)."""
    import hashlib
    import json

    root = Path(__file__).resolve().parents[1]
    rec = json.loads((root / "benchmarks/results/doctor_example.json").read_text())
    script = root / "examples/buggy_train.py"
    assert hashlib.sha256(script.read_bytes()).hexdigest() == rec["script_sha256"], \
        "examples/buggy_train.py changed: run python benchmarks/doctor_example.py"
    assert len(script.read_text().splitlines()) <= 10
    monkeypatch.setenv("CIFARLAB_DATA", str(data_root))
    report = run_script(script, [], cwd=tmp_path, quiet=True, checks=rec["codes"]["error"] + rec["codes"]["warning"],
                        budget_s=4)
    assert sorted(report.codes("error")) == sorted(rec["codes"]["error"]), str(report)
    assert sorted(report.codes("warning")) == sorted(rec["codes"]["warning"]), str(report)
