"""Data packs carry a whole dataset in one file, e.g. to a remote machine:
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

import functools
import gzip
import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .datafiles import DataUnavailableError, cached_arrays
from .folders import decode_images


PACK_SUFFIX = ".pack"


PACK_FORMAT = "mdl_utils data pack"


PACK_VERSION = 1


PACK_MAX_MIB = 60.0


MNIST_PREFIX = {"train": "train", "test": "t10k"}


IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same data give the same pack bytes


def parse_idx(data: bytes, name: str) -> np.ndarray:
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


def load_pack(dataset: str, split: str, path: Path):
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
            images, labels = (parse_idx(gzip.decompress(z.read(m)), f"{path}:{m}") for m in members)
            return images[:, None].copy(), labels.astype(np.int64), manifest["classes"], source
        if layout == "arrays":
            images, labels = (np.load(io.BytesIO(z.read(f"{split}-{kind}.npy")), allow_pickle=False)
                              for kind in ("images", "labels"))
            return images, labels, manifest["classes"], source
        if layout == "image-folder":
            index = json.loads(z.read(f"{split}.json"))
            images, labels = cached_arrays(
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
    return decode_images(sources, names), np.asarray(labels, np.int64)


def npy(a: np.ndarray) -> bytes:
    """``a`` as .npy bytes (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _write_zip(path: Path, manifest: dict, members) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data, deflate in [("manifest.json", json.dumps(manifest, indent=1).encode(), True), *members]:
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            z.writestr(info, data)


def write_pack(name: str, packer, dest: str | os.PathLike, root: Path, max_mib: float = PACK_MAX_MIB
               ) -> tuple[Path, dict]:
    """Pack dataset ``name`` with its ``packer`` (root -> layout, members [(name, bytes, deflate)], manifest extras)
    from the data folder ``root`` into ``dest/<name>.pack``: (path, manifest).

    Raises ValueError, leaving no file, when the pack would exceed ``max_mib`` MiB.
    """
    layout, members, extra = packer(root)
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
