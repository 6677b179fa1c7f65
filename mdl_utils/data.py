"""Datasets: the inputs x Bob already has and the labels y Alice must send.

``load(name, split, root=None, n=None, seed=0)`` returns a :class:`Dataset` in
transmission order: a permutation of the split drawn from ``seed`` (the
paper's Algorithm 2 sends the samples in a random order agreed in advance),
truncated to the first ``n`` samples (all of the split when ``n`` exceeds it:
a scale's n_train on a small image folder; :func:`clamp_log` reports it).

Names: ``mnist``, ``cifar10``, ``folder:<path>`` (a torchvision ImageFolder
tree, ``<path>/<split>/<class>/*`` or ``<path>/<class>/*``, with at least two
classes; both splits are labelled by the train split's classes) and ``synthetic``
(Gaussian inputs with labels drawn from a fixed random softmax teacher, so
the true codelength -log2 p(y|x) of every label is known).

Where the files are: the ``root`` argument, else ``MDL_DATA``, else
``~/.cache/mdl_utils/data`` (``MDL_CACHE`` moves the cache). MNIST and
CIFAR-10 are downloaded by torchvision when missing and online. Decoded image
folders are cached as ``.npz`` under the cache folder, never in the project,
keyed by the class list and each file's path, size, mtime, ctime and inode.

Data packs carry a whole dataset in one file, e.g. to a remote machine:
``python -m mdl_utils.data pack DEST [--root ROOT] [--datasets mnist cifar10]``
writes ``DEST/mnist.pack`` and ``DEST/cifar10.pack``. ``load`` reads
``<root>/<name>.pack`` when the unpacked layout is absent, checks it once per
process and gives the same arrays, bit for bit. A pack is a zip archive:

- ``manifest.json``: ``format``, ``version``, ``dataset``, ``layout``,
  ``classes``, ``source`` (what was packed), ``members`` (name -> bytes,
  sha256) and ``checksum``, the SHA-256 of the manifest's sorted compact JSON
  without that key, so it covers the whole content.
- layout ``idx-gzip`` (MNIST): the four IDX files gzipped,
  ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
- layout ``image-folder`` (the CIFAR-10 JPEG copy): ``<split>.bin``, the image
  files' bytes as on disk concatenated in load order, and ``<split>.json``,
  ``{"classes": [...], "files": {class: [[file, bytes], ...]}}``. Decoded
  arrays are cached as ``.npz`` keyed on the pack checksum (the first decode
  of CIFAR-10's train split takes several seconds).
- layout ``arrays`` (the official CIFAR-10 batches): ``<split>-images.npy``
  (N, C, H, W uint8) and ``<split>-labels.npy`` (int64); about 176 MiB, so it
  needs ``--max-mib`` above the default 60.

Members are deflated (zip's own lossless compression) except those already
compressed (``.gz``) or incompressible (``.npy``), which are stored. Deflating
``<split>.bin`` does not touch the JPEG data; it shrinks the headers every
file repeats, so the CIFAR-10 pack is about 18 MiB instead of 53.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import json
import os
import struct
import sys
import time
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

FOLDER_NORMALIZATION = (0.5, 0.25)  # any image folder: x/255 mapped to mean 0, unit-ish scale

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The synthetic teacher task: fixed forever, so that its numbers are comparable across runs.
SYNTHETIC_DIM = 20
SYNTHETIC_CLASSES = 10
SYNTHETIC_TEACHER_SEED = 2018
SYNTHETIC_WEIGHT_SCALE = 0.6
SYNTHETIC_SIZES = {"train": 60000, "test": 10000}


class DataUnavailableError(RuntimeError):
    """The data are not on disk and could not be downloaded."""


@dataclasses.dataclass
class Dataset:
    """Inputs ``x`` (float32) and labels ``y`` (int64) in transmission order.

    ``indices[i]`` is the position in the split's file order of the i-th
    transmitted sample; ``true_bits`` (synthetic only) is -log2 p_teacher(y_i | x_i).
    """

    name: str
    split: str
    x: torch.Tensor
    y: torch.Tensor
    K: int
    classes: list[str]
    source: str
    seed: int | None
    indices: np.ndarray
    true_bits: np.ndarray | None = None
    n_asked: int | None = None  # the n asked for when it exceeded the split (then all of the split was loaded)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def n(self) -> int:
        return len(self)

    def label_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=self.K)

    def head(self, n: int) -> "Dataset":
        """The first ``n`` transmitted samples."""
        if not 0 <= n <= len(self):
            raise ValueError(f"n must lie in 0..{len(self)} for {self.name}/{self.split}, got {n}")
        tb = None if self.true_bits is None else self.true_bits[:n]
        return dataclasses.replace(self, x=self.x[:n], y=self.y[:n], indices=self.indices[:n], true_bits=tb)


# ------------------------------------------------------------------ folders


def cache_dir() -> Path:
    return Path(os.environ.get("MDL_CACHE") or Path.home() / ".cache" / "mdl_utils").expanduser()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``MDL_DATA``, else ``<cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MDL_DATA")
    return Path(env).expanduser() if env else cache_dir() / "data"


def _offline_error(what: str, where: Path, layout: str, why: object) -> DataUnavailableError:
    why = " ".join(str(why).split())
    return DataUnavailableError(
        f"{what} is not under {where} and could not be downloaded ({why}). "
        f"Set MDL_DATA to a folder holding {layout} (for example MDL_DATA=../shared/data), "
        f"or run once online so torchvision downloads it."
    )


# ----------------------------------------------------------------- loaders
# Each returns (images uint8 (N, C, H, W) or features float32, labels int64, classes, source).

MNIST_LAYOUT = "mnist/MNIST/raw/*-ubyte"
CIFAR10_LAYOUT = "cifar10/cifar-10-batches-py or cifar10/{train,test}/<class>/*.jpg"
CIFAR10_JPEG_NOTE = " (JPEG-re-encoded copy, not the official batches)"


def _load_mnist(split: str, root: Path, download: bool):
    from torchvision.datasets import MNIST

    folder = root / "mnist"
    train = split == "train"
    try:
        ds = MNIST(str(folder), train=train, download=False)
        source = f"MNIST IDX files under {folder.resolve()}"
    except RuntimeError as missing:
        if (root / "mnist.pack").is_file():
            return _load_pack("mnist", split, root / "mnist.pack")
        layout = f"{MNIST_LAYOUT} or mnist.pack"
        if not download:
            raise _offline_error("MNIST", folder, layout, f"download disabled; {missing}") from None
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:  # URLError, HTTPError, socket errors, checksum failures
            raise _offline_error("MNIST", folder, layout, e) from None
        source = f"MNIST downloaded by torchvision into {folder.resolve()}"
    images = ds.data.numpy()[:, None, :, :].copy()
    labels = ds.targets.numpy().astype(np.int64)
    return images, labels, [str(c) for c in range(10)], source


def _cifar10_arrays(ds, source: str):
    """(images, labels, classes, source) of a torchvision CIFAR10 dataset."""
    images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
    return images, np.asarray(ds.targets, np.int64), list(ds.classes), source


def _cifar10_batches(folder: Path, split: str):
    """The official batches under ``folder`` as :func:`_cifar10_arrays`, or None when absent or corrupt."""
    from torchvision.datasets import CIFAR10

    if not (folder / "cifar-10-batches-py").is_dir():
        return None
    try:
        ds = CIFAR10(str(folder), train=split == "train", download=False)
    except RuntimeError:
        return None  # corrupt or incomplete: try the other layouts
    return _cifar10_arrays(ds, f"official CIFAR-10 batches under {folder.resolve()}")


def _check_cifar10_classes(where: Path, classes: list[str]) -> None:
    if classes != CIFAR10_CLASSES:
        raise DataUnavailableError(f"{where} holds classes {classes}, not CIFAR-10's {CIFAR10_CLASSES}")


def _load_cifar10(split: str, root: Path, download: bool):
    from torchvision.datasets import CIFAR10

    folder = root / "cifar10"
    found = _cifar10_batches(folder, split)
    if found is not None:
        return found
    if (folder / split).is_dir():
        images, labels, classes, source = _load_image_folder(folder / split)
        _check_cifar10_classes(folder / split, classes)
        return images, labels, classes, source + CIFAR10_JPEG_NOTE
    if (root / "cifar10.pack").is_file():
        images, labels, classes, source = _load_pack("cifar10", split, root / "cifar10.pack")
        _check_cifar10_classes(root / "cifar10.pack", classes)
        return images, labels, classes, source
    layout = f"{CIFAR10_LAYOUT} or cifar10.pack"
    if not download:
        raise _offline_error("CIFAR-10", folder, layout, "download disabled")
    try:
        ds = CIFAR10(str(folder), train=split == "train", download=True)
    except Exception as e:
        raise _offline_error("CIFAR-10", folder, layout, e) from None
    return _cifar10_arrays(ds, f"CIFAR-10 downloaded by torchvision into {folder.resolve()}")


def _folder_fingerprint(classes: list[str], files: list[Path]) -> str:
    """Key of a folder's decoded arrays: the class list and, per file, its path, size, mtime, ctime and inode.

    A file moved between class folders changes its path; rewritten content changes the ctime even when the
    size and the mtime are kept (``cp -p``, ``touch -r``); a new empty class folder changes the labels.
    """
    h = hashlib.sha1(json.dumps(classes).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}\n".encode())
    return h.hexdigest()[:16]


def _list_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[list[str], list[Path], list[int]]:
    """(classes, files, labels) of an ImageFolder tree ``<folder>/<class>/<image>``, in load order.

    ``classes``: the class list to label by (a folder dataset's test split uses its train split's), else the
    sorted sub-folders; a sub-folder outside ``classes`` is an error (its label would mean another class).
    """
    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".") and _images_in(p))
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
        files_k = _images_in(folder / c)
        files += files_k
        labels += [k] * len(files_k)
    return classes, files, labels


def _images_in(folder: Path) -> list[Path]:
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


def _decode_images(sources: list, names: list) -> np.ndarray:
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


def _cached_arrays(key: str, decode) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from ``<cache>/arrays/<key>.npz``, else ``decode()``, saved there."""
    cache = cache_dir() / "arrays" / f"{key}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return z["images"], z["labels"]
    images, labels = decode()
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, images=images, labels=labels)
    os.replace(tmp, cache)
    return images, labels


