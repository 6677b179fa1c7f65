"""Datasets: the inputs x Bob already has and the labels y Alice must send.

``load(name, split, root=None, n=None, seed=0)`` returns a :class:`Dataset` in
transmission order: a permutation of the split drawn from ``seed`` (the
paper's Algorithm 2 sends the samples in a random order agreed in advance),
truncated to the first ``n`` samples.

Names: ``mnist``, ``cifar10``, ``folder:<path>`` (a torchvision ImageFolder
tree, ``<path>/<split>/<class>/*`` or ``<path>/<class>/*``) and ``synthetic``
(Gaussian inputs with labels drawn from a fixed random softmax teacher, so
the true codelength -log2 p(y|x) of every label is known).

Where the files are: the ``root`` argument, else ``MDL_DATA``, else
``~/.cache/mdl_utils/data`` (``MDL_CACHE`` moves the cache). MNIST and
CIFAR-10 are downloaded by torchvision when missing and online. Decoded image
folders are cached as ``.npz`` under the cache folder, never in the project.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "test")
NAMES = ("mnist", "cifar10", "synthetic", "folder:<path>")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")

# Per-channel standardization constants (the usual ones for the official files).
NORMALIZATION = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}
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


def _load_mnist(split: str, root: Path, download: bool):
    from torchvision.datasets import MNIST

    folder = root / "mnist"
    train = split == "train"
    try:
        ds = MNIST(str(folder), train=train, download=False)
        source = f"MNIST IDX files under {folder.resolve()}"
    except RuntimeError as missing:
        if not download:
            raise _offline_error("MNIST", folder, "mnist/MNIST/raw/*-ubyte", f"download disabled; {missing}") from None
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:  # URLError, HTTPError, socket errors, checksum failures
            raise _offline_error("MNIST", folder, "mnist/MNIST/raw/*-ubyte", e) from None
        source = f"MNIST downloaded by torchvision into {folder.resolve()}"
    images = ds.data.numpy()[:, None, :, :].copy()
    labels = ds.targets.numpy().astype(np.int64)
    return images, labels, [str(c) for c in range(10)], source


def _load_cifar10(split: str, root: Path, download: bool):
    from torchvision.datasets import CIFAR10

    folder = root / "cifar10"
    train = split == "train"
    if (folder / "cifar-10-batches-py").is_dir():
        try:
            ds = CIFAR10(str(folder), train=train, download=False)
            images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
            return images, np.asarray(ds.targets, np.int64), list(ds.classes), f"official CIFAR-10 batches under {folder.resolve()}"
        except RuntimeError:
            pass  # corrupt or incomplete: try the other layouts
    if (folder / split).is_dir():
        images, labels, classes, source = _load_image_folder(folder / split)
        if classes != CIFAR10_CLASSES:
            raise DataUnavailableError(f"{folder / split} holds classes {classes}, not CIFAR-10's {CIFAR10_CLASSES}")
        return images, labels, classes, source + " (JPEG-re-encoded copy, not the official batches)"
    layout = "cifar10/cifar-10-batches-py or cifar10/{train,test}/<class>/*.jpg"
    if not download:
        raise _offline_error("CIFAR-10", folder, layout, "download disabled")
    try:
        ds = CIFAR10(str(folder), train=train, download=True)
    except Exception as e:
        raise _offline_error("CIFAR-10", folder, layout, e) from None
    images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))
    return images, np.asarray(ds.targets, np.int64), list(ds.classes), f"CIFAR-10 downloaded by torchvision into {folder.resolve()}"


def _folder_fingerprint(files: list[Path]) -> str:
    h = hashlib.sha1()
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _load_image_folder(folder: Path):
    """Decode an ImageFolder tree (``<folder>/<class>/<image>``), caching the arrays as .npz."""
    from PIL import Image

    folder = folder.resolve()
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataUnavailableError(f"{folder} has no class sub-folders; expected the ImageFolder layout <folder>/<class>/<image>")
    files, labels = [], []
    for k, c in enumerate(classes):
        for f in sorted((folder / c).iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                files.append(f)
                labels.append(k)
    if not files:
        raise DataUnavailableError(f"{folder} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    cache = cache_dir() / "arrays" / f"folder-{_folder_fingerprint(files)}.npz"
    source = f"image folder {folder}"
    if cache.is_file():
        with np.load(cache) as z:
            return z["images"], z["labels"], classes, source
    first = Image.open(files[0])
    mode = "L" if first.mode in ("L", "1", "I;16") else "RGB"
    arrays = []
    for f in files:
        with Image.open(f) as im:
            a = np.asarray(im.convert(mode))
        if a.shape[:2] != arrays[0].shape[:2] if arrays else False:
            raise DataUnavailableError(f"{f} is {a.shape[1]}x{a.shape[0]} but {files[0]} is "
                                       f"{arrays[0].shape[1]}x{arrays[0].shape[0]}; resize the images to one size")
        arrays.append(a)
    images = np.stack(arrays)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.asarray(labels, np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, images=images, labels=labels)
    os.replace(tmp, cache)
    return images, labels, classes, source


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


@functools.lru_cache(maxsize=8)
def _load_split(name: str, split: str, root: str, download: bool):
    """Full split in file order, memoized per process: (x float32, y, classes, source, true_bits)."""
    true_bits = None
    if name == "synthetic":
        x, y, classes, source, true_bits = _load_synthetic(split)
        return torch.from_numpy(x), torch.from_numpy(y), classes, source, true_bits
    if name == "mnist":
        images, y, classes, source = _load_mnist(split, Path(root), download)
        mean, std = NORMALIZATION["mnist"]
    elif name == "cifar10":
        images, y, classes, source = _load_cifar10(split, Path(root), download)
        mean, std = NORMALIZATION["cifar10"]
    else:  # folder:<path>
        path = Path(name.split(":", 1)[1]).expanduser()
        if (path / split).is_dir():
            path = path / split
        elif split != "train":
            raise DataUnavailableError(f"{path} has no {split}/ sub-folder; the {split} split of a folder dataset "
                                       f"lives in <path>/{split}/<class>/*")
        if not path.is_dir():
            raise DataUnavailableError(f"image folder {path} does not exist")
        images, y, classes, source = _load_image_folder(path)
        c = images.shape[1]
        mean, std = (FOLDER_NORMALIZATION[0],) * c, (FOLDER_NORMALIZATION[1],) * c
    x = torch.from_numpy(images).float().div_(255.0)
    x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
    return x, torch.from_numpy(y), classes, source, true_bits


def transmission_order(size: int, seed: int | None) -> np.ndarray:
    """The agreed order in which samples are sent: a seeded permutation (identity for seed=None)."""
    if seed is None:
        return np.arange(size)
    g = torch.Generator().manual_seed(int(seed))
    return torch.randperm(size, generator=g).numpy()


def load(
    name: str,
    split: str = "train",
    root: str | os.PathLike | None = None,
    n: int | None = None,
    seed: int | None = 0,
    download: bool | None = None,
) -> Dataset:
    """Load ``split`` of dataset ``name`` in the transmission order drawn from ``seed``, first ``n`` samples.

    ``download=None`` downloads missing MNIST/CIFAR-10 files unless ``MDL_OFFLINE`` is set.
    """
    if not isinstance(name, str) or not (name in ("mnist", "cifar10", "synthetic") or name.startswith("folder:")):
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose 'train' or 'test'")
    if download is None:
        download = not os.environ.get("MDL_OFFLINE")
    x, y, classes, source, true_bits = _load_split(name, split, str(data_root(root)), bool(download))
    size = int(y.shape[0])
    if n is None:
        n = size
    if int(n) != n or not 0 < n <= size:
        raise ValueError(f"n must be an integer in 1..{size} for {name}/{split}, got {n!r}")
    order = transmission_order(size, seed)[: int(n)]
    idx = torch.from_numpy(order)
    return Dataset(
        name=name,
        split=split,
        x=x[idx],
        y=y[idx],
        K=len(classes),
        classes=list(classes),
        source=source,
        seed=seed,
        indices=order,
        true_bits=None if true_bits is None else true_bits[order],
    )
