"""Where data live and what their loaders share: the data folder, the cache, the one error for missing or
damaged data, cached decoded arrays, standardization.

The data folder is the ``root`` argument, else ``MDL_DATA``, else ``~/.cache/mdl_utils/data`` (``MDL_CACHE``
moves the cache). Decoded image folders and packs are cached as ``.npz`` under the cache folder, never in the
project.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class DataUnavailableError(RuntimeError):
    """The data are not on disk and could not be downloaded."""


def cache_dir() -> Path:
    return Path(os.environ.get("MDL_CACHE") or Path.home() / ".cache" / "mdl_utils").expanduser()


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root``, else ``MDL_DATA``, else ``<cache>/data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("MDL_DATA")
    return Path(env).expanduser() if env else cache_dir() / "data"


def offline_error(what: str, where: Path, layout: str, why: object) -> DataUnavailableError:
    why = " ".join(str(why).split())
    return DataUnavailableError(
        f"{what} is not under {where} and could not be downloaded ({why}). "
        f"Set MDL_DATA to a folder holding {layout} (for example MDL_DATA=../shared/data), "
        f"or run once online so torchvision downloads it."
    )


def cached_arrays(key: str, decode) -> tuple[np.ndarray, np.ndarray]:
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


def standardize(images: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (N, C, H, W) as float32 (x / 255 - mean) / std per channel."""
    x = torch.from_numpy(images).float().div_(255.0)
    return x.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