def _load_image_folder(folder: Path):
    """Decode an ImageFolder tree (``<folder>/<class>/<image>``), caching the arrays as .npz."""
    folder = folder.resolve()
    classes, files, file_labels = _list_image_folder(folder)
    images, labels = _cached_arrays(f"folder-{_folder_fingerprint(classes, files)}",
                                    lambda: (_decode_images(files, files), np.asarray(file_labels, np.int64)))
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
    classes = sorted(p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".") and _images_in(p))
    if len(classes) == 1:
        raise DataUnavailableError(f"{train} has one class folder ({classes[0]!r}); labels of one class carry no "
                                   f"information, a code needs K >= 2: add a sub-folder per class")
    return folder, classes or None


# ------------------------------------------------------------------- packs

PACK_SUFFIX = ".pack"
PACK_FORMAT = "mdl_utils data pack"
PACK_VERSION = 1
PACK_MAX_MIB = 60.0
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_PREFIX = {"train": "train", "test": "t10k"}
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same data give the same pack bytes


def _parse_idx(data: bytes, name: str) -> np.ndarray:
    """The array in an IDX file (MNIST's format: 0, 0, type, ndim, big-endian uint32 dims, data)."""
    nd = data[3] if len(data) >= 4 else 0
    head = 4 + 4 * nd
    if nd == 0 or data[:2] != b"\0\0" or data[2] not in IDX_TYPES or len(data) < head:
        raise DataUnavailableError(f"{name} is not an IDX file (bad header); re-copy it from the MNIST distribution")
    dims = struct.unpack(f">{nd}I", data[4:head])
    dtype = np.dtype(IDX_TYPES[data[2]])
    if len(data) != head + int(np.prod(dims)) * dtype.itemsize:
        raise DataUnavailableError(f"{name} holds {len(data)} bytes, not the {dims} array its header announces; "
                                   f"re-copy it from the MNIST distribution")
    return np.frombuffer(data, dtype, offset=head).reshape(dims)


