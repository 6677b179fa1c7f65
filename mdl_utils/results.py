"""Results of codes: the CodeResult record, its JSON store and its provenance.

A stored result lives at ``results/<chapter>/<dataset>-<model>-<scale>.json``
when its code is the chapter's own, and at
``results/<chapter>/<code>/<dataset>-<model>-<scale>.json`` otherwise (e.g. the
held-out Shannon curves of the uniform chapter, the self-switch codes of the
switch chapter). Arrays that belong to a result (per-sample codelengths) sit
beside it as ``<stem>.<name>.npy``. A name that is not file-safe as it stands
(``folder:/data/fashion``) gets a short hash in its file name (:func:`slug`),
so that two datasets never share a file; :func:`load` refuses a file whose
content names another run. Files are written atomically (temp file +
rename) so an interrupted run never leaves half a result. Every file is
validated on load (JSON, schema, required fields and their types, n and K
consistent with ``uniform_bits``); a defect raises :class:`ResultFileError`
naming the file, the field and the fix. docs/ARCHITECTURE.md has the layout.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
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
from typing import Any

import numpy as np
import torch

from . import __version__, numerics
from .bits import uniform_bits

SCHEMA = "mdl_utils.CodeResult/1"
PROJECT_MARKER = "_toc.yml"


class ResultFileError(ValueError):
    """A results file is missing fields, is not JSON, or is not a CodeResult."""


class MissingResultError(ResultFileError):
    """A results file that does not exist (not computed yet), as opposed to a damaged one."""


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
    seed: int = 0
    # Arrays stored beside the JSON file (e.g. "bits": per-sample codelengths); not part of the JSON.
    arrays: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def uniform_bits(self) -> float:
        """n log2 K, the reference every ratio divides by."""
        return uniform_bits(self.n, self.K)

    @property
    def ratio(self) -> float:
        """Compression ratio: codelength / uniform codelength."""
        return self.codelength_bits / self.uniform_bits if self.n else math.nan

    @property
    def kbits(self) -> float:
        return self.codelength_bits / 1000.0

    def to_dict(self, derived: bool = True) -> dict[str, Any]:
        """The JSON form; ``derived`` adds uniform_bits and ratio (computed from valid fields only)."""
        d = {f.name: copy.deepcopy(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "arrays"}
        d = {"schema": SCHEMA, **d}
        return {**d, "uniform_bits": self.uniform_bits, "ratio": self.ratio} if derived else d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CodeResult":
        fields = {f.name for f in dataclasses.fields(cls)} - {"arrays"}
        return cls(**{k: v for k, v in d.items() if k in fields})


# --------------------------------------------------------------------- paths


def results_root(start: str | Path | None = None) -> Path:
    """``MDL_RESULTS`` if set, else ``results/`` of the book project enclosing ``start`` (default: the working
    directory), else ``<start>/results``."""
    env = os.environ.get("MDL_RESULTS")
    if env:
        return Path(env).expanduser()
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return folder / "results"
    return here / "results"


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name. Names that need no change keep it ("mnist",
    "switch-mlp-uniform"); others get 6 hex digits of their SHA-1, so that two names never share a file
    ("folder:/a/b" -> "folder-a-b-4b5b9d", "folder:/a-b" -> "folder-a-b-3dd9ac")."""
    s = re.sub(r"[^A-Za-z0-9_.]+", "-", str(text)).strip("-.")
    if s and s == str(text):
        return s
    return f"{s or 'unnamed'}-{hashlib.sha1(str(text).encode()).hexdigest()[:6]}"


def result_path(chapter: str, dataset: str, model: str, scale: str, root: Path | None = None,
                code: str | None = None, seed: int = 0) -> Path:
    """results/<chapter>/[<code>/]<dataset>-<model>-<scale>[-seed<s>].json.

    The code folder only when code != chapter; the seed suffix only for seeds other than 0.
    """
    folder = (Path(root) if root is not None else results_root()) / slug(chapter)
    if code and code != chapter:
        folder = folder / slug(code)
    tag = f"-seed{int(seed)}" if seed else ""
    return folder / f"{slug(dataset)}-{slug(model)}-{slug(scale)}{tag}.json"


