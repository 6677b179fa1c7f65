from __future__ import annotations

import os
from pathlib import Path

import pytest

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
