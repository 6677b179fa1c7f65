"""Test-time augmentation (mdl_utils.tta): the views by hand, the average by NumPy, causality through a file."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from mdl_utils import data, scales, training, tta
from mdl_utils.codes import files as F
from mdl_utils.codes import prequential as P

from .conftest import ROOT


def test_views_move_and_mirror_pixels_as_written():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    down = tta.view(x, 1, 0, False, fill=-1.0)[0, 0]
    assert down[0].tolist() == [-1.0] * 4 and torch.equal(down[1:], x[0, 0, :2])
    left = tta.view(x, 0, -1, False, fill=-1.0)[0, 0]
    assert torch.equal(left[:, :3], x[0, 0, :, 1:]) and left[:, 3].tolist() == [-1.0] * 3
    mirrored = tta.view(x, 0, 0, True)[0, 0]
    assert mirrored[0].tolist() == [3.0, 2.0, 1.0, 0.0]
    both = tta.view(x, 0, 1, True, fill=-1.0)[0, 0]  # moved right, then mirrored: the new column ends on the right
    assert both[:, 3].tolist() == [-1.0] * 3 and both[0, :3].tolist() == [2.0, 1.0, 0.0]
    nhwc = torch.rand(2, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    assert tta.view(nhwc, 1, -1, True).is_contiguous(memory_format=torch.channels_last)


def numpy_view(x: np.ndarray, down: int, right: int, mirrored: bool, fill: float) -> np.ndarray:
    out = np.full_like(x, fill)
    h, w = x.shape[-2:]
    out[..., max(down, 0):h + min(down, 0), max(right, 0):w + min(right, 0)] = \
        x[..., max(-down, 0):h - max(down, 0), max(-right, 0):w - max(right, 0)]
    return out[..., ::-1] if mirrored else out


@pytest.mark.parametrize("name", ["flip", "shift1", "flip_shift1"])
def test_the_prediction_is_the_mean_of_the_views_softmaxes(name):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.Flatten(), torch.nn.Linear(3 * 6 * 6, 4))
    x = torch.rand(5, 1, 8, 8)
    z = training.predict_logits(tta.predictor(net, name, fill=-0.5), x, "cpu").double().numpy()
    w = [p.detach().double().numpy() for p in net.parameters()]
    views = tta.TTA[name]
    probs = []
    for v in views:
        xv = numpy_view(x.double().numpy(), *v, fill=-0.5)
        windows = np.lib.stride_tricks.sliding_window_view(xv[:, 0], (3, 3), axis=(1, 2))  # (5, 6, 6, 3, 3)
        conv = np.einsum("nhwij,cij->nchw", windows, w[0][:, 0]) + w[1][None, :, None, None]
        logits = conv.reshape(5, -1) @ w[2].T + w[3]
        e = np.exp(logits - logits.max(1, keepdims=True))
        probs.append(e / e.sum(1, keepdims=True))
    assert len(views) > 1 and np.allclose(np.exp(z), np.mean(probs, axis=0), atol=1e-6)
    assert np.allclose(np.exp(z).sum(1), 1.0, atol=1e-6)


def test_no_views_is_the_network_itself_and_unknown_views_are_refused():
    net = torch.nn.Linear(4, 2)
    assert tta.predictor(net, "none") is net
    with pytest.raises(ValueError, match="unknown test-time augmentation 'mirror'; choose one of none, flip"):
        P.Recipe(model="mlp", timesteps=(8, 16), tta="mirror")


def test_runs_before_tta_keep_their_params():
    """The field appears in a recipe's params only when set: a stored run's params, its checkpoint fingerprint and
    its labels file's recipe hash are those of the recipe as it is today."""
    result = json.loads((ROOT / "results" / "prequential" / "mnist-mlp_warm-cpu.json").read_text())
    stored, ours = result["params"], scales.as_params(P.settings("cpu").recipe("mnist", "mlp_warm", result["n"]))
    assert "tta" not in ours and "tta" not in stored and set(ours) <= set(stored)
    assert {k: stored[k] for k in ours} == ours
    recipe = P.Recipe(**ours)
    assert scales.as_params(dataclasses.replace(recipe, tta="shift1"))["tta"] == "shift1"


def test_a_tta_code_round_trips_through_a_file_and_is_the_chapters():
    """Bob recomputes each averaged prediction from the images and the labels he decoded: the file decodes exactly,
    and its codelength is the prequential code's, which the views change."""
    g = torch.Generator().manual_seed(4)
    x, y = torch.rand(120, 1, 8, 8, generator=g), torch.randint(0, 10, (120,), generator=g)
    ds = data.Dataset("toy", "train", x, y, 10, [str(k) for k in range(10)], "test tensors", 0, np.arange(120))
    recipe = P.Recipe(model="mlp", timesteps=(10, 20, 40, 80, 120), epochs=2, patience=2, seed=0,
                      record_epochs=False, tta="shift1")
    code = F.PrequentialCode(len(ds), 10, scales.as_params(recipe))
    with training.torch_threads(1):
        enc = F.encode(ds, code, progress=False)
        dec = F.decode(enc.data, dataclasses.replace(ds, y=torch.full_like(ds.y, -1)), code, progress=False)
        chapter = {v: P.prequential_code(ds, None, dataclasses.replace(recipe, tta=v), scale="smoke", device="cpu",
                                         progress=False).codelength_bits for v in ("shift1", "none")}
    assert np.array_equal(dec.labels, y.numpy()) and np.array_equal(dec.probs, enc.probs)
    assert enc.codelength_bits == pytest.approx(chapter["shift1"], rel=1e-9)
    assert abs(chapter["shift1"] - chapter["none"]) > 1e-3
