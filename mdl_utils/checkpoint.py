"""Resumable runs: a checkpoint file that is only ever resumed for the very same computation.

A long code (the prequential code trains one model per block) writes its
finished units to ``results/<chapter>/.partial/<name>.json`` after each one. The
file carries a fingerprint of everything that determines the numbers: the
agreed settings, a SHA-256 of the inputs and of the labels, the transmission
order, and the code version. A rerun resumes only when the fingerprint matches;
otherwise it says so in one line and starts afresh, so that a changed dataset
(same size, a few labels moved) can never be resumed into a wrong number.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import numerics
from .results import write_json_atomic


def digest(array: torch.Tensor | np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of an array's bytes (dtype and shape included)."""
    a = np.ascontiguousarray(array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def fingerprint(settings: dict[str, Any], dataset, device="cpu") -> str:
    """SHA-1 (16 hex digits) of the settings, the dataset (name, n, order seed, inputs and labels digests), the
    version of the numbers (numerics.CODE_VERSION) and what else changes them on ``device`` (numerics.environment:
    a run under portable numerics never resumes one under native numerics, nor one from another GPU)."""
    key = {"settings": settings, "dataset": dataset.name, "n": dataset.n, "order_seed": dataset.seed,
           "inputs": digest(dataset.x), "labels": digest(dataset.y), "code_version": numerics.CODE_VERSION,
           "environment": numerics.environment(device)}
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpoint:
    """Finished units (dicts keyed by ``key``) of one run, kept in a JSON file (None: in memory only), with the
    run's ``total`` number of units and a ``label`` (e.g. "mnist/mlp") for progress messages."""

    def __init__(self, path: str | Path | None, fingerprint_: str, key: str = "t_start", total: int | None = None,
                 label: str | None = None):
        self.path = Path(path) if path else None
        self.fingerprint, self.key, self.units, self.total, self.label = fingerprint_, key, {}, total, label
        if self.path is not None and self.path.is_file():
            state = read_state(self.path)
            if state.get("fingerprint") == fingerprint_:
                self.units = {u[key]: u for u in state.get("units", [])}
                print(f"resuming after {describe(self.path)} ({self.path})")
            else:
                print(f"checkpoint {self.path} belongs to other settings, data or code; starting afresh")

    def __contains__(self, k) -> bool:
        return k in self.units

    def __getitem__(self, k) -> dict:
        return self.units[k]

    def add(self, unit: dict) -> None:
        """Record a finished unit and write the file atomically."""
        self.units[unit[self.key]] = unit
        if self.path is not None:
            units = [self.units[k] for k in sorted(self.units)]
            write_json_atomic(self.path, {"fingerprint": self.fingerprint, "label": self.label, "total": self.total,
                                          "units": units})

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def read_state(path: Path) -> dict:
    """A checkpoint file's content; {} when it is unreadable or not a JSON object (then it is never resumed)."""
    try:
        state = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def describe(path: Path, labels: Mapping[str, str] | None = None) -> str:
    """'block s of S of <dataset>/<model>' of a checkpoint file: its finished units, its total and its label
    (else ``labels[file stem]``, else the stem)."""
    state = read_state(path)
    name = state.get("label") or (labels or {}).get(path.stem) or path.stem
    return f"block {len(state.get('units', []))} of {state.get('total') or '?'} of {name}"


PARTIAL = ".partial"  # results/<chapter>/.partial/: the checkpoints of the runs in progress


def path_for(result_file: str | Path) -> Path:
    """The checkpoint of the run whose result will be ``result_file``: the same name under ``.partial/``."""
    result_file = Path(result_file)
    return result_file.parent / PARTIAL / result_file.name


def pending(folder: str | Path, labels: Mapping[str, str]) -> list[str]:
    """:func:`describe` of the checkpoints in ``folder/.partial`` that belong to runs named in ``labels``."""
    return [describe(p, labels) for p in sorted(Path(folder).glob(f"{PARTIAL}/*.json")) if p.stem in labels]


def interruption_message(folder: str | Path, since: float, labels: Mapping[str, str] | None = None) -> str:
    """One line for a chapter run interrupted (Ctrl-C) after ``since`` (a time.time()), from what it left in its
    results ``folder`` (``results/<chapter>``): the newest checkpoint written since then (``.partial/*.json``),
    else the results stored since then, else that nothing was stored."""
    folder = Path(folder)
    fresh = [p for p in folder.glob(f"{PARTIAL}/*.json") if p.stat().st_mtime >= since]
    if fresh:
        newest = max(fresh, key=lambda p: p.stat().st_mtime)
        return f"interrupted after {describe(newest, labels)}; rerun the same command to resume"
    stored = sorted((p for p in [*folder.glob("*.json"), *folder.glob("*/*.json")]
                     if PARTIAL not in p.parts and p.stat().st_mtime >= since), key=lambda p: p.stat().st_mtime)
    if stored:
        return (f"interrupted after storing {len(stored)} result(s), the last {stored[-1]}; rerun the same command "
                f"to compute the chapter")
    return "interrupted; nothing was stored"
