"""Image folders as datasets: ``folder:<path>``, a torchvision ImageFolder tree, ``<path>/<split>/<class>/*`` or
``<path>/<class>/*``.

At least two classes (a class folder without images is no class); both splits are labelled by the train split's
classes. Hidden files (macOS ``._*`` included) are not samples; images are greyscale when every file is (a grey
one among colour ones gets three equal channels), 16-bit greyscale is scaled to 8 bits; a file that cannot be
decoded is named. Decoded arrays are cached as ``.npz`` under the cache folder, keyed by the class list and each
file's path, size, mtime, ctime and inode; in a process, by the same key.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import torch

from .datafiles import DataUnavailableError, cached_arrays, standardize


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


FOLDER_NORMALIZATION = (0.5, 0.25)  # any image folder: x/255 mapped to mean 0, unit-ish scale


def folder_fingerprint(classes: list[str], files: list[Path]) -> str:
    """Key of a folder's decoded arrays: the class list and, per file, its path, size, mtime, ctime and inode.

    A file moved between class folders changes its path; rewritten content changes the ctime even when the
    size and the mtime are kept (``cp -p``, ``touch -r``); a new empty class folder changes the labels.
    """
    h = hashlib.sha1(json.dumps(classes).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}\n".encode())
    return h.hexdigest()[:16]


def list_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(classes, files, labels) of an ImageFolder tree ``<folder>/<class>/<image>``, in load order.

    ``classes``: the class list to label by (a folder dataset's test split uses its train split's), else the
    sorted sub-folders; a sub-folder outside ``classes`` is an error (its label would mean another class).
    """
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and images_in(p))
    if not found:
        raise DataUnavailableError(f"{folder} has no class sub-folders with images ({', '.join(IMAGE_SUFFIXES)}); "
                                   "expected the ImageFolder layout <folder>/<class>/<image>")
    classes = found if classes is None else list(classes)
    extra = sorted(set(found) - set(classes))
    if extra:
        raise DataUnavailableError(f"{folder} has class folders {extra} that the training split lacks "
                                   f"(its classes: {classes}); give both splits the same class folders")
    files, labels = [], []
    for k, c in enumerate(classes):
        files_k = images_in(folder / c)
        files += files_k
        labels += [k] * len(files_k)
    return classes, files, labels


def images_in(folder: Path) -> list[Path]:
    """The image files of a class folder, sorted; hidden files (macOS ``._*`` included) are not samples."""
    if not folder.is_dir():
        return []
    return [f for f in sorted(folder.iterdir())
            if f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".") and f.is_file()]


GREY_MODES = ("L", "1", "I;16", "I;16L", "I;16B", "I;16N", "LA")


HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _open_image(source, name):
    """A PIL image of a path or bytes; a file PIL cannot read is a one-line error that names it."""
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(source if isinstance(source, (str, os.PathLike)) else io.BytesIO(source))
    except (OSError, UnidentifiedImageError) as e:
        raise DataUnavailableError(f"{name}: not a readable image ({e}); remove or replace the file") from None


def _to_array(im, mode: str, name) -> np.ndarray:
    """``im`` as uint8 in ``mode`` ("L" or "RGB"): 16-bit greyscale scaled by 255/65535 and rounded (PIL's own
    conversion clips it to 255), other modes converted by PIL; a truncated file is a one-line error naming it."""
    try:
        if im.mode in HIGH_BIT_MODES:
            grey = np.rint(np.asarray(im, dtype=np.float64) * (255.0 / 65535.0)).astype(np.uint8)
            return grey if mode == "L" else np.repeat(grey[..., None], 3, axis=2)
        if im.mode == "I" or im.mode == "F":
            raise DataUnavailableError(f"{name}: {im.mode!r} images (32-bit integer or float pixels) have no agreed "
                                       "range; save it as an 8- or 16-bit PNG")
        return np.asarray(im.convert(mode))
    except OSError as e:
        raise DataUnavailableError(f"{name}: cannot decode the image ({e}); remove or replace the file") from None


