import math

import numpy as np
import pytest
import torch

from mdl_utils import bits as shannon
from mdl_utils import bits as uniform


def test_uniform_exact_values_of_the_paper():
    assert uniform.uniform_bits(60000, 10) == pytest.approx(199315.685693, abs=1e-5)
    assert uniform.uniform_bits(50000, 10) == pytest.approx(166096.404744, abs=1e-5)
    assert uniform.uniform_bits(1024, 2) == 1024.0
    assert uniform.uniform_bits(7, 8) == 21.0
    assert uniform.uniform_bits(0, 10) == 0.0


@pytest.mark.parametrize("n,k", [(-1, 10), (2.5, 10), (10, 1), (10, 0)])
def test_uniform_rejects_bad_input(n, k):
    with pytest.raises(ValueError):
        uniform.uniform_bits(n, k)


def test_constant_logits_give_exactly_the_uniform_code():
    y = torch.randint(0, 10, (1000,), generator=torch.Generator().manual_seed(0))
    logits = torch.full((1000, 10), 3.7)
    assert shannon.codelength_bits(logits, y) == pytest.approx(uniform.uniform_bits(1000, 10), rel=1e-12)


def test_shannon_codelength_is_cross_entropy_in_bits():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 7, generator=g) * 3
    y = torch.randint(0, 7, (500,), generator=g)
    nats = torch.nn.functional.cross_entropy(logits.double(), y, reduction="sum").item()
    assert shannon.codelength_bits(logits, y) == pytest.approx(nats / math.log(2), rel=1e-12)
    # per-sample bits are -log2 of the softmax probability of the label
    p = torch.softmax(logits.double(), 1)[torch.arange(500), y].numpy()
    np.testing.assert_allclose(shannon.per_sample_bits(logits, y), -np.log2(p), rtol=1e-12)


def test_confident_right_is_cheap_and_confident_wrong_is_expensive():
    logits = torch.tensor([[20.0, 0.0], [20.0, 0.0]])
    bits = shannon.per_sample_bits(logits, torch.tensor([0, 1]))
    assert bits[0] < 1e-6 and bits[1] > 28


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0], [0.0, 1.0], [3.0, 0.0]])
    assert shannon.accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("logits,y", [(torch.zeros(3, 4), torch.zeros(2, dtype=torch.long)),
                                      (torch.zeros(3), torch.zeros(3, dtype=torch.long)),
                                      (torch.zeros(3, 4), torch.tensor([0, 1, 4]))])
def test_shannon_rejects_mismatched_input(logits, y):
    with pytest.raises(ValueError):
        shannon.codelength_bits(logits, y)
