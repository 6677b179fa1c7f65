"""float32 two-part code (Sec. 3.1): L = 32 dim(theta) + data bits, and the bytes round-trip."""

import numpy as np
import pytest
import torch

import dataclasses
import math

from mdl_utils import data, models
from mdl_utils.codes import two_part
from mdl_utils.training import predict_logits


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=600), data.load("synthetic", "test", n=300)


def test_float32_two_part_is_32_bits_per_parameter_plus_data_bits(synth):
    train, test = synth
    s = dataclasses.replace(two_part.settings("smoke"), epochs=2)
    r = two_part.float32_two_part(train, test, "mlp", s, scale="smoke", seed=3, progress=False)
    net = models.build("mlp", (20,), 10, seed=0)
    D = models.num_parameters(net)
    assert r.params["num_parameters"] == D == 20 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    assert r.parts["model_bits"] == 32 * D
    net, _ = two_part.train_model(train, "mlp", s, seed=3, progress=False)  # deterministic: Alice's network again
    z = predict_logits(net, train.x, "cpu").double().numpy()
    top = z.max(axis=1, keepdims=True)
    log_p = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))  # by hand, not the library's log_softmax
    data_bits = float(-log_p[np.arange(train.n), train.y.numpy()].sum() / math.log(2))
    assert r.codelength_bits == pytest.approx(32 * D + data_bits, rel=1e-12)
    assert r.code == "two_part" and r.model == "mlp" and r.n == train.n == 600
    # the data term is the Shannon code of the training labels, which a retrain reproduces to the bit
    again = two_part.float32_two_part(train, test, "mlp", s, scale="smoke", seed=3, progress=False)
    assert again.parts["data_bits"] == r.parts["data_bits"]
    assert r.parts["data_bits"] < train.n * math.log2(10)  # the trained network beats the uniform code on its data
    assert 8 * len(two_part.serialize_float32(net)) == r.parts["model_bits"]


def test_float32_bytes_round_trip_gives_the_same_logits(synth):
    train, _ = synth
    net = models.build("mlp", (20,), 10, seed=1)
    payload = two_part.serialize_float32(net)
    assert 8 * len(payload) == two_part.float32_model_bits(net) == 32 * models.num_parameters(net)
    other = two_part.deserialize_float32(payload, models.build("mlp", (20,), 10, seed=2))
    assert torch.equal(predict_logits(net, train.x, "cpu"), predict_logits(other, train.x, "cpu"))
    with pytest.raises(ValueError, match="architecture"):
        two_part.deserialize_float32(payload[:-4], models.build("mlp", (20,), 10, seed=2))


def test_batch_norm_buffers_are_counted():
    net = models.build("vgg_cifar_bn", (3, 32, 32), 10, seed=0)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    buffers = sum(2 * m.num_features for m in norms)  # running mean and variance, float32, per channel
    assert len(norms) > 0 and two_part.float32_model_bits(net) == 32 * (models.num_parameters(net) + buffers)


def test_two_part_bits_rejects_negative():
    assert two_part.two_part_bits(3, 4.5) == 7.5
    with pytest.raises(ValueError):
        two_part.two_part_bits(-1, 2)
