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
``~/.cache/mdl_utils/data`` (:mod:`mdl_utils.datafiles`). MNIST and CIFAR-10 are
downloaded by torchvision when missing and online, or read from the data packs of
:mod:`mdl_utils.packs` (``python -m mdl_utils.data pack DEST``); image folders
are read by :mod:`mdl_utils.folders`. Adding a built-in dataset: a loader (and a
packer) here and one entry of :data:`BUILT_IN`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import arrays, packs
from .datafiles import DataUnavailableError, cache_dir, data_root, offline_error, standardize  # noqa: F401 (API)
from .folders import list_image_folder, load_folder_split, load_image_folder
from .packs import PACK_MAX_MIB, load_pack, parse_idx

SPLITS = ("train", "test")


CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# The synthetic teacher task: fixed forever, so that its numbers are comparable across runs.
SYNTHETIC_DIM = 20
SYNTHETIC_CLASSES = 10
SYNTHETIC_TEACHER_SEED = 2018
SYNTHETIC_WEIGHT_SCALE = 0.6
SYNTHETIC_SIZES = {"train": 60000, "test": 10000}




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
            return load_pack("mnist", split, root / "mnist.pack")
        layout = f"{MNIST_LAYOUT} or mnist.pack"
        if not download:
            raise offline_error("MNIST", folder, layout, f"download disabled; {missing}") from None
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:  # URLError, HTTPError, socket errors, checksum failures
            raise offline_error("MNIST", folder, layout, e) from None
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
        images, labels, classes, source = load_image_folder(folder / split)
        _check_cifar10_classes(folder / split, classes)
        return images, labels, classes, source + CIFAR10_JPEG_NOTE
    if (root / "cifar10.pack").is_file():
        images, labels, classes, source = load_pack("cifar10", split, root / "cifar10.pack")
        _check_cifar10_classes(root / "cifar10.pack", classes)
        return images, labels, classes, source
    layout = f"{CIFAR10_LAYOUT} or cifar10.pack"
    if not download:
        raise offline_error("CIFAR-10", folder, layout, "download disabled")
    try:
        ds = CIFAR10(str(folder), train=split == "train", download=True)
    except Exception as e:
        raise offline_error("CIFAR-10", folder, layout, e) from None
    return _cifar10_arrays(ds, f"CIFAR-10 downloaded by torchvision into {folder.resolve()}")






















# ------------------------------------------------------------------- packs

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
















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
        parse_idx(data, str(raw / f))  # refuse truncated files
        members.append((f + ".gz", gzip.compress(data, compresslevel=6, mtime=0), False))
    extra = {"classes": [str(c) for c in range(10)], "source": f"MNIST IDX files under {raw.resolve()}"}
    return "idx-gzip", members, extra


def _pack_cifar10(root: Path):
    """(layout, members, manifest extras) of CIFAR-10 under ``root``: the official batches, else the image folder."""
    folder = root / "cifar10"
    batches = [_cifar10_batches(folder, split) for split in SPLITS]
    if all(b is not None for b in batches):
        members = [(f"{split}-{kind}.npy", packs.npy(a), False)
                   for split, b in zip(SPLITS, batches) for kind, a in zip(("images", "labels"), b[:2])]
        return "arrays", members, {"classes": batches[0][2], "source": batches[0][3]}
    if not all((folder / split).is_dir() for split in SPLITS):
        raise DataUnavailableError(f"no CIFAR-10 to pack under {root}: expected {CIFAR10_LAYOUT}; pass --root "
                                   f"(or set MDL_DATA) to the folder holding it")
    members = []
    for split in SPLITS:
        classes, files, _ = list_image_folder(folder / split)
        _check_cifar10_classes(folder / split, classes)
        blobs = [f.read_bytes() for f in files]
        index = {"classes": classes, "files": {c: [] for c in classes}}
        for f, b in zip(files, blobs):
            index["files"][f.parent.name].append([f.name, len(b)])
        members += [(f"{split}.json", json.dumps(index, separators=(",", ":")).encode(), True),
                    (f"{split}.bin", b"".join(blobs), True)]  # deflate: the JPEG headers repeat
    source = f"image folder {folder.resolve()}/{{train,test}}{CIFAR10_JPEG_NOTE}"
    return "image-folder", members, {"classes": CIFAR10_CLASSES, "source": source}








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
    packer: Callable | None = None  # root -> (layout, members, manifest extras) for a data pack (mdl_utils.packs)

    @property
    def info(self) -> Info:
        return Info(self.sizes["train"], self.shape, self.K)


