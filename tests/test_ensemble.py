"""Ensembles of prequential chains (Recipe.members): the average by hand, member 0 is the single chain, a file
round trip, a resumed chain."""

import dataclasses
import io

import numpy as np
import pytest
import torch

from mdl_utils import data, scales, training
from mdl_utils.codes import files as F
from mdl_utils.codes import prequential as P
from mdl_utils.codes.calibration import fit_temperature

STEPS = (10, 20, 40, 80, 160, 240)


def recipe(**kw) -> P.Recipe:
    base = dict(model="mlp", timesteps=STEPS, epochs=2, patience=2, batch_size=32, lr=1e-2, seed=3,
                record_epochs=False, members=2, min_calibration=5)
    return P.Recipe(**{**base, **kw})


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=240, seed=2)


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_an_ensemble_predicts_the_average_of_its_members_by_hand(synth):
    """Member m is the recipe's single chain from seed 3 + m (uncalibrated); the ensemble's logits are the log of
    the mean of their softmaxes, its temperature the one fitted on that mean over the held-out labels."""
    y_prefix = synth.y[:80]
    ens = P.chain_for(synth.x, 10, recipe(), "cpu")
    assert isinstance(ens, P.Ensemble) and len(ens.members) == 2
    ens.train(y_prefix)
    singles = [P.Chain(synth.x, 10, recipe(members=1, seed=3 + m, calibrate=False), "cpu") for m in range(2)]
    for c in singles:
        c.train(y_prefix)
    probs = [softmax(c.logits(0, 160, calibrated=False).double().numpy()) for c in singles]
    mean = np.mean(probs, axis=0)
    z = ens.logits(0, 160, calibrated=False).double().numpy()
    assert np.allclose(softmax(z), mean, atol=1e-6)
    assert not np.allclose(probs[0], probs[1], atol=1e-3)  # two different members
    n_val = training.validation_size(80, 0.1)
    by_hand = fit_temperature(torch.from_numpy(np.log(mean[80 - n_val:80])).float(), y_prefix[80 - n_val:],
                              recipe().temperature_range, recipe().min_calibration)
    assert ens.temperature == pytest.approx(by_hand, rel=1e-4) and ens.temperature != 1.0


def test_recipes_refuse_empty_ensembles_and_epoch_records():
    with pytest.raises(ValueError, match="at least 1 member"):
        recipe(members=0)
    with pytest.raises(ValueError, match="record_epochs=False"):
        recipe(record_epochs=True)
    assert "members" not in scales.as_params(recipe(members=1)) and scales.as_params(recipe())["members"] == 2


def test_a_warm_ensemble_round_trips_through_a_file_and_codes_what_the_chapter_computes(synth):
    r = recipe(warm_start=True, carry_optimizer=True)
    code = F.PrequentialCode(len(synth), 10, scales.as_params(r))
    with training.torch_threads(1):
        enc = F.encode(synth, code, progress=False)
        dec = F.decode(enc.data, dataclasses.replace(synth, y=torch.full_like(synth.y, -1)), code, progress=False)
        chapter = P.prequential_code(synth, None, r, scale="smoke", device="cpu", progress=False)
        single = P.prequential_code(synth, None, dataclasses.replace(r, members=1), scale="smoke", device="cpu",
                                    progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy()) and np.array_equal(dec.probs, enc.probs)
    assert enc.codelength_bits == pytest.approx(chapter.codelength_bits, rel=1e-9)
    assert chapter.codelength_bits != pytest.approx(single.codelength_bits, rel=1e-4)
    assert chapter.curves["steps_run"][-1] == 2 * single.curves["steps_run"][-1]  # both members' steps


def test_a_warm_ensemble_continues_from_its_saved_state(synth):
    """state() after a block, saved and loaded as a checkpoint's is, into a fresh ensemble: the next block is the
    same to the bit."""
    r = recipe(warm_start=True, carry_optimizer=True)
    a = P.chain_for(synth.x, 10, r, "cpu")
    for t in (10, 20, 40):
        a.train(synth.y[:t])
    saved = io.BytesIO()
    torch.save(a.state(), saved)
    saved.seek(0)
    b = P.chain_for(synth.x, 10, r, "cpu")
    b.load_state(torch.load(saved, weights_only=False))
    for chain in (a, b):
        chain.train(synth.y[:80])
    assert torch.equal(a.logits(80, 160), b.logits(80, 160)) and a.temperature == b.temperature