def _pack_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _corrupt_pack(path: Path, why: object) -> DataUnavailableError:
    return DataUnavailableError(
        f"data pack {path} is damaged or unreadable ({' '.join(str(why).split())}); re-run "
        f"`python -m mdl_utils.data pack {path.parent} --root <unpacked data> --datasets {path.stem}` "
        f"and copy it again, or remove it to use the unpacked layout"
    )


@functools.lru_cache(maxsize=8)
def _verified_manifest(path: str, stamp: tuple[int, ...]) -> dict:
    """The manifest of the pack at ``path`` after checking the checksum and every member's SHA-256.

    ``stamp`` (size, mtime, ctime, inode) keys the check, so it runs once per process and file version.
    """
    try:
        with zipfile.ZipFile(path) as z:
            manifest = json.loads(z.read("manifest.json"))
            if manifest.get("format") != PACK_FORMAT or manifest.get("version") != PACK_VERSION:
                raise ValueError(f"not a version-{PACK_VERSION} {PACK_FORMAT}")
            if _pack_checksum(manifest) != manifest.get("checksum"):
                raise ValueError("manifest checksum mismatch")
            for name, entry in manifest["members"].items():
                h = hashlib.sha256()
                with z.open(name) as f:
                    while chunk := f.read(1 << 22):
                        h.update(chunk)
                if h.hexdigest() != entry["sha256"]:
                    raise ValueError(f"member {name} fails its SHA-256")
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, EOFError, OSError, zlib.error) as e:
        raise _corrupt_pack(Path(path), e) from None
    return manifest


