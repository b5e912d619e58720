"""Shared fixtures: the real CIFAR data (materialized from ../shared/data when CIFARLAB_DATA is unset)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MATERIALIZE = ROOT.parent / "shared" / "data" / "materialize"


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    env = os.environ.get("CIFARLAB_DATA")
    if env and (Path(env) / "cifar-100-python" / "train").is_file():
        return Path(env)
    if not MATERIALIZE.exists():
        pytest.fail("no CIFAR data: set CIFARLAB_DATA to a folder with cifar-10-batches-py/ and "
                    "cifar-100-python/, or provide ../shared/data/materialize")
    root = tmp_path_factory.mktemp("cifar")
    subprocess.run([sys.executable, str(MATERIALIZE), str(root)], check=True, capture_output=True)
    os.environ["CIFARLAB_DATA"] = str(root)
    return root


@pytest.fixture(scope="session")
def c10(data_root):
    from cifarlab import data

    return data.load("cifar10", data_root, allow_download=False)


@pytest.fixture(scope="session")
def c100(data_root):
    from cifarlab import data

    return data.load("cifar100", data_root, allow_download=False)