# Adding a dataset: its loader above and one entry here (the usual standardization constants of the official files).
BUILT_IN = {
    "mnist": BuiltIn("MNIST", {"train": 60000, "test": 10000}, (1, 28, 28), 10, ((0.1307,), (0.3081,)),
                     _load_mnist, _pack_mnist),
    "cifar10": BuiltIn("CIFAR-10", {"train": 50000, "test": 10000}, (3, 32, 32), 10,
                       ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)), _load_cifar10, _pack_cifar10),
    "synthetic": BuiltIn("synthetic", SYNTHETIC_SIZES, (SYNTHETIC_DIM,), SYNTHETIC_CLASSES, None,
                         lambda split, root, download: _load_synthetic(split)),
}
PACKABLE = tuple(name for name, spec in BUILT_IN.items() if spec.packer is not None)


def write_pack(name: str, dest: str | os.PathLike, root: str | os.PathLike | None = None,
               max_mib: float = PACK_MAX_MIB) -> tuple[Path, dict]:
    """Pack built-in dataset ``name`` (its registry entry's packer) from ``root`` (default :func:`data_root`) into
    ``dest/<name>.pack``: (path, manifest); ValueError, leaving no file, beyond ``max_mib`` MiB."""
    if name not in PACKABLE:
        raise ValueError(f"cannot pack {name!r}; choose from {', '.join(PACKABLE)}")
    return packs.write_pack(name, BUILT_IN[name].packer, dest, data_root(root), max_mib)
NAMES = (*BUILT_IN, "folder:<path>", "npz:<path>")


def is_name(name: str) -> bool:
    """Whether ``name`` names a dataset: a built-in one, ``folder:<path>``, ``npz:<path>`` or a registered one."""
    return isinstance(name, str) and (name in BUILT_IN or name.startswith("folder:") or arrays.is_name(name))


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
    """A dataset's name for readers: MNIST, CIFAR-10, an image folder's or an npz file's own name."""
    if name.startswith("folder:"):
        return Path(name.split(":", 1)[1].rstrip("/")).name or name
    if arrays.is_name(name):
        return arrays.label(name)
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
    x = torch.from_numpy(inputs) if spec.normalization is None else standardize(inputs, *spec.normalization)
    return x, torch.from_numpy(y), classes, source, (true_bits or [None])[0]








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
        x, y, classes, source, true_bits = load_folder_split(name, split)
    elif arrays.is_name(name):
        x, y, classes, source, true_bits = arrays.load_split(name, split)
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



def has_test_split(name: str) -> bool:
    """Whether dataset ``name`` has a test split (arrays need not have one; the others do)."""
    return not arrays.is_name(name) or arrays.has_split(name, "test")


def splits(name: str, settings, *, seed: int | None = 0, root: str | os.PathLike | None = None
           ) -> tuple[Dataset, Dataset | None]:
    """The training and test splits of dataset ``name`` at a chapter's settings (their ``n_train`` and ``n_test``
    first samples; None: the whole split), each in the transmission order drawn from ``seed``; the test split is
    None for arrays without one."""
    test = load(name, "test", root=root, n=settings.n_test, seed=seed) if has_test_split(name) else None
    return load(name, "train", root=root, n=settings.n_train, seed=seed), test

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
    p.add_argument("--datasets", nargs="+", default=list(PACKABLE), choices=list(PACKABLE), metavar="NAME",
                   help=f"datasets to pack (default: {' '.join(PACKABLE)})")
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
