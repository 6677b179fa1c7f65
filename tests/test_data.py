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
    (dict(name="synthetic", n=0), "n must be an integer"),
    (dict(name="synthetic", n=10**6), "n must be an integer"),
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


def _make_folder(root, sizes, mode="RGB", shape=(8, 6)):
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
    _make_folder(root, {"train": {"cat": 3, "ant": 2}, "test": {"cat": 1, "ant": 1}})
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
