"""Weight averaging (training.WeightAverage, Recipe.ema): the average by its formula from the raw trajectory, training
itself unchanged, the weights kept, a file round trip, old params unchanged."""

import dataclasses

import numpy as np
import pytest
import torch

from mdl_utils import data, scales, training
from mdl_utils.codes import files as F
from mdl_utils.codes import prequential as P
from mdl_utils.models import build


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=240, seed=2)


def trajectory(synth, **kw) -> tuple[list[np.ndarray], training.FitResult, torch.nn.Module]:
    """The model's parameters (flat, float64) at every evaluation of a fit evaluated after each step."""
    net = build("mlp", tuple(synth.x.shape[1:]), 10, seed=1)
    seen: list[np.ndarray] = []

    def record(epoch, model):
        seen.append(torch.cat([p.detach().flatten() for p in model.parameters()]).double().numpy())

    options = training.FitOptions(**{**dict(epochs=3, batch_size=32, lr=1e-2, eval_every=1, patience=None,
                                            restore_best=False), **kw})
    fitted = training.fit(net, synth.x[:120], synth.y[:120], options, seed=5, device="cpu", on_epoch_end=record)
    return seen, fitted, net


def test_evaluations_see_the_average_of_the_unchanged_raw_trajectory(synth):
    """a_t = d_t a_{t-1} + (1 - d_t) theta_t with d_t = min(0.8, (1 + t) / (10 + t)), theta_t the parameters of
    the same fit without an average (averaging does not change a training step), and the fit ends on a_T."""
    raw, _, _ = trajectory(synth)
    averaged, fitted, net = trajectory(synth, ema=0.8)
    assert len(raw) == len(averaged) == fitted.steps_run + 1 > 10
    a = raw[0].copy()
    for t in range(1, len(raw)):
        d = min(0.8, (1 + t) / (10 + t))
        a = d * a + (1 - d) * raw[t]
        assert np.allclose(averaged[t], a, rtol=1e-5, atol=1e-6), t
    assert not np.allclose(averaged[-1], raw[-1], atol=1e-4)  # the average is not the last weights
    final = torch.cat([p.detach().flatten() for p in net.parameters()]).double().numpy()
    assert np.array_equal(final, averaged[-1])


def test_early_stopping_keeps_the_best_average(synth):
    averaged, fitted, net = trajectory(synth, ema=0.8, patience=2, restore_best=True, epochs=20)
    final = torch.cat([p.detach().flatten() for p in net.parameters()]).double().numpy()
    assert 0 < fitted.best_epoch < fitted.epochs_run and np.array_equal(final, averaged[fitted.best_epoch])


def test_a_decay_outside_zero_to_one_is_refused(synth):
    with pytest.raises(ValueError, match=r"ema=1.0: the average's decay must be in \[0, 1\)"):
        trajectory(synth, ema=1.0)


def test_an_averaged_warm_code_round_trips_through_a_file_and_is_the_chapters(synth):
    """Bob averages the same weights: the file decodes exactly and codes what the chapter computes, which the
    average changes; the field appears in params only when set (older runs keep their hashes)."""
    r = P.Recipe(model="mlp", timesteps=(10, 20, 40, 80, 160, 240), epochs=3, batch_size=32, lr=1e-2, seed=3,
                 warm_start=True, patience=None, schedule="cosine", restore_best=False, record_epochs=False,
                 min_calibration=5, ema=0.9)
    assert scales.as_params(r)["ema"] == 0.9 and "ema" not in scales.as_params(dataclasses.replace(r, ema=0.0))
    code = F.PrequentialCode(len(synth), 10, scales.as_params(r))
    enc = F.encode(synth, code, progress=False)
    dec = F.decode(enc.data, dataclasses.replace(synth, y=torch.full_like(synth.y, -1)), code, progress=False)
    chapter = {e: P.prequential_code(synth, None, dataclasses.replace(r, ema=e), scale="smoke", device="cpu",
                                     progress=False).codelength_bits for e in (0.9, 0.0)}
    assert np.array_equal(dec.labels, synth.y.numpy()) and np.array_equal(dec.probs, enc.probs)
    assert enc.codelength_bits == pytest.approx(chapter[0.9], rel=1e-9)
    assert abs(chapter[0.9] - chapter[0.0]) > 1e-3
