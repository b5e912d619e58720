"""Shared fixtures.

- `synthetic_root`: a tiny generated CIFAR-10 and CIFAR-100 in the official "python version" layout
  (a few hundred images each, class-dependent colours so a model can learn them). Unit tests use it;
  it loads through the normal data path and is reported "unverified".
- `data_root`, `c10`, `c100`: the genuine datasets ($CIFARLAB_DATA, else materialized from
  ../shared/data). Tests that use them are integration tests: marked `integration` automatically, and
  skipped when the genuine data is not available.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MATERIALIZE = ROOT.parent / "shared" / "data" / "materialize"

# images per split of the synthetic sets: (train per batch file, test)
SYNTH_C10 = (60, 100)  # 5 batch files -> 300 training images, 10 classes
SYNTH_C100 = (400, 200)  # one file, 100 classes


def pytest_collection_modifyitems(items):
    for item in items:
        if "data_root" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.integration)


def _images(labels: np.ndarray, colours: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3072) uint8: a per-class colour (colours: (C, 3)) and a bright square, plus noise."""
    x = rng.normal(0, 24, size=(len(labels), 3, 32, 32)) + colours[labels][:, :, None, None]
    corner = labels % 4  # where the class's square sits
    for i, c in enumerate(corner):
        r, q = divmod(int(c), 2)
        x[i, :, r * 16 + 4:r * 16 + 12, q * 16 + 4:q * 16 + 12] += 60
    return x.clip(0, 255).astype(np.uint8).reshape(len(labels), 3072)


def _dump(path: Path, d: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump({k.encode(): v for k, v in d.items()}, f, protocol=2)


def write_synthetic_cifar(root: Path, seed: int = 0) -> Path:
    """Write cifar-10-batches-py/ and cifar-100-python/ with generated images under `root`."""
    rng = np.random.default_rng(seed)
    colours10, colours100 = rng.integers(40, 216, size=(10, 3)), rng.integers(40, 216, size=(100, 3))
    c10 = root / "cifar-10-batches-py"
    c10.mkdir(parents=True)
    per_batch, n_test = SYNTH_C10
    for i in range(1, 6):
        y = rng.integers(0, 10, per_batch)
        _dump(c10 / f"data_batch_{i}", {"data": _images(y, colours10, rng), "labels": y.tolist()})
    y = np.arange(n_test) % 10
    _dump(c10 / "test_batch", {"data": _images(y, colours10, rng), "labels": y.tolist()})
    _dump(c10 / "batches.meta", {"label_names": [f"class{i}" for i in range(10)]})
    c100 = root / "cifar-100-python"
    c100.mkdir(parents=True)
    n_train, n_test = SYNTH_C100
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 100
        _dump(c100 / split, {"data": _images(y, colours100, rng), "fine_labels": y.tolist(),
                             "coarse_labels": (y // 5).tolist()})
    _dump(c100 / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                          "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return root


def _load(name: str, root: Path):
    from cifarlab import data

    return data.load(name, root, allow_download=False)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return write_synthetic_cifar(tmp_path_factory.mktemp("synthetic-cifar"))


@pytest.fixture(scope="session")
def syn10(synthetic_root):
    return _load("cifar10", synthetic_root)


@pytest.fixture(scope="session")
def syn100(synthetic_root):
    return _load("cifar100", synthetic_root)


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    env = os.environ.get("CIFARLAB_DATA")
    if env and (Path(env) / "cifar-100-python" / "train").is_file():
        return Path(env)
    if not MATERIALIZE.exists():
        pytest.skip("integration test: no genuine CIFAR data (set CIFARLAB_DATA to a folder with "
                    "cifar-10-batches-py/ and cifar-100-python/, or provide ../shared/data/materialize)")
    root = tmp_path_factory.mktemp("cifar")
    subprocess.run([sys.executable, str(MATERIALIZE), str(root)], check=True, capture_output=True)
    os.environ["CIFARLAB_DATA"] = str(root)
    return root


@pytest.fixture(scope="session")
def c10(data_root):
    return _load("cifar10", data_root)


@pytest.fixture(scope="session")
def c100(data_root):
    return _load("cifar100", data_root)
