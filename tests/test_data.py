import os

import numpy as np
import pytest
import torch
from PIL import Image

from mdl_utils import data

from .conftest import needs_data


def test_synthetic_shapes_dtypes_and_known_true_bits():
    d = data.load("synthetic", "train", n=500, seed=3)
    assert d.x.shape == (500, data.SYNTHETIC_DIM) and d.x.dtype == torch.float32
    assert d.y.shape == (500,) and d.y.dtype == torch.int64 and d.K == 10
    # true_bits is the teacher's own -log2 p(y|x), recomputed independently here
    w, b = data.synthetic_teacher()
    log_p = torch.log_softmax(d.x.double() @ w + b, dim=1)
    expected = -log_p[torch.arange(500), d.y].numpy() / np.log(2)
    np.testing.assert_allclose(d.true_bits, expected, rtol=1e-5)
    assert 0 < d.true_bits.mean() < np.log2(10)


def test_transmission_order_is_a_seeded_permutation():
    a = data.load("synthetic", "train", seed=5)
    b = data.load("synthetic", "train", seed=5)
    c = data.load("synthetic", "train", seed=6)
    assert torch.equal(a.y, b.y) and torch.equal(a.x, b.x)
    assert not np.array_equal(a.indices, c.indices)
    assert np.array_equal(np.sort(a.indices), np.arange(len(a)))  # a permutation of the split
    ordered = data.load("synthetic", "train", seed=None)
    assert torch.equal(ordered.y[a.indices], a.y)
    # the first n of an order are the head of the full order
    head = data.load("synthetic", "train", n=100, seed=5)
    assert torch.equal(head.y, a.y[:100]) and np.array_equal(head.indices, a.indices[:100])


def test_train_and_test_splits_differ_but_share_the_teacher():
    tr, te = data.load("synthetic", "train"), data.load("synthetic", "test")
    assert len(tr) == 60000 and len(te) == 10000
    assert not torch.equal(tr.x[:10], te.x[:10])


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="imagenet"), "unknown dataset 'imagenet'"),
    (dict(name="synthetic", split="val"), "unknown split"),
    (dict(name="synthetic", n=0), "n must be a positive integer"),
    (dict(name="synthetic", n=2.5), "n must be a positive integer"),
    (dict(name="synthetic", n=True), "n must be a positive integer"),
])
def test_bad_arguments_name_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_offline_without_data_names_mdl_data(tmp_path, name):
    with pytest.raises(data.DataUnavailableError, match="MDL_DATA") as e:
        data.load(name, "train", root=tmp_path, download=False)
    assert "\n" not in str(e.value)