def path_of(result: CodeResult, chapter: str, root: Path | None = None) -> Path:
    """Where ``result`` is stored in ``chapter``'s folder."""
    return result_path(chapter, result.dataset, result.model, result.scale, root, code=result.code, seed=result.seed)


def array_path(path: Path, name: str) -> Path:
    """Where an array belonging to the result at ``path`` is stored: ``<stem>.<name>.npy`` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.{name}.npy")


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


def check_writable(path: str | Path, example: str = "labels.mdl") -> Path:
    """Refuse, before any work, an output file that cannot be written: a directory (the error suggests
    ``<dir>/<example>``), a path under a file, a folder where no file can be created (probed with a temporary
    file, removed at once). Returns ``path``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a file name, e.g. {path / example}")
    folder = next(p for p in (path.parent, *path.parent.parents) if p.exists())
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {folder} is a file, not a folder; give another path")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"cannot write {path}: no file can be created in {folder} ({e.strerror}); give a path "
                         f"in a writable folder") from None
    return path


def check_store(root: str | Path | None = None) -> Path:
    """The results store ``root`` (default :func:`results_root`), refused before any work, in one line, when it is
    a file or when no file can be created in it (or in the folder that would hold it)."""
    root = Path(root) if root is not None else results_root()
    folder = next(p for p in (root, *root.parents) if p.exists())
    why = None if folder.is_dir() else f"{folder} is a file, not a folder"
    if why is None:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as e:
            why = f"no file can be created in {folder} ({e.strerror})"
    if why:
        named = " (MDL_RESULTS)" if os.environ.get("MDL_RESULTS") else ""
        raise ValueError(f"the results store {root}{named} cannot hold results: {why}; point MDL_RESULTS at a "
                         "writable folder (created if missing)")
    return root


def save_array(path: Path, array: np.ndarray, dtype=np.float32) -> Path:
    """Store ``array`` at ``path`` (.npy) through a temp file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    try:
        np.save(tmp, np.asarray(array, dtype=dtype))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save(result: CodeResult, chapter: str, root: Path | None = None) -> Path:
    """Store ``result`` (validated first) and its ``arrays`` under results/<chapter>/, atomically."""
    path = path_of(result, chapter, root)
    problem = validation_error(result.to_dict(derived=False))
    if problem:
        raise ResultFileError(f"refusing to write {path}: {problem}")
    payload = result.to_dict()
    for name, array in result.arrays.items():
        save_array(array_path(path, name), array)
    written = write_json_atomic(path, payload)
    log_run(result, root)
    return written


# --------------------------------------------------------------- the tuning log

TUNING_LOG = "tuning_log.jsonl"  # results/tuning_log.jsonl: one line per result ever stored, never rewritten


def log_entry(result: CodeResult) -> dict[str, Any]:
    """One line of the tuning log: which configuration (code, dataset, run, scale, seed) gave which codelength,
    with which code version, commit and start time."""
    prov = result.provenance
    return {"code": result.code, "dataset": result.dataset, "model": result.model, "scale": result.scale,
            "seed": result.seed, "codelength_bits": result.codelength_bits, "code_version": prov.get("code_version"),
            "git_commit": prov.get("git_commit"), "started": prov.get("started")}


def log_run(result: CodeResult, root: Path | None = None) -> None:
    """Append ``result`` to the tuning log of the results store (one line, one write: runs of several processes
    never mix). The log keeps every configuration tried on the labels, also after its result is replaced or
    deleted, so that picking the best of them is charged for all (tables.paper.choice_charge). Smoke runs, which
    the book never reports (and git ignores), are not logged."""
    if result.scale == "smoke":
        return
    path = (Path(root) if root is not None else results_root()) / TUNING_LOG
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(log_entry(result), sort_keys=True) + "\n")


def tuning_log(root: Path | None = None) -> list[dict[str, Any]]:
    """Every line of the store's tuning log (none when it has none)."""
    path = (Path(root) if root is not None else results_root()) / TUNING_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def log_stored(root: Path | None = None) -> int:
    """Append to the tuning log every stored result it lacks (a result copied in from another store, or stored
    before the log began); returns how many were added."""
    logged = {json.dumps(e, sort_keys=True) for e in tuning_log(root)}
    missing = [r for r in stored(root=root)
               if r.scale != "smoke" and json.dumps(log_entry(r), sort_keys=True) not in logged]
    for r in missing:
        log_run(r, root)
    return len(missing)