def decode_images(sources: list, names: list) -> np.ndarray:
    """Decode same-size images (paths or bytes) to uint8 (N, C, H, W): C=1 when every file is greyscale, else RGB
    (a grey file among colour ones becomes three equal channels)."""
    modes = []
    for s, name in zip(sources, names):
        with _open_image(s, name) as im:
            modes.append(im.mode)
    mode = "L" if all(m in GREY_MODES for m in modes) else "RGB"
    arrays = []
    for s, name in zip(sources, names):
        with _open_image(s, name) as im:
            a = _to_array(im, mode, name)
        if arrays and a.shape[:2] != arrays[0].shape[:2]:
            raise DataUnavailableError(f"{name} is {a.shape[1]}x{a.shape[0]} but {names[0]} is "
                                       f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; resize the images to one size")
        arrays.append(a)
    images = np.stack(arrays)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(images, dtype=np.uint8)


def load_image_folder(folder: Path):
    """Decode an ImageFolder tree (``<folder>/<class>/<image>``), caching the arrays as .npz."""
    folder = folder.resolve()
    classes, files, file_labels = list_image_folder(folder)
    images, labels = cached_arrays(f"folder-{folder_fingerprint(classes, files)}",
                                    lambda: (decode_images(files, files), np.asarray(file_labels, np.int64)))
    return images, labels, classes, f"image folder {folder}"


def _folder_split(name: str, split: str) -> tuple[Path, list[str]]:
    """(folder to read, its class list) of ``split`` of the dataset ``folder:<path>``: ``<path>/<split>`` when
    it exists, else (train only) ``<path>`` itself; classes are always those of the train split, so that a
    label means the same class in both splits. At least two classes, or no code has anything to send."""
    path = name.split(":", 1)[1]
    if not path.strip():
        raise DataUnavailableError("folder: needs a path, e.g. folder:/data/digits (an empty one would read the "
                                   "working directory)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataUnavailableError(f"image folder {root} does not exist; give folder:<path> of a folder holding "
                                   f"<class>/<image> or train/<class>/<image>")
    train = root / "train" if (root / "train").is_dir() else root
    if (root / split).is_dir():
        folder = root / split
    elif split == "train":
        folder = root
    else:
        raise DataUnavailableError(f"{root} has no {split}/ sub-folder; the {split} split of a folder dataset "
                                   f"lives in <path>/{split}/<class>/*")
    classes = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".") and images_in(p))
    if len(classes) == 1:
        raise DataUnavailableError(f"{train} has one class folder ({classes[0]!r}); labels of one class carry no "
                                   f"information, a code needs K >= 2: add a sub-folder per class")
    return folder, classes or None


_FOLDER_MEMO: dict[str, tuple] = {}  # fingerprint of a folder's files -> _load_split's tuple


def load_folder_split(name: str, split: str):
    """:func:`_load_split` for ``folder:<path>``, memoized per process by the fingerprint of its files, so that
    a folder changed while the process runs (a notebook kernel) is read again."""
    folder, classes = _folder_split(name, split)
    folder = folder.resolve()
    classes, files, labels = list_image_folder(folder, classes)
    key = folder_fingerprint(classes, files)
    if key not in _FOLDER_MEMO:
        images, y = cached_arrays(f"folder-{key}", lambda: (decode_images(files, files),
                                                             np.asarray(labels, np.int64)))
        _check_same_shape(name, split, images.shape[1:])
        c = images.shape[1]
        x = standardize(images, (FOLDER_NORMALIZATION[0],) * c, (FOLDER_NORMALIZATION[1],) * c)
        if len(_FOLDER_MEMO) >= 8:
            _FOLDER_MEMO.clear()
        _FOLDER_MEMO[key] = (x, torch.from_numpy(y), classes, f"image folder {folder}", None)
    return _FOLDER_MEMO[key]


def _check_same_shape(name: str, split: str, shape: tuple[int, ...]) -> None:
    """A folder's test images must have the train images' channels and size (a model takes one input shape)."""
    if split == "train":
        return
    train = tuple(load_folder_split(name, "train")[0].shape[1:])
    if tuple(shape) != train:
        (c, h, w), (c0, h0, w0) = shape, train
        raise DataUnavailableError(f"{name}: the {split} images are {w}x{h} with {c} channel(s) but the train "
                                   f"images are {w0}x{h0} with {c0}; give both splits images of one size and mode")
