"""Hedged forward calibration (mdl_utils.codes.calibration): it cannot make a prequential code much longer than
the raw predictions', where a temperature fitted alone once doubled a code (issue: calibration on small, easy
data)."""

import math

import numpy as np
import pytest
import torch

from mdl_utils import api
from mdl_utils.codes import calibration as C
from mdl_utils.results import load_array

EPS_BITS = -math.log2(1 - C.FLOOR)  # what keeping the other prediction's floor costs per label, at most


def random_sequence(rng, n: int, k: int = 10):
    """Probabilities of the true labels under two predictions that take turns being right."""
    good = rng.uniform(0.5, 1.0, n)
    bad = rng.uniform(1e-6, 0.2, n)
    turns = (np.arange(n) // rng.integers(5, 60)) % 2 == 0
    return np.where(turns, good, bad), np.where(turns, bad, good), rng.random(n) < 0.9


@pytest.mark.parametrize("seed", range(5))
def test_the_hedge_is_never_far_from_the_better_prediction_over_any_stretch(seed):
    """For m = calibrated or raw and any stretch a..b: L_q <= L_m + log2(1 / w_m(a)) + k log2(1 / (1 - eps)),
    so at most 1 + n eps' over the whole sequence and 16 + k eps' over any stretch."""
    rng = np.random.default_rng(seed)
    p_t, p_raw, on = random_sequence(rng, 2000)
    bits, w = C.hedged_bits(p_t, p_raw, on)
    own = {"calibrated": -np.log2(np.where(on, p_t, p_raw)), "raw": -np.log2(p_raw)}
    weight = {"calibrated": w, "raw": 1 - w}
    assert np.all((C.FLOOR <= w) & (w <= 1 - C.FLOOR))
    for a, b in [(0, 2000)] + [tuple(sorted(rng.integers(0, 2000, 2))) for _ in range(200)]:
        for m in own:
            bound = -math.log2(weight[m][a]) + (b - a) * EPS_BITS + 1e-9
            assert bits[a:b].sum() - own[m][a:b].sum() <= bound, (m, a, b)
    assert bits.sum() <= min(v.sum() for v in own.values()) + 1 + 2000 * EPS_BITS


def test_the_hedge_is_the_bayes_mixture_while_no_weight_reaches_the_floor():
    """Without clipping the hedged code is the two-model Bayes mixture: -log2(prod p_T / 2 + prod p_raw / 2)."""
    rng = np.random.default_rng(0)
    p_t, p_raw = rng.uniform(0.3, 0.9, 40), rng.uniform(0.3, 0.9, 40)
    bits, w = C.hedged_bits(p_t, p_raw, np.ones(40, bool))
    assert w.min() > C.FLOOR and w.max() < 1 - C.FLOOR
    expected = -math.log2(0.5 * np.prod(p_t) + 0.5 * np.prod(p_raw))
    assert bits.sum() == pytest.approx(expected, abs=1e-9)
    assert w[1] == pytest.approx(p_t[0] / (p_t[0] + p_raw[0]))


def test_labels_without_a_temperature_are_sent_raw_and_leave_the_weight():
    bits, w = C.hedged_bits([0.9, 0.1, 0.5], [0.25, 0.5, 0.5], [False, False, True])
    assert bits[:2].tolist() == [2.0, 1.0] and w.tolist()[:3] == [0.5, 0.5, 0.5]
    assert bits[2] == pytest.approx(1.0)


def noisy_easy_task(n: int = 1200, noise: float = 0.02, seed: int = 0):
    """Two well separated classes with a few labels flipped: small held-out sets are often classified perfectly,
    so a temperature fitted on them alone runs to the bottom of its range and the next block's flipped labels cost
    many bits each."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 1, (n, 2)).astype(np.float32)
    x[:, 0] += np.where(y == 1, 3.0, -3.0)
    flipped = rng.random(n) < noise
    return torch.from_numpy(x), torch.from_numpy(np.where(flipped, 1 - y, y))


def test_on_small_easy_data_the_calibrated_code_stays_close_to_the_raw_one():
    """The case the temperature alone loses (about ten times the raw code here): the
    hedged code is at most 1 + n eps' bits above the raw code in all and 16 + m eps' on every block."""
    x, y = noisy_easy_task()
    r = api.prequential("logistic", x, y, timesteps=[10, 20, 40, 80, 160, 320, 640, 1200], epochs=30, lr=0.05)
    p, c = r.parts, r.curves
    assert p["bits_temperature"] > 5 * p["bits_uncalibrated"]  # the failure: a temperature fitted alone
    assert min(c["temperature"]) == pytest.approx(0.05, rel=1e-3)
    assert r.codelength_bits == p["bits_calibrated"] <= p["bits_uncalibrated"] + 1 + r.n * EPS_BITS
    for b, u, t0, t1 in zip(c["bits"], c["bits_per_sample_uncalibrated"], c["t_start"], c["t_end"]):
        assert b <= u * (t1 - t0) + 16 + (t1 - t0) * EPS_BITS + 1e-6, t0


def test_the_hedged_code_as_a_file_decodes_exactly_and_computes_the_chapters_bits(tmp_path):
    """Alice's file under the hedge (label by label where a block has a temperature) decodes to the labels, and
    its computed codelength is the chapter's, bit for bit."""
    x, y = noisy_easy_task(n=400)
    recipe = dict(timesteps=[10, 20, 40, 80, 160, 400], epochs=10, lr=0.05)
    r = api.prequential("logistic", x, y, **recipe)
    assert r.curves["temperature"][-1] != 1.0  # the last blocks are hedged
    enc = api.compress_labels("logistic", x, y, tmp_path / "labels.mdl", **recipe)
    assert enc.codelength_bits == r.codelength_bits
    assert np.array_equal(api.decompress_labels(tmp_path / "labels.mdl", "logistic", x), y.numpy())


@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_the_stored_hedged_runs_keep_the_bounds(dataset):
    """Every stored prequential run of the hedged code version: in all at most 1 + n eps' bits above the better
    of the raw and the temperature-alone codes, and on every block at most 16 + m eps' above the raw one."""
    from mdl_utils import results

    stored = sorted((results.results_root() / "prequential").glob(f"{dataset}-*-cpu.json"))
    runs = [results.load("prequential", dataset, p.name.split("-")[1], "cpu") for p in stored]
    hedged = [r for r in runs if "bits_temperature" in r.parts]
    if not hedged:
        pytest.skip(f"no stored {dataset} run of the hedged code version yet")
    for r in hedged:
        p, c = r.parts, r.curves
        assert p["bits_calibrated"] <= min(p["bits_uncalibrated"], p["bits_temperature"]) + 1 + r.n * EPS_BITS
        for b, u, t0, t1 in zip(c["bits"], c["bits_per_sample_uncalibrated"], c["t_start"], c["t_end"]):
            assert b <= u * (t1 - t0) + 16 + (t1 - t0) * EPS_BITS + 1e-6, (r.model, t0)
        # the per-sample bits are stored as float32
        assert math.fsum(load_array("prequential", r, "bits")) == pytest.approx(p["bits_calibrated"], rel=1e-6)