def test_mdl_offline_disables_download(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_OFFLINE", "1")
    with pytest.raises(data.DataUnavailableError, match="download disabled"):
        data.load("mnist", root=tmp_path)


def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data.data_root() == tmp_path / "env"
    monkeypatch.delenv("MDL_DATA")
    assert data.data_root() == tmp_path / "cache" / "data"


def make_folder(root, sizes, mode="RGB", shape=(8, 6)):
    """An ImageFolder tree of random images: sizes = {split: {class: count}} (split "" = no split folder)."""
    rng = np.random.default_rng(0)
    for split, per_class in sizes.items():
        for c, count in per_class.items():
            (root / split / c).mkdir(parents=True)
            for i in range(count):
                a = rng.integers(0, 256, size=shape + ((3,) if mode == "RGB" else ()), dtype=np.uint8)
                Image.fromarray(a, mode).save(root / split / c / f"{i:03d}.png")


def test_image_folder_dataset_and_its_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    make_folder(root, {"train": {"cat": 3, "ant": 2}, "test": {"cat": 1, "ant": 1}})
    d = data.load(f"folder:{root}", "train", seed=None)
    assert d.classes == ["ant", "cat"] and d.K == 2
    assert d.x.shape == (5, 3, 8, 6) and d.x.dtype == torch.float32
    assert d.y.tolist() == [0, 0, 1, 1, 1]
    # pixels survive: x = (pixel/255 - 0.5) / 0.25
    pixel = np.asarray(Image.open(root / "train" / "ant" / "000.png"))[0, 0, 0]
    assert d.x[0, 0, 0, 0].item() == pytest.approx((pixel / 255 - 0.5) / 0.25, abs=1e-6)
    assert len(list((tmp_path / "cache" / "arrays").glob("*.npz"))) == 1
    assert len(data.load(f"folder:{root}", "test")) == 2


def test_image_folder_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(data.DataUnavailableError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DataUnavailableError, match="no class sub-folders"):
        data.load(f"folder:{tmp_path / 'empty'}")


@needs_data
def test_real_mnist_matches_the_published_facts():
    d = data.load("mnist", "train", seed=None)
    assert d.x.shape == (60000, 1, 28, 28) and d.y.dtype == torch.int64
    assert d.label_counts().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert d.y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert abs(float(d.x.mean())) < 1e-3  # standardized with the official mean 0.1307
    assert len(data.load("mnist", "test")) == 10000


@needs_data
def test_real_cifar10_has_5000_images_per_class():
    d = data.load("cifar10", "train")
    assert d.x.shape == (50000, 3, 32, 32) and d.K == 10
    assert d.label_counts().tolist() == [5000] * 10
    assert d.classes[0] == "airplane" and d.classes[-1] == "truck"
    assert data.load("cifar10", "test").label_counts().tolist() == [1000] * 10


def test_more_samples_than_the_split_loads_the_split_and_says_so():
    with data.clamp_log() as clamped:
        d = data.load("synthetic", "test", n=10**6, seed=2)
        data.load("synthetic", "test", n=100)
    assert d.n == 10000 and d.n_asked == 10**6 and "(n = 1000000 was asked)" in d.source
    assert torch.equal(d.y, data.load("synthetic", "test", seed=2).y)  # the whole split, same order
    assert clamped == [{"dataset": "synthetic", "split": "test", "asked": 10**6, "used": 10000}]
    assert data.load("synthetic", "test", n=100).n_asked is None


def test_a_folder_with_one_class_is_refused_at_load(tmp_path, monkeypatch):
    """One class: K = 1, nothing to send; the coder used to fail with 'Probability distribution not normalizable'."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "one", {"train": {"shirt": 3}, "test": {"shirt": 1}})
    make_folder(tmp_path / "flat", {"": {"shirt": 3}})
    for name in ("one", "flat"):
        with pytest.raises(data.DataUnavailableError, match="one class folder \\('shirt'\\).*K >= 2") as e:
            data.load(f"folder:{tmp_path / name}", "train", n=2)
        assert "\n" not in str(e.value)


def test_the_test_split_is_labelled_by_the_train_splits_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "t", {"train": {"ant": 1, "bee": 1, "cat": 1}, "test": {"ant": 1, "cat": 2}})
    test = data.load(f"folder:{tmp_path / 't'}", "test", seed=None)
    assert test.classes == ["ant", "bee", "cat"] and test.K == 3
    assert test.y.tolist() == [0, 2, 2]  # cat is class 2 in both splits, although test/ has no bee
    make_folder(tmp_path / "u", {"train": {"ant": 1, "bee": 1}, "test": {"ant": 1, "cow": 1}})
    with pytest.raises(data.DataUnavailableError, match="class folders \\['cow'\\] that the training split lacks"):
        data.load(f"folder:{tmp_path / 'u'}", "test")


def _labels(root):
    return data.load(f"folder:{root}", "train", seed=None).y.tolist()


def test_the_folder_cache_follows_moved_files_new_classes_and_rewritten_pixels(tmp_path, monkeypatch):
    """The decoded arrays are cached on disk and in memory: a moved file, a new (empty) class folder, a file
    rewritten with its size and mtime kept must all be seen by the next load, in the same process."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "tree"
    make_folder(root, {"train": {"ant": 2, "cat": 2}})
    assert _labels(root) == [0, 0, 1, 1]
    (root / "train" / "ant" / "001.png").rename(root / "train" / "cat" / "009.png")
    assert _labels(root) == [0, 1, 1, 1]
    (root / "train" / "aardvark").mkdir()
    assert _labels(root) == [0, 1, 1, 1]  # an empty class folder is no class (K stays 2)
    Image.fromarray(np.zeros((8, 6, 3), np.uint8)).save(root / "train" / "aardvark" / "000.png")
    assert _labels(root) == [0, 1, 2, 2, 2]  # ant is now class 1: cached labels would still say 0
    target, pixels = root / "train" / "cat" / "000.png", np.zeros((8, 6, 3), np.uint8)
    Image.fromarray(pixels).save(target, compress_level=0)  # stored, not deflated: the size depends on the shape
    before, st = data.load(f"folder:{root}", "train", seed=None).x[2].clone(), target.stat()  # cat/000
    Image.fromarray(pixels + 200).save(target, compress_level=0)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # as cp -p leaves it: same size, same mtime
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    after = data.load(f"folder:{root}", "train", seed=None).x[2]
    assert after.mean() > before.mean() + 2  # the new pixels, not the cached ones
    assert len(list((tmp_path / "cache" / "arrays").glob("*.npz"))) == 5


def test_folder_errors_name_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "flat", {"": {"a": 2, "b": 2}})
    assert data.load(f"folder:{tmp_path / 'flat'}", "train").n == 4  # a flat folder is the train split
    with pytest.raises(data.DataUnavailableError, match="has no test/ sub-folder; the test split of a folder"):
        data.load(f"folder:{tmp_path / 'flat'}", "test")
    with pytest.raises(ValueError, match=f"at most the 4 of folder:{tmp_path / 'flat'}, train split\\), got 0"):
        data.load(f"folder:{tmp_path / 'flat'}", "train", n=0)