def _load_pack(dataset: str, split: str, path: Path):
    """``split`` of ``dataset`` decoded from the data pack at ``path``, as the loaders return it."""
    path = path.resolve()
    st = path.stat()
    manifest = _verified_manifest(str(path), (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    if manifest["dataset"] != dataset:
        raise DataUnavailableError(f"{path} packs {manifest['dataset']!r}, not {dataset!r}; "
                                   f"re-run `python -m mdl_utils.data pack {path.parent} --datasets {dataset}`")
    layout, checksum = manifest["layout"], manifest["checksum"]
    source = f"data pack {path} (sha256 {checksum[:16]}) of {manifest['source']}"
    with zipfile.ZipFile(path) as z:
        if layout == "idx-gzip":
            members = (f"{MNIST_PREFIX[split]}-{kind}-ubyte.gz" for kind in ("images-idx3", "labels-idx1"))
            images, labels = (_parse_idx(gzip.decompress(z.read(m)), f"{path}:{m}") for m in members)
            return images[:, None].copy(), labels.astype(np.int64), manifest["classes"], source
        if layout == "arrays":
            images, labels = (np.load(io.BytesIO(z.read(f"{split}-{kind}.npy")), allow_pickle=False)
                              for kind in ("images", "labels"))
            return images, labels, manifest["classes"], source
        if layout == "image-folder":
            index = json.loads(z.read(f"{split}.json"))
            images, labels = _cached_arrays(
                f"pack-{checksum[:16]}-{split}",
                lambda: _decode_packed_folder(index, z.read(f"{split}.bin"), f"{path}:{split}"))
            return images, labels, index["classes"], source
    raise DataUnavailableError(f"{path} has layout {layout!r}, unknown to this mdl_utils; "
                               f"re-run `python -m mdl_utils.data pack` with this version")


def _decode_packed_folder(index: dict, blob: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode an ``image-folder`` split: the files listed in ``index``, cut in order from ``blob``."""
    view, sources, names, labels, at = memoryview(blob), [], [], [], 0
    for k, c in enumerate(index["classes"]):
        for name, size in index["files"][c]:
            sources.append(view[at:at + size])
            names.append(f"{where}/{c}/{name}")
            labels.append(k)
            at += size
    if at != len(blob):
        raise DataUnavailableError(f"{where}: the index covers {at} of {len(blob)} bytes; re-run the pack command")
    return _decode_images(sources, names), np.asarray(labels, np.int64)


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _pack_mnist(root: Path):
    """(layout, members [(name, bytes, deflate)], manifest extras) of the MNIST IDX files under ``root``."""
    raw = root / "mnist" / "MNIST" / "raw"
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing:
        raise DataUnavailableError(f"no MNIST to pack: {raw} lacks {', '.join(missing)}; pass --root (or set MDL_DATA) "
                                   f"to the folder holding {MNIST_LAYOUT}")
    members = []
    for f in MNIST_FILES:
        data = (raw / f).read_bytes()
        _parse_idx(data, str(raw / f))  # refuse truncated files
        members.append((f + ".gz", gzip.compress(data, compresslevel=6, mtime=0), False))
    extra = {"classes": [str(c) for c in range(10)], "source": f"MNIST IDX files under {raw.resolve()}"}
    return "idx-gzip", members, extra


def _pack_cifar10(root: Path):
    """(layout, members, manifest extras) of CIFAR-10 under ``root``: the official batches, else the image folder."""
    folder = root / "cifar10"
    batches = [_cifar10_batches(folder, split) for split in SPLITS]
    if all(b is not None for b in batches):
        members = [(f"{split}-{kind}.npy", _npy(a), False)
                   for split, b in zip(SPLITS, batches) for kind, a in zip(("images", "labels"), b[:2])]
        return "arrays", members, {"classes": batches[0][2], "source": batches[0][3]}
    if not all((folder / split).is_dir() for split in SPLITS):
        raise DataUnavailableError(f"no CIFAR-10 to pack under {root}: expected {CIFAR10_LAYOUT}; pass --root "
                                   f"(or set MDL_DATA) to the folder holding it")
    members = []
    for split in SPLITS:
        classes, files, _ = _list_image_folder(folder / split)
        _check_cifar10_classes(folder / split, classes)
        blobs = [f.read_bytes() for f in files]
        index = {"classes": classes, "files": {c: [] for c in classes}}
        for f, b in zip(files, blobs):
            index["files"][f.parent.name].append([f.name, len(b)])
        members += [(f"{split}.json", json.dumps(index, separators=(",", ":")).encode(), True),
                    (f"{split}.bin", b"".join(blobs), True)]  # deflate: the JPEG headers repeat
    source = f"image folder {folder.resolve()}/{{train,test}}{CIFAR10_JPEG_NOTE}"
    return "image-folder", members, {"classes": CIFAR10_CLASSES, "source": source}


PACKERS = {"mnist": _pack_mnist, "cifar10": _pack_cifar10}


def _write_zip(path: Path, manifest: dict, members) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data, deflate in [("manifest.json", json.dumps(manifest, indent=1).encode(), True), *members]:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            z.writestr(info, data)


def write_pack(name: str, dest: str | os.PathLike, root: str | os.PathLike | None = None,
               max_mib: float = PACK_MAX_MIB) -> tuple[Path, dict]:
    """Pack dataset ``name`` from ``root`` (default :func:`data_root`) into ``dest/<name>.pack``: (path, manifest).

    Raises ValueError, leaving no file, when the pack would exceed ``max_mib`` MiB.
    """
    if name not in PACKERS:
        raise ValueError(f"cannot pack {name!r}; choose from {', '.join(PACKERS)}")
    layout, members, extra = PACKERS[name](data_root(root))
    manifest = {"format": PACK_FORMAT, "version": PACK_VERSION, "dataset": name, "layout": layout, **extra,
                "members": {m: {"bytes": len(b), "sha256": hashlib.sha256(b).hexdigest()} for m, b, _ in members}}
    manifest["checksum"] = _pack_checksum(manifest)
    path = Path(dest).expanduser() / f"{name}{PACK_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        _write_zip(tmp, manifest, members)
        mib = tmp.stat().st_size / 2**20
        if mib > max_mib:
            raise ValueError(f"{path.name} would be {mib:.1f} MiB, over the {max_mib:g} MiB limit ({layout} layout); "
                             f"pass --max-mib {int(mib) + 1} to write it anyway")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path, manifest


def synthetic_teacher() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed softmax teacher (W, b) of the synthetic task: p(y|x) = softmax(x W + b)."""
    g = torch.Generator().manual_seed(SYNTHETIC_TEACHER_SEED)
    w = torch.randn(SYNTHETIC_DIM, SYNTHETIC_CLASSES, generator=g, dtype=torch.float64) * SYNTHETIC_WEIGHT_SCALE
    b = torch.randn(SYNTHETIC_CLASSES, generator=g, dtype=torch.float64) * 0.5
    return w, b


def _load_synthetic(split: str):
    w, b = synthetic_teacher()
    g = torch.Generator().manual_seed(SYNTHETIC_TEACHER_SEED + 1 + SPLITS.index(split))
    n = SYNTHETIC_SIZES[split]
    x = torch.randn(n, SYNTHETIC_DIM, generator=g, dtype=torch.float64)
    log_p = torch.log_softmax(x @ w + b, dim=1)
    y = torch.multinomial(log_p.exp(), 1, generator=g).squeeze(1)
    true_bits = (-log_p.gather(1, y[:, None]).squeeze(1) / np.log(2.0)).numpy()
    source = (f"synthetic softmax teacher (d={SYNTHETIC_DIM}, K={SYNTHETIC_CLASSES}, "
              f"teacher seed {SYNTHETIC_TEACHER_SEED}, weight scale {SYNTHETIC_WEIGHT_SCALE})")
    return x.float().numpy(), y.numpy(), [str(c) for c in range(SYNTHETIC_CLASSES)], source, true_bits


def _standardize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (N, C, H, W) as float32 (x / 255 - mean) / std per channel."""
    x = torch.from_numpy(images).float().div_(255.0)
    return x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))


# ------------------------------------------------------------ the datasets known by name


@dataclasses.dataclass(frozen=True)
class Info:
    """What the runner and the tables know of a dataset without training on it: training samples, the shape of
    one input, classes."""

    n_train: int
    shape: tuple[int, ...]
    K: int


@dataclasses.dataclass(frozen=True)
class BuiltIn:
    """A dataset known by name: its name for readers, split sizes, input shape, classes, per-channel
    standardization of its uint8 images (None: the loader gives float inputs), and its loader
    ``(split, root, download) -> (images or inputs, labels, classes, source[, true_bits])``."""

    label: str
    sizes: dict[str, int]
    shape: tuple[int, ...]
    K: int
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None
    loader: Callable

    @property
    def info(self) -> Info:
        return Info(self.sizes["train"], self.shape, self.K)


# Adding a dataset: its loader above and one entry here (the usual standardization constants of the official files).
BUILT_IN = {
    "mnist": BuiltIn("MNIST", {"train": 60000, "test": 10000}, (1, 28, 28), 10, ((0.1307,), (0.3081,)),
                     _load_mnist),
    "cifar10": BuiltIn("CIFAR-10", {"train": 50000, "test": 10000}, (3, 32, 32), 10,
                       ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), _load_cifar10),
    "synthetic": BuiltIn("synthetic", SYNTHETIC_SIZES, (SYNTHETIC_DIM,), SYNTHETIC_CLASSES, None,
                         lambda split, root, download: _load_synthetic(split)),
}
NAMES = (*BUILT_IN, "folder:<path>")


def is_name(name: str) -> bool:
    """Whether ``name`` names a dataset: a built-in one, or ``folder:<path>``."""
    return isinstance(name, str) and (name in BUILT_IN or name.startswith("folder:"))


def info(name: str, root: str | os.PathLike | None = None) -> Info:
    """Training samples, input shape and classes of ``name`` (a built-in's from the registry; a folder's loaded)."""
    if name in BUILT_IN:
        return BUILT_IN[name].info
    d = load(name, "train", root=root, seed=None)
    return Info(d.n, tuple(d.x.shape[1:]), d.K)


def train_size(name: str, n_train: int | None, root: str | os.PathLike | None = None) -> int:
    """Training samples a chapter loads with ``n_train`` (None: all of them): at most the split's size."""
    size = info(name, root).n_train
    return min(size, n_train) if n_train else size


def label(name: str) -> str:
    """A dataset's name for readers: MNIST, CIFAR-10, an image folder's own name."""
    if name.startswith("folder:"):
        return Path(name.split(":", 1)[1].rstrip("/")).name or name
    return BUILT_IN[name].label if name in BUILT_IN else name


def random_dataset(n: int, shape: Sequence[int], k: int, seed: int = 0) -> Dataset:
    """``n`` random inputs of ``shape`` with random labels among ``k`` (a throughput probe's data)."""
    g = torch.Generator().manual_seed(seed)
    return Dataset(name="random", split="train", x=torch.randn(n, *shape, generator=g),
                   y=torch.randint(0, k, (n,), generator=g), K=k, classes=[str(c) for c in range(k)],
                   source="random inputs", seed=None, indices=np.arange(n))


@functools.lru_cache(maxsize=8)
def _load_split(name: str, split: str, root: str, download: bool):
    """Full split of a built-in dataset in file order, memoized per process: (x float32, y, classes, source,
    true_bits)."""
    spec = BUILT_IN[name]
    inputs, y, classes, source, *true_bits = spec.loader(split, Path(root), download)
    x = torch.from_numpy(inputs) if spec.normalization is None else _standardize(inputs, *spec.normalization)
    return x, torch.from_numpy(y), classes, source, (true_bits or [None])[0]


_FOLDER_MEMO: dict[str, tuple] = {}  # fingerprint of a folder's files -> _load_split's tuple


def _load_folder_split(name: str, split: str):
    """:func:`_load_split` for ``folder:<path>``, memoized per process by the fingerprint of its files, so that
    a folder changed while the process runs (a notebook kernel) is read again."""
    folder, classes = _folder_split(name, split)
    folder = folder.resolve()
    classes, files, labels = _list_image_folder(folder, classes)
    key = _folder_fingerprint(classes, files)
    if key not in _FOLDER_MEMO:
        images, y = _cached_arrays(f"folder-{key}", lambda: (_decode_images(files, files),
                                                             np.asarray(labels, np.int64)))
        _check_same_shape(name, split, images.shape[1:])
        c = images.shape[1]
        x = _standardize(images, (FOLDER_NORMALIZATION[0],) * c, (FOLDER_NORMALIZATION[1],) * c)
        if len(_FOLDER_MEMO) >= 8:
            _FOLDER_MEMO.clear()
        _FOLDER_MEMO[key] = (x, torch.from_numpy(y), classes, f"image folder {folder}", None)
    return _FOLDER_MEMO[key]


def _check_same_shape(name: str, split: str, shape: tuple[int, ...]) -> None:
    """A folder's test images must have the train images' channels and size (a model takes one input shape)."""
    if split == "train":
        return
    train = tuple(_load_folder_split(name, "train")[0].shape[1:])
    if tuple(shape) != train:
        (c, h, w), (c0, h0, w0) = shape, train
        raise DataUnavailableError(f"{name}: the {split} images are {w}x{h} with {c} channel(s) but the train "
                                   f"images are {w0}x{h0} with {c0}; give both splits images of one size and mode")


MAX_SEED = 2**32 - 1  # every seed (order, initialization, mini-batches, warm blocks' seeds) derives from it


def check_seed(seed: int) -> int:
    """``seed`` when it is a whole number from 0 to MAX_SEED, else a one-line ValueError (a larger one overflows
    torch's generators, a warm chain's block seeds sooner)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed {seed!r}: give a whole number from 0 to {MAX_SEED:,}")
    return int(seed)


def transmission_order(size: int, seed: int | None) -> np.ndarray:
    """The agreed order in which samples are sent: a seeded permutation (identity for seed=None)."""
    if seed is None:
        return np.arange(size)
    g = torch.Generator().manual_seed(check_seed(seed))
    return torch.randperm(size, generator=g).numpy()


_CLAMP_LOGS: list[list[dict]] = []  # open clamp_log() blocks


@contextlib.contextmanager
def clamp_log():
    """``with clamp_log() as clamped: ...``: the loads in the block that asked for more samples than their
    split has (dicts: dataset, split, asked, used), so that a caller can state it in a result's params."""
    log: list[dict] = []
    _CLAMP_LOGS.append(log)
    try:
        yield log
    finally:
        _CLAMP_LOGS.remove(log)


def _sample_count(name: str, split: str, n: int | None, size: int) -> int:
    """How many samples a load of ``n`` gives: all ``size`` of the split for None or for more than it has (a
    scale's n_train above a small folder; logged for :func:`clamp_log`), else ``n``; ValueError for n < 1."""
    if n is None:
        return size
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer number of samples (at most the {size} of {name}, "
                         f"{split} split), got {n!r}")
    if n > size:
        for log in _CLAMP_LOGS:
            log.append({"dataset": name, "split": split, "asked": int(n), "used": size})
    return min(int(n), size)


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int | None = 0,
    download: bool | None = None,
) -> Dataset:
    """Load ``split`` of dataset ``name`` in the transmission order drawn from ``seed``, first ``n`` samples.

    ``n`` larger than the split (a scale's n_train above a small image folder) loads the whole split;
    ``Dataset.n_asked`` and the source say so. ``download=None`` downloads missing MNIST/CIFAR-10 files unless
    ``MDL_OFFLINE`` is set.
    """
    if not is_name(name):
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if download is None:
        download = not os.environ.get("MDL_OFFLINE")
    if name.startswith("folder:"):
        x, y, classes, source, true_bits = _load_folder_split(name, split)
    else:
        x, y, classes, source, true_bits = _load_split(name, split, str(data_root(root)), bool(download))
    size = int(y.shape[0])
    count = _sample_count(name, split, n, size)
    asked = int(n) if count < (n or 0) else None
    if asked:
        source += f"; all {size} samples of the {split} split (n = {asked} was asked)"
    order = transmission_order(size, seed)[:count]
    idx = torch.from_numpy(order)
    return Dataset(name=name, split=split, x=x[idx], y=y[idx], K=len(classes), classes=list(classes), source=source,
                   seed=seed, indices=order, true_bits=None if true_bits is None else true_bits[order], n_asked=asked)



def splits(name: str, settings, *, seed: int | None = 0, root: str | os.PathLike | None = None
           ) -> tuple[Dataset, Dataset]:
    """The training and test splits of dataset ``name`` at a chapter's settings (their ``n_train`` and ``n_test``
    first samples; None: the whole split), each in the transmission order drawn from ``seed``."""
    return (load(name, "train", root=root, n=settings.n_train, seed=seed),
            load(name, "test", root=root, n=settings.n_test, seed=seed))

def main(argv: list[str] | None = None) -> int:
    """``python -m mdl_utils.data pack DEST``: write one data pack per dataset and print a line for each."""
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.data",
                                 description="Data packs: each dataset in one file, for copying to another machine.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("pack", help="write DEST/<dataset>.pack for each dataset",
                       description="Write DEST/<dataset>.pack from the unpacked data; "
                                   "point MDL_DATA at DEST to load them.")
    p.add_argument("dest", metavar="DEST", help="folder to write the packs into (created if missing)")
    p.add_argument("--root", default=None, help="folder holding the unpacked data (default: MDL_DATA, else the cache)")
    p.add_argument("--datasets", nargs="+", default=list(PACKERS), choices=list(PACKERS), metavar="NAME",
                   help=f"datasets to pack (default: {' '.join(PACKERS)})")
    p.add_argument("--max-mib", type=float, default=PACK_MAX_MIB,
                   help=f"refuse packs larger than this (default {PACK_MAX_MIB:g} MiB)")
    args = ap.parse_args(argv)
    try:
        for name in args.datasets:
            start = time.perf_counter()
            path, manifest = write_pack(name, args.dest, args.root, args.max_mib)
            print(f"{path.name}  {path.stat().st_size / 2**20:.1f} MiB  sha256 {manifest['checksum']}  "
                  f"({manifest['layout']}, {time.perf_counter() - start:.1f} s)  {path}")
    except (ValueError, RuntimeError, OSError) as e:  # DataUnavailableError, size limit, unreadable files
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
