"""The doctor's own mechanics: global state left as found, deterministic verdicts, sampler-aware identity,
in-place-safe activation records, budgets that end in inconclusive info, and docs rendered from the checks."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, SubsetRandomSampler
from torchvision import transforms as T

from cifarlab.doctor import CHECKS, diagnose, docs
from cifarlab.doctor.core import GlobalState, flush_denormal_enabled
from cifarlab.doctor.limits import all_limits
from doctor_corpus.common import CifarDS, plain

PRE = ["shape-mismatch", "step-error"]


def _pipe(c10, net=None, train_tf=None, eval_tf=None, n=256, **kw):
    net = net or nn.Sequential(nn.Flatten(), nn.Linear(3072, 64), nn.ReLU(), nn.Linear(64, 10))
    train = CifarDS(c10.train_x[:n], c10.train_y[:n], train_tf or plain())
    test = CifarDS(c10.test_x[:n], c10.test_y[:n], eval_tf or plain())
    return dict(model=net, loss_fn=nn.CrossEntropyLoss(), optimizer=torch.optim.Adam(net.parameters(), 1e-3),
                train_loader=DataLoader(train, batch_size=32, shuffle=True),
                eval_loader=DataLoader(test, batch_size=64), num_classes=10, **kw)


def test_flush_denormal_is_measured_and_restored(c10):
    before = flush_denormal_enabled()
    try:
        for state in (True, False):
            torch.set_flush_denormal(state)
            assert flush_denormal_enabled() is state
            diagnose(**_pipe(c10), checks=["input-normalization"])
            assert flush_denormal_enabled() is state  # not forced to False (issue 10, defect 6)
    finally:
        torch.set_flush_denormal(before)


def test_cuda_rng_state_is_captured_and_restored(monkeypatch):
    calls = {}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: ["state-of-gpu-0"])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: calls.setdefault("set", s))
    GlobalState.capture().restore()
    assert calls["set"] == ["state-of-gpu-0"]


def test_rng_states_unchanged(c10):
    import random

    import numpy as np
    pipe = _pipe(c10)  # building the model draws from the RNG: before the snapshot
    torch.manual_seed(123)
    np.random.seed(5)
    random.seed(7)
    before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    diagnose(**pipe, checks=PRE + ["eval-augmented"])
    assert torch.equal(before[0], torch.get_rng_state())
    assert (before[1] == np.random.get_state()[1]).all() and before[2] == random.getstate()


def test_flip_only_eval_transform_found_whatever_the_seed(c10):
    flip = T.Compose([T.RandomHorizontalFlip(), T.ToTensor()])
    for seed in range(10):
        torch.manual_seed(seed)
        report = diagnose(**_pipe(c10, eval_tf=flip), checks=["eval-augmented"])
        assert "eval-augmented" in report.codes("error"), (seed, str(report))


def test_disjoint_samplers_of_one_dataset_are_not_eval_on_train(c10):
    ds = CifarDS(c10.train_x[:400], c10.train_y[:400], plain())
    p = _pipe(c10)
    p["train_loader"] = DataLoader(ds, batch_size=32, sampler=SubsetRandomSampler(range(100, 400)))
    p["eval_loader"] = DataLoader(ds, batch_size=32, sampler=SubsetRandomSampler(range(100)))
    assert "eval-on-train" not in diagnose(**p, checks=["eval-on-train"]).codes()
    p["eval_loader"] = DataLoader(ds, batch_size=32, shuffle=False)  # forgot the sampler: all training images
    assert "eval-on-train" in diagnose(**p, checks=["eval-on-train"]).codes("error")


def test_inplace_relu_between_linears_is_not_collapse(c10):
    net = nn.Sequential(nn.Flatten(), nn.Linear(3072, 128), nn.ReLU(inplace=True), nn.Dropout(),
                        nn.Linear(128, 128), nn.ReLU(inplace=True), nn.Dropout(), nn.Linear(128, 10))
    report = diagnose(**_pipe(c10, net=net), checks=PRE + ["linear-collapse"])
    assert "linear-collapse" not in report.codes(), str(report)
    collapsed = nn.Sequential(nn.Flatten(), nn.Linear(3072, 128), nn.BatchNorm1d(128), nn.Dropout(), nn.Linear(128, 10))
    assert "linear-collapse" in diagnose(**_pipe(c10, net=collapsed), checks=PRE + ["linear-collapse"]).codes("error")


class NoReturn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3072, 10)

    def forward(self, x):
        self.fc(x.flatten(1))  # forgot `return`


def test_model_that_returns_none_is_an_error_and_stops_model_checks(c10):
    report = diagnose(**_pipe(c10, net=NoReturn()))
    assert "shape-mismatch" in report.codes("error") and not report.ok, str(report)
    assert "cannot-overfit" not in report.checks_run


def test_out_of_budget_is_inconclusive_info_not_a_warning(c10):
    report = diagnose(**_pipe(c10), checks=PRE + ["cannot-overfit", "diverges"], budget_s=0)
    assert report.ok and not report.codes("warning"), str(report)
    assert {"cannot-overfit", "diverges"} <= report.codes("info")
    assert all(f.inconclusive for f in report.findings)
    assert str(report).rstrip().splitlines()[-1] == "0 error(s), 0 warning(s), 2 check(s) inconclusive"


def test_docs_are_rendered_from_the_checks():
    text = docs.render()
    assert (docs.Path(docs.__file__).resolve().parents[3] / "docs" / "doctor.md").read_text() == text, \
        "docs/doctor.md is out of date: run python -m cifarlab.doctor.docs"
    for code, check in CHECKS.items():
        assert f"#### {code}" in text and check.fix and "\n" not in check.fix
    for name in all_limits():
        assert f"`{name}`" in text


def test_doctor_explain_prints_a_check_and_its_limits(capsys):
    from cifarlab.cli import main

    assert main(["doctor", "explain", "diverges"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#### diverges") and "RUN_BLOWUP = 3" in out and "fix:" not in out
    with pytest.raises(SystemExit, match="no doctor check 'nope'.*train-mode"):
        main(["doctor", "explain", "nope"])


def test_brief_report_is_one_line_per_finding_most_severe_first():
    from cifarlab.doctor.core import Finding, Report

    r = Report(findings=[Finding("duplicates", "info", "10 copies", "fix a"),
                         Finding("train-mode", "error", "eval mode in training", "fix b")],
               checks_run=["duplicates", "train-mode"], time_s=1.25)
    lines = r.brief().splitlines()
    assert lines[0] == "cifarlab doctor: 2 checks in 1.2s"
    assert lines[1].startswith("error   [train-mode] eval mode") and lines[2].startswith("info    [duplicates]")
    assert lines[-1] == r.summary() and "fix" not in r.brief()
