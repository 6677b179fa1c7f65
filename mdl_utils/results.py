"""Results of codes: the CodeResult record, its JSON store and its provenance.

A stored result lives at ``results/<chapter>/<dataset>-<model>-<scale>.json``
(DESIGN.md). Files are written atomically (temp file + rename) so an
interrupted run never leaves half a result; a file that does not parse, or that
is not a CodeResult, raises :class:`ResultFileError` naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from . import __version__

SCHEMA = "mdl_utils.CodeResult/1"
PROJECT_MARKER = "_toc.yml"


class ResultFileError(ValueError):
    """A results file is missing fields, is not JSON, or is not a CodeResult."""


@dataclasses.dataclass
class CodeResult:
    """The outcome of one code on one dataset.

    ``codelength_bits`` is the full description length L(y | x) in bits, model
    cost included; ``parts`` splits it (e.g. model bits, data bits); ``curves``
    holds series for figures; ``params`` every setting that changes the number;
    ``provenance`` where and when it was computed (see :func:`provenance`).
    """

    code: str
    dataset: str
    model: str
    scale: str
    n: int
    K: int
    codelength_bits: float
    test_accuracy: float | None = None
    parts: dict[str, float] = dataclasses.field(default_factory=dict)
    curves: dict[str, Any] = dataclasses.field(default_factory=dict)
    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    note: str = ""

    @property
    def uniform_bits(self) -> float:
        """n log2 K, the reference every ratio divides by."""
        from .codes.uniform import uniform_bits

        return uniform_bits(self.n, self.K)

    @property
    def ratio(self) -> float:
        """Compression ratio: codelength / uniform codelength."""
        return self.codelength_bits / self.uniform_bits if self.n else math.nan

    @property
    def kbits(self) -> float:
        return self.codelength_bits / 1000.0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d = {"schema": SCHEMA, **d, "uniform_bits": self.uniform_bits, "ratio": self.ratio}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodeResult":
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in fields})


# --------------------------------------------------------------------- paths


def results_root() -> Path:
    """``MDL_RESULTS`` if set, else ``results/`` of the enclosing book project, else ``./results``."""
    env = os.environ.get("MDL_RESULTS")
    if env:
        return Path(env).expanduser()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder / "results"
    return here / "results"


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name ("folder:/a/b" -> "folder-a-b")."""
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-.")
    return s or "unnamed"


def result_path(chapter: str, dataset: str, model: str, scale: str, root: Path | None = None) -> Path:
    root = Path(root) if root is not None else results_root()
    return root / slug(chapter) / f"{slug(dataset)}-{slug(model)}-{slug(scale)}.json"


# ------------------------------------------------------------------ storage


def write_json_atomic(path: Path, payload: Any) -> Path:
    """Write JSON to ``path`` through a temp file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=1, sort_keys=False, allow_nan=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are for everyone to read
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(result: CodeResult, chapter: str, root: Path | None = None) -> Path:
    """Store ``result`` at results/<chapter>/<dataset>-<model>-<scale>.json, atomically."""
    return write_json_atomic(result_path(chapter, result.dataset, result.model, result.scale, root), result.to_dict())


def load_file(path: str | Path) -> CodeResult:
    """Read one CodeResult JSON file; any defect raises ResultFileError naming the file."""
    path = Path(path)
    fix = f"delete {path} and recompute it (python -m mdl_utils.run ...), or restore it with git"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ResultFileError(f"{path}: no such results file; compute it with python -m mdl_utils.run") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise ResultFileError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); {fix}") from None
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise ResultFileError(f"{path}: not a CodeResult file (expected schema {SCHEMA!r}); {fix}")
    required = [f.name for f in dataclasses.fields(CodeResult) if f.default is dataclasses.MISSING]
    missing = [k for k in required if k not in d]
    if missing:
        raise ResultFileError(f"{path}: CodeResult lacks {', '.join(missing)}; {fix}")
    return CodeResult.from_dict(d)


def load(chapter: str, dataset: str, model: str, scale: str, root: Path | None = None) -> CodeResult:
    return load_file(result_path(chapter, dataset, model, scale, root))


def stored(chapter: str | None = None, root: Path | None = None) -> list[CodeResult]:
    """Every CodeResult stored under the results root (or one chapter of it), sorted by path."""
    root = Path(root) if root is not None else results_root()
    base = root / slug(chapter) if chapter else root
    pattern = "*.json" if chapter else "*/*.json"
    return [load_file(p) for p in sorted(base.glob(pattern))]


def load_or_compute(
    chapter: str,
    dataset: str,
    model: str,
    scale: str,
    compute: Callable[[], CodeResult],
    *,
    recompute: bool,
    rerun_command: str,
    root: Path | None = None,
) -> CodeResult | None:
    """Compute and store (``recompute=True``), else load the stored result.

    Never trains when ``recompute`` is false: a missing result prints where it
    should be and the command that computes it, and returns None.
    """
    path = result_path(chapter, dataset, model, scale, root)
    if recompute:
        result = compute()
        save(result, chapter, root)
        return result
    if path.exists():
        return load_file(path)
    print(f"Not computed yet: {dataset} / {model} at scale={scale} ({path.name}).\nCompute it with:\n  {rerun_command}")
    return None


# --------------------------------------------------------------- provenance


def git_commit() -> tuple[str | None, list[str] | None]:
    """(commit, files of mdl_utils modified since it) of the checkout holding mdl_utils; (None, None) outside git."""
    where = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return commit, sorted(line[3:] for line in status.splitlines() if line.strip())
    except (OSError, subprocess.SubprocessError):
        return None, None


def device_description(device: Any) -> str:
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads"


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.started`` (ISO UTC) and ``sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def provenance(*, device: Any, stopwatch: Stopwatch, data_source: str, **extra: Any) -> dict[str, Any]:
    """Where a number came from: code version, packages, device, start time, wall seconds, data."""
    import numpy
    import torch

    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,  # files of mdl_utils that differed from the commit ([] = clean)
        "mdl_utils": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device_description(device),
        "started": stopwatch.started,
        "wall_seconds": round(stopwatch.seconds, 3),
        "data_source": data_source,
        **extra,
    }
