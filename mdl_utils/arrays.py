"""Your data as arrays: features (embeddings, tabular data, images) and labels, checked once, in one line per defect.

* ``npz:<path>``: a NumPy ``.npz`` file with ``x`` (n, ...) and ``y`` (n,) integer labels 0..K-1, optionally
  ``x_test``/``y_test`` (the test split) and ``classes`` (K names). Usable wherever a dataset is named.
* :func:`register`: a loader ``(split) -> (x, y)`` under a name, in a module named by ``MDL_PLUGINS`` so that the
  command lines, chapter kernels and job workers see it too.
* :func:`checked` turns arrays into float32 inputs and int64 labels, refusing x and y of different lengths,
  labels outside 0..K-1, non-integer labels and non-finite features.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .datafiles import DataUnavailableError

class ArrayError(DataUnavailableError, ValueError):
    """Arrays that cannot be coded as given (lengths, labels, values): a ValueError as well, for the API's users."""


REGISTERED: dict[str, Callable[[str], tuple]] = {}  # name -> loader(split) -> (x, y[, classes])
_NPZ_MEMO: dict[tuple, dict] = {}


def register(name: str, loader: Callable[[str], tuple] | None = None):
    """Register ``loader(split) -> (x, y)`` (or (x, y, classes)) as dataset ``name`` for the splits "train" and
    "test" (raise :class:`DataUnavailableError` for a split it has not); also as a decorator."""
    if not isinstance(name, str) or not name or ":" in name or "-" in name:
        raise ValueError(f"dataset name {name!r}: give a name without ':' or '-'")

    def add(f: Callable[[str], tuple]) -> Callable[[str], tuple]:
        REGISTERED[name] = f
        return f

    return add if loader is None else add(loader)


def is_name(name: str) -> bool:
    return name.startswith("npz:") or name in REGISTERED


def _as_array(a, what: str, where: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except (TypeError, ValueError) as e:
        raise ArrayError(f"{where}: {what} is not an array ({e}); give a NumPy array or a tensor") from None


def checked_inputs(x, where: str) -> torch.Tensor:
    """Float32 inputs (n, ...) of a user array: at least one row of real, finite numbers; else a one-line
    ArrayError that names the defect and the fix."""
    x = _as_array(x, "x", where)
    if x.ndim < 2 or len(x) == 0:
        raise ArrayError(f"{where}: x must be (n, features...) with n >= 1, got {x.shape}; reshape it to one "
                                   "row per sample")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ArrayError(f"{where}: x must hold real numbers, got {x.dtype}")
    finite = np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if not finite.all():
        rows = np.flatnonzero(~finite)
        raise ArrayError(f"{where}: x has non-finite values (NaN or inf) in {len(rows)} row(s), e.g. rows "
                                   f"{rows[:5].tolist()}; remove or impute them")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def checked(x, y, where: str, num_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(float32 x, int64 y, K) of user arrays, K = ``num_classes`` or max(y) + 1; each defect a one-line
    ArrayError that names it and the fix."""
    xs, y = checked_inputs(x, where), _as_array(y, "y", where)
    if y.ndim != 1:
        raise ArrayError(f"{where}: y must be (n,) labels, got shape {y.shape}")
    if len(xs) != len(y):
        raise ArrayError(f"{where}: x has {len(xs)} rows but y has {len(y)} labels; give one label per input")
    if not np.issubdtype(y.dtype, np.integer) and not (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y))):
        raise ArrayError(f"{where}: labels must be integers 0..K-1, got {y.dtype} values such as {y[0]!r}; "
                                   "map the classes to 0..K-1 (np.unique(y, return_inverse=True))")
    y = y.astype(np.int64)
    k = int(num_classes) if num_classes is not None else int(y.max()) + 1
    bad = (y < 0) | (y >= k)
    if bad.any():
        raise ArrayError(f"{where}: labels must lie in 0..{k - 1}, but {int(bad.sum())} do not (e.g. "
                                   f"{int(y[bad][0])}); map the classes to 0..K-1")
    if k < 2:
        raise ArrayError(f"{where}: all labels are 0; a code needs K >= 2 classes")
    return xs, torch.from_numpy(y), k


def _npz(path: Path) -> dict:
    """The arrays of an npz file, memoized per file version."""
    if not path.is_file():
        raise DataUnavailableError(f"{path}: no such .npz file; give npz:<path> of a file with arrays x and y")
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _NPZ_MEMO:
        try:
            with np.load(path, allow_pickle=False) as z:
                _NPZ_MEMO[key] = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise DataUnavailableError(f"{path}: not a readable .npz file ({e})") from None
    return _NPZ_MEMO[key]


def _from_npz(name: str, split: str) -> tuple:
    path = Path(os.path.expanduser(name.split(":", 1)[1])).resolve()
    arrays = _npz(path)
    keys = ("x", "y") if split == "train" else ("x_test", "y_test")
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataUnavailableError(f"{path} has no {' or '.join(missing)}" + (
            "; save the training inputs and labels as x and y" if split == "train" else
            f" (the {split} split); save them as x_test and y_test, or use the train split only"))
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    return arrays[keys[0]], arrays[keys[1]], classes, f"arrays in {path}"


def _from_loader(name: str, split: str) -> tuple:
    out = REGISTERED[name](split)
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise ArrayError(f"the loader of dataset {name!r} must return (x, y) or (x, y, classes), got "
                                   f"{type(out).__name__}")
    x, y, *classes = out
    return x, y, (list(classes[0]) if classes else None), f"registered dataset {name!r}"


def load_split(name: str, split: str) -> tuple:
    """``split`` of an npz or registered dataset as data's loaders give it: (x, y, classes, source, None); the test
    split's labels are checked against the train split's classes."""
    read = _from_npz if name.startswith("npz:") else _from_loader
    x, y, classes, source = read(name, split)
    k = None
    if split != "train":
        _, y_train, train_classes, _ = read(name, "train")
        k = len(train_classes) if train_classes else int(np.max(_as_array(y_train, "y", name))) + 1
        classes = classes or train_classes
    x, y, k = checked(x, y, f"{name} ({split} split)", len(classes) if classes else k)
    return x, y, classes or [str(c) for c in range(k)], source, None


def has_split(name: str, split: str) -> bool:
    """Whether an npz or registered dataset has ``split`` (the test split is optional)."""
    try:
        (_from_npz if name.startswith("npz:") else _from_loader)(name, split)
    except DataUnavailableError:
        return False
    return True


def label(name: str) -> str:
    """An npz dataset's file name without its suffix; a registered one's name."""
    return Path(name.split(":", 1)[1]).stem if name.startswith("npz:") else name
