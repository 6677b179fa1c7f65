"""Data packs (``python -m mdl_utils.data pack``): one file per dataset, loaded bit for bit like the unpacked data."""

import pickle
import struct
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from mdl_utils import data

from .conftest import needs_data, real_data_root


@pytest.fixture(autouse=True)
def scratch_cache(tmp_path, monkeypatch):
    """A private decode cache (every test names its data roots itself)."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _write_idx(path, a: np.ndarray):
    path.write_bytes(struct.pack(f">BBBB{a.ndim}I", 0, 0, 0x08, a.ndim, *a.shape) + a.astype(">u1").tobytes())


def _make_mnist(root, sizes=(("train", 30), ("t10k", 12))):
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for prefix, n in sizes:
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))


def _make_cifar_folder(root, per_class=(("train", 3), ("test", 1))):
    rng = np.random.default_rng(2)
    for split, n in per_class:
        for c in data.CIFAR10_CLASSES:
            (root / "cifar10" / split / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(a, "RGB").save(root / "cifar10" / split / c / f"{i:04d}.jpg", quality=90)


def _make_cifar_batches(root, monkeypatch):
    """Official-format pickled batches; torchvision's md5 check is switched off for these fakes."""
    folder = root / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, 4).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": data.CIFAR10_CLASSES}))
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", lambda *args, **kwargs: True)


def _assert_same(a: data.Dataset, b: data.Dataset):
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.classes == b.classes and np.array_equal(a.indices, b.indices)


def _round_trip(tmp_path, name: str, layout: str):
    """Pack ``name`` from tmp_path/orig into tmp_path/packs; check both splits load identically from each."""
    path, manifest = data.write_pack(name, tmp_path / "packs", root=tmp_path / "orig")
    assert path == tmp_path / "packs" / f"{name}.pack" and manifest["layout"] == layout
    for split in data.SPLITS:
        for seed in (None, 7):
            orig = data.load(name, split, root=tmp_path / "orig", seed=seed, download=False)
            packed = data.load(name, split, root=tmp_path / "packs", seed=seed, download=False)
            _assert_same(orig, packed)
            assert packed.source.startswith(f"data pack {path}") and manifest["checksum"][:16] in packed.source
    return path


def test_mnist_round_trip(tmp_path):
    _make_mnist(tmp_path / "orig")
    _round_trip(tmp_path, "mnist", "idx-gzip")


def test_cifar10_image_folder_round_trip_and_cache(tmp_path, scratch_cache):
    _make_cifar_folder(tmp_path / "orig")
    path = _round_trip(tmp_path, "cifar10", "image-folder")
    files = sorted((tmp_path / "orig" / "cifar10" / "test").glob("*/*.jpg"))
    with zipfile.ZipFile(path) as z:  # the JPEG bytes travel as they are on disk
        assert z.read("test.bin") == b"".join(f.read_bytes() for f in files)
    cached = sorted(p.name for p in (scratch_cache / "arrays").glob("pack-*.npz"))
    assert len(cached) == 2  # one per split, keyed on the pack checksum
    first = data.load("cifar10", "train", root=path.parent, download=False)
    data._load_split.cache_clear()
    _assert_same(first, data.load("cifar10", "train", root=path.parent, download=False))  # now from the .npz
    assert sorted(p.name for p in (scratch_cache / "arrays").glob("pack-*.npz")) == cached


def test_cifar10_official_batches_round_trip(tmp_path, monkeypatch):
    _make_cifar_batches(tmp_path / "orig", monkeypatch)
    _round_trip(tmp_path, "cifar10", "arrays")


def test_unpacked_layout_wins_over_a_pack(tmp_path):
    _make_mnist(tmp_path / "orig")
    data.write_pack("mnist", tmp_path / "orig", root=tmp_path / "orig")
    assert data.load("mnist", root=tmp_path / "orig", download=False).source.startswith("MNIST IDX files")


def test_packs_are_reproducible(tmp_path):
    _make_mnist(tmp_path / "orig")
    a, _ = data.write_pack("mnist", tmp_path / "a", root=tmp_path / "orig")
    b, _ = data.write_pack("mnist", tmp_path / "b", root=tmp_path / "orig")
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.parametrize("where", ["member", "manifest", "end"])
def test_a_flipped_byte_names_the_pack_and_the_fix(tmp_path, where):
    _make_mnist(tmp_path / "orig")
    path, _ = data.write_pack("mnist", tmp_path / "packs", root=tmp_path / "orig")
    raw = bytearray(path.read_bytes())
    at = {"member": len(raw) // 2, "manifest": raw.index(b"manifest.json") + 20, "end": len(raw) - 3}[where]
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(data.DataUnavailableError, match="re-run `python -m mdl_utils.data pack") as e:
        data.load("mnist", "test", root=path.parent, download=False)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_cli_prints_one_line_per_pack(tmp_path, capsys):
    _make_mnist(tmp_path / "orig")
    _make_cifar_folder(tmp_path / "orig", per_class=(("train", 1), ("test", 1)))
    assert data.main(["pack", str(tmp_path / "packs"), "--root", str(tmp_path / "orig")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["mnist.pack", "cifar10.pack"]
    assert all(" MiB  sha256 " in line for line in lines)


def test_cli_errors_are_one_line_and_name_the_fix(tmp_path, capsys):
    assert data.main(["pack", str(tmp_path / "packs"), "--root", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "MDL_DATA" in err and "mnist/MNIST/raw/*-ubyte" in err
    assert data.main(["pack", str(tmp_path / "packs"), "--root", str(tmp_path), "--datasets", "cifar10"]) == 1
    assert "cifar10/{train,test}/<class>/*.jpg" in capsys.readouterr().err
    _make_mnist(tmp_path / "orig")
    assert data.main(["pack", str(tmp_path / "packs"), "--root", str(tmp_path / "orig"), "--max-mib", "0.001"]) == 1
    assert "--max-mib" in capsys.readouterr().err and not list((tmp_path / "packs").iterdir())


@needs_data
def test_real_mnist_pack_is_small_and_bit_identical(tmp_path):
    path, _ = data.write_pack("mnist", tmp_path, root=real_data_root())
    assert path.stat().st_size <= data.PACK_MAX_MIB * 2**20
    for split in data.SPLITS:
        _assert_same(data.load("mnist", split, root=real_data_root(), seed=None, download=False),
                     data.load("mnist", split, root=tmp_path, seed=None, download=False))


@needs_data
def test_real_cifar10_pack_is_small_and_its_test_split_bit_identical(tmp_path):
    """Packing reads all 60,000 files (a few seconds); only the test split is decoded (the train split takes ~8 s)."""
    path, manifest = data.write_pack("cifar10", tmp_path, root=real_data_root(), max_mib=1000)
    if manifest["layout"] == "image-folder":  # the official batches are raw pixels, ~176 MiB
        assert path.stat().st_size <= data.PACK_MAX_MIB * 2**20
    _assert_same(data.load("cifar10", "test", root=real_data_root(), download=False),
                 data.load("cifar10", "test", root=tmp_path, download=False))
