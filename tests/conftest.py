from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def real_data_root() -> Path | None:
    """The MDL_DATA folder when it holds the real datasets, else None (those tests skip)."""
    env = os.environ.get("MDL_DATA")
    return Path(env) if env and Path(env).is_dir() else None


needs_data = pytest.mark.skipif(real_data_root() is None, reason="set MDL_DATA to run tests on real MNIST/CIFAR-10")


@pytest.fixture
def results_tmp(tmp_path, monkeypatch):
    """A scratch results store, so tests never touch the committed results/."""
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def one_torch_thread():
    """One torch thread (much faster than two on a loaded 2-core CPU); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