def test_test_images_of_another_size_than_the_train_images_are_refused(tmp_path, monkeypatch):
    """Else a model trained on 28 x 28 images meets 32 x 32 ones: 'mat1 and mat2 shapes cannot be multiplied'."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    make_folder(tmp_path / "f", {"train": {"a": 2, "b": 2}}, mode="L", shape=(28, 28))
    make_folder(tmp_path / "f", {"test": {"a": 1, "b": 1}}, mode="L", shape=(32, 32))
    with pytest.raises(data.DataUnavailableError, match="the test images are 32x32 with 1 channel\\(s\\) but the "
                                                        "train images are 28x28 with 1; give both splits"):
        data.load(f"folder:{tmp_path / 'f'}", "test")


def test_folder_quirks_hidden_files_empty_classes_and_an_empty_path(tmp_path, monkeypatch):
    """macOS AppleDouble (._*) and other hidden files are no samples; an empty class folder is no class; an
    empty path is an error, not the working directory."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "q"
    make_folder(root, {"train": {"a": 2, "b": 2, "c": 1}})
    (root / "train" / "a" / "._000.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (root / "train" / "b" / ".hidden.png").write_bytes((root / "train" / "b" / "000.png").read_bytes())
    (root / "train" / "empty").mkdir()
    d = data.load(f"folder:{root}", "train", seed=None)
    assert d.n == 5 and d.K == 3 and d.classes == ["a", "b", "c"]
    with pytest.raises(data.DataUnavailableError, match="folder: needs a path") as err:
        data.load("folder:")
    assert "\n" not in str(err.value)


def test_a_truncated_image_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "t"
    make_folder(root, {"train": {"a": 2, "b": 2}}, shape=(16, 16))
    bad = root / "train" / "b" / "001.png"
    bad.write_bytes(bad.read_bytes()[:60])
    with pytest.raises(data.DataUnavailableError, match=f"{bad}: .*remove or replace the file") as err:
        data.load(f"folder:{root}", "train")
    assert "\n" not in str(err.value)


def test_16_bit_greyscale_is_scaled_not_saturated(tmp_path, monkeypatch):
    """A 16-bit PNG's pixel v becomes round(v * 255 / 65535), as an 8-bit copy of the image would have it."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "w"
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 65536, size=(8, 8), dtype=np.uint16)).save(root / c / f"{i}.png")
    d = data.load(f"folder:{root}", "train", seed=None)
    raw = np.asarray(Image.open(root / "a" / "0.png"), dtype=np.float64)
    expected = (np.rint(raw * 255 / 65535) / 255 - 0.5) / 0.25
    assert d.x.shape == (4, 1, 8, 8)
    np.testing.assert_allclose(d.x[0, 0].numpy(), expected, atol=1e-6)
    assert (d.x == d.x.max()).float().mean() < 0.05  # not clipped to white


def test_one_grey_image_among_colour_ones_makes_no_grey_dataset(tmp_path, monkeypatch):
    """The first file used to decide: a grey one first made every image 1-channel."""
    monkeypatch.setenv("MDL_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "m"
    make_folder(root, {"train": {"b": 2, "c": 2}})
    (root / "train" / "a").mkdir()
    Image.fromarray(np.full((8, 6), 128, np.uint8), "L").save(root / "train" / "a" / "0.png")
    d = data.load(f"folder:{root}", "train", seed=None)
    assert d.x.shape == (5, 3, 8, 6) and d.classes == ["a", "b", "c"]
    assert torch.equal(d.x[0, 0], d.x[0, 1]) and torch.equal(d.x[0, 1], d.x[0, 2])  # grey: three equal channels
