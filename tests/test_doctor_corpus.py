"""The doctor on pipelines modelled on public code (tests/doctor_corpus/): every diagnosed bug is reported
as an error with its code, and no known-correct pipeline gets an error."""
from __future__ import annotations

import pytest
import torch

import doctor_corpus as corpus
from doctor_corpus.common import Data
from cifarlab.doctor import diagnose
from cifarlab.doctor.core import CHECKS

BUGGY = [pytest.param(n, marks=pytest.mark.xfail(reason=corpus.load(n).KNOWN_MISS, run=False))
         if getattr(corpus.load(n), "KNOWN_MISS", None) else n for n in corpus.NAMES if n.startswith("b_")]
CORRECT = [n for n in corpus.NAMES if n.startswith("c_")]


@pytest.fixture(scope="module")
def d(c10, c100):
    return Data(c10, c100)


def _diagnose(name, d, **kw):
    torch.manual_seed(0)
    return diagnose(**corpus.load(name).pipeline(d), **kw)


def test_corpus_size_and_provenance():
    assert len(BUGGY) >= 20 and len(CORRECT) >= 6
    misses = [n for n in corpus.NAMES if getattr(corpus.load(n), "KNOWN_MISS", None)]
    assert len(misses) <= 0.05 * len(BUGGY), misses  # the target: >= 95% caught
    for name in corpus.NAMES:
        m = corpus.load(name)
        assert m.SOURCE.startswith("https://") and m.__doc__, name
        assert (m.EXPECT is None) == (m.BUG is None) == name.startswith("c_"), name
        assert m.EXPECT is None or m.EXPECT in CHECKS, name


@pytest.mark.parametrize("name", BUGGY)
def test_real_bug_is_caught_with_its_code(name, d):
    # the checks this bug needs and a smaller budget keep the suite fast (every check at full budget:
    # benchmarks/doctor_corpus.py); the correct pipelines below get every check with a short budget
    report = _diagnose(name, d, budget_s=10, checks=["shape-mismatch", "step-error", corpus.load(name).EXPECT])
    assert corpus.load(name).EXPECT in report.codes("error"), str(report)
    assert not report.ok
    for f in report.findings:
        assert f.fix and "\n" not in f.fix and f.docs == f"cifarlab doctor explain {f.code}", f


@pytest.mark.parametrize("name", CORRECT)
def test_known_correct_pipeline_has_no_error(name, d):
    report = _diagnose(name, d, budget_s=6)  # every check; the full budget: benchmarks/doctor_corpus.py
    assert report.ok, str(report)