def tried(code: str, dataset: str, scale: str, root: Path | None = None) -> set[tuple[str, int]]:
    """The configurations (run, seed) of ``code`` on ``dataset`` at ``scale`` in the tuning log."""
    return {(e["model"], e["seed"]) for e in tuning_log(root)
            if (e["code"], e["dataset"], e["scale"]) == (code, dataset, scale)}


# --------------------------------------------------------------- validation

# Codes renamed since the first results were written (old name -> chapter's name).
LEGACY_CODE_NAMES = {"subspace": "intrinsic_dimension", "compression": "network_compression",
                     "shannon": "shannon_heldout"}
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "code": (str,), "dataset": (str,), "model": (str,), "scale": (str,), "n": (int,), "K": (int,),
    "codelength_bits": (int, float), "test_accuracy": (int, float, type(None)), "parts": (dict,),
    "curves": (dict,), "params": (dict,), "provenance": (dict,), "note": (str,), "seed": (int,),
}


def validation_error(d: Any) -> str | None:
    """What is wrong with a CodeResult dict (first problem found, naming the field), or None."""
    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        return f"not a CodeResult file (expected schema {SCHEMA!r})"
    required = [f.name for f in dataclasses.fields(CodeResult)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [k for k in required if k not in d]
    if missing:
        return f"CodeResult lacks {', '.join(missing)}"
    for key, types in FIELD_TYPES.items():
        if key in d and (not isinstance(d[key], types) or isinstance(d[key], bool)):
            return f"field {key!r} is {type(d[key]).__name__} {d[key]!r:.40}, expected {' or '.join(t.__name__ for t in types)}"
    if d["n"] < 1 or d["K"] < 2:
        return f"n = {d['n']} and K = {d['K']} must be >= 1 and >= 2"
    if not math.isfinite(d["codelength_bits"]) or d["codelength_bits"] < 0:
        return f"field 'codelength_bits' is {d['codelength_bits']!r}, expected a finite number >= 0"
    for key in ("parts",):
        bad = [k for k, v in d[key].items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
        if bad:
            return f"{key}[{bad[0]!r}] is {d[key][bad[0]]!r:.40}, expected a number of bits"
    if "uniform_bits" in d and not math.isclose(d["uniform_bits"], uniform_bits(d["n"], d["K"]), rel_tol=1e-9):
        return f"uniform_bits {d['uniform_bits']!r} is not n log2 K = {uniform_bits(d['n'], d['K'])!r}"
    return None


def load_file(path: str | Path) -> CodeResult:
    """Read and validate one CodeResult JSON file; any defect raises ResultFileError naming the file (and, in a
    notebook kernel such as a book build's, also writes that line to the kernel's own stderr: the build log)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise MissingResultError(f"{path}: no such results file; compute it with python -m mdl_utils.run") from None
    try:
        d = json.loads(text)
        problem = validation_error(d)
    except json.JSONDecodeError as e:
        problem = f"not valid JSON ({e.msg} at line {e.lineno})"
    if problem:
        raise _damaged(path, problem)
    d["code"] = LEGACY_CODE_NAMES.get(d["code"], d["code"])
    result = CodeResult.from_dict(d)
    _check_per_sample_bits(path, result)
    return result


def _check_per_sample_bits(path: Path, result: CodeResult) -> None:
    """A result stored with its per-sample codelengths (``<stem>.bits.npy``): their sum must be its codelength (to
    the float32 rounding of the stored values, 1e-6 relative); a hand-edited number is a ResultFileError."""
    bits_file = array_path(path, "bits")
    if not bits_file.is_file():
        return
    try:
        total = math.fsum(np.load(bits_file).astype(np.float64).tolist())
    except (OSError, ValueError) as e:
        raise _damaged(bits_file, f"not a readable array ({e})") from None
    if abs(total - result.codelength_bits) > 1e-6 * max(abs(result.codelength_bits), 1.0) + 1e-3:
        raise _damaged(path, f"codelength_bits {result.codelength_bits:,.4f} disagrees with the per-sample bits "
                             f"stored beside it in {bits_file.name} (sum {total:,.4f})")


def _damaged(path: Path, problem: str) -> ResultFileError:
    """The error for a damaged results file: the file, the problem and the fix in one line."""
    error = ResultFileError(f"{path}: {problem}; delete {path} and recompute it (python -m mdl_utils.run ...), "
                            f"or restore it with git")
    if in_kernel() and sys.__stderr__ is not None:
        print(f"error: {error}", file=sys.__stderr__, flush=True)  # the kernel's stderr is the book build's log
    return error


def in_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (a book build, nbval, papermill), whose sys.stderr goes to the
    notebook and whose process stderr to the log of what runs it."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def load(chapter: str, dataset: str, model: str, scale: str, root: Path | None = None,
         code: str | None = None, seed: int = 0) -> CodeResult:
    """The stored result of ``model`` on ``dataset`` at ``scale``; ResultFileError when the file holds another
    run (copied or renamed by hand), since its name then says something its numbers are not."""
    path = result_path(chapter, dataset, model, scale, root, code=code, seed=seed)
    result = load_file(path)
    asked = {"dataset": dataset, "model": model, "scale": scale, "seed": seed, **({"code": code} if code else {})}
    wrong = [f"{key} {getattr(result, key)!r} (not {value!r})" for key, value in asked.items()
             if getattr(result, key) != value]
    if wrong:
        raise _damaged(path, f"the file holds the result of another run: {', '.join(wrong)}")
    return result


def load_array(chapter: str, result: CodeResult, name: str, root: Path | None = None) -> np.ndarray:
    """An array stored beside ``result`` (e.g. ``"bits"``: per-sample codelengths); ResultFileError if missing."""
    path = array_path(path_of(result, chapter, root), name)
    if not path.is_file():
        raise ResultFileError(f"{path}: missing (the {name} array of {result.dataset}/{result.model} at "
                              f"scale={result.scale}); recompute the {chapter} result")
    return np.load(path)


def stored(chapter: str | None = None, root: Path | None = None, code: str | None = None) -> list[CodeResult]:
    """Stored CodeResults, sorted by path: of one code folder of a chapter (``code``), of a chapter's own code
    (``chapter`` alone), or every result under the results root (neither)."""
    root = Path(root) if root is not None else results_root()
    if chapter is None:
        paths = sorted(p for p in [*root.glob("*/*.json"), *root.glob("*/*/*.json")]
                       if not any(part.startswith(".") for part in p.relative_to(root).parts))
    else:
        base = root / slug(chapter)
        paths = sorted((base / slug(code) if code and code != chapter else base).glob("*.json"))
    return [load_file(p) for p in paths]


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
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    threads = torch.get_num_threads()
    return (f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {threads} "
            f"thread{'s' if threads != 1 else ''}")


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.started`` (ISO UTC) and ``sw.seconds``."""

    def __enter__(self) -> "Stopwatch":
        self.started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()
        self.seconds = math.nan
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._t0


def provenance(*, device: Any, stopwatch: Stopwatch, data_source: str, precision: str = "fp32",
               **extra: Any) -> dict[str, Any]:
    """Where a number came from: code version, packages, device, numerics and CPU (:mod:`mdl_utils.numerics`:
    whether the bits are the same on any x86-64 CPU of its vendor, or this CPU's own), precision, start time, wall seconds,
    data."""
    commit, dirty = git_commit()
    return {
        "git_commit": commit,
        "git_dirty": dirty,  # files of mdl_utils that differed from the commit ([] = clean)
        "mdl_utils": __version__,
        "code_version": numerics.CODE_VERSION,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "device": device_description(device),
        "numerics": numerics.environment(device),
        "cpu": numerics.cpu(),
        "precision": precision,
        "started": stopwatch.started,
        "wall_seconds": round(stopwatch.seconds, 3),
        "data_source": data_source,
        **extra,
    }
