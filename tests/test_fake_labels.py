"""The counting argument (App. A, Prop. 2): numbers, the exact probability on a toy, random labels."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mdl_utils import data
from mdl_utils.bits import uniform_bits
from mdl_utils.codes import fake_labels as counting
from mdl_utils.codes import variational as V
from .reference import exact_probability_below

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_counting_numbers():
    assert counting.counting_bound_bits(60000, 10, 20) == pytest.approx(60000 * math.log2(10) - 20)
    assert counting.bound_failure_probability(20) == 2.0 ** -20
    rows = counting.counting_table(60000, 10, [0, 10, 100])
    assert [r["bound_bits"] for r in rows] == pytest.approx([199315.686, 199305.686, 199215.686], abs=1e-3)
    assert rows[0]["probability"] == 1.0 and rows[0]["ratio"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        counting.counting_bound_bits(10, 10, -1)


def test_prop2_holds_exactly_for_shannon_codes_on_a_toy():
    n, K = 10, 2
    rng = np.random.default_rng(0)
    for trial in range(20):
        # very peaked distributions q over all 2^10 sequences: short codes for a few sequences
        w = rng.random(K ** n) ** (1 + 20 * rng.random())
        log2_q = np.log2(w / w.sum())
        for c in (0.5, 1, 2, 4, 8):
            assert exact_probability_below(log2_q, n, K, c) <= 2.0 ** -c
    # tightness: q uniform on 2^(n-c) + ... sequences; with L = n - c - 0.01 on 2^(n-c) of them, P = 2^-c exactly
    c = 3
    log2_q = np.full(K ** n, -60.0)
    log2_q[: 2 ** (n - c)] = -(n - c) + 0.01 - 1e-9
    assert exact_probability_below(log2_q, n, K, c) == pytest.approx(2.0 ** -c)


def test_random_labels_are_seeded_and_uniform():
    ds = data.load("synthetic", "train", n=20000, seed=0)
    a, b, c = counting.random_labels(ds, 1), counting.random_labels(ds, 1), counting.random_labels(ds, 2)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert torch.equal(a.x, ds.x) and a.name == "synthetic_random" and a.true_bits is None
    counts = a.label_counts()
    expected = ds.n / ds.K
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 9 degrees of freedom; P(chi2 > 40) ~ 1e-5
    # labels unrelated to the true ones
    assert abs(float((a.y == ds.y).double().mean()) - 0.1) < 0.02


def test_codes_on_random_labels_stay_above_the_counting_bound():
    ds = counting.random_labels(data.load("synthetic", "train", n=400, seed=0), seed=3)
    bound = counting.counting_bound_bits(ds.n, ds.K, 20)
    assert bound == pytest.approx(400 * math.log2(10) - 20)
    s = dataclasses.replace(V.settings("smoke"), sigma0_grid=(0.05, 0.2), eval_samples=3)
    var = V.variational_code(ds, None, "mlp", s, epochs=3, scale="smoke", device="cpu", progress=False)
    assert var.codelength_bits >= bound and counting.stays_above(var.codelength_bits, ds.n, ds.K, 20)
    # ... while on the true labels the same code compresses: it is not stuck above the bound by construction
    true = V.variational_code(data.load("synthetic", "train", n=400, seed=0), None, "mlp", s, epochs=3, scale="smoke",
                              device="cpu", progress=False)
    assert true.codelength_bits < var.codelength_bits
    f = dataclasses.replace(counting.settings("smoke"), memorize_epochs=150, lr=3e-3, num_threads=None)
    mem = counting.memorization_code(ds, "mlp3x200", f, scale="smoke", device="cpu", progress=False)
    assert mem.codelength_bits >= bound
    # the memorizing network fits the random labels far better than chance: its data bits alone beat the bound
    assert mem.parts["train_accuracy"] > 0.5 and mem.parts["data_bits"] < bound
    assert mem.parts["model_bits"] == 32 * (20 * 200 + 200 + 2 * (200 * 200 + 200) + 200 * 10 + 10)


def test_stays_above_is_the_bound():
    assert counting.stays_above(uniform_bits(100, 10) - 20, 100, 10, 20)
    assert not counting.stays_above(uniform_bits(100, 10) - 20.001, 100, 10, 20)


def test_chapter_runs_are_true_random_and_memorized():
    assert counting.runs("mnist", "cpu") == [("mnist", "mlp3x200"), ("mnist_random", "mlp3x200"),
                                             ("mnist_random", "mlp3x200_adam")]
    assert [counting.code_of(m) for _, m in counting.runs("mnist", "cpu")] == ["variational", "variational",
                                                                                "two_part"]
