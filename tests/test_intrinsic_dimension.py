"""Random affine subspace code (Algorithm 1): regeneration from the seed, quantization, decoding."""

import dataclasses
import math

import pytest
import torch

from mdl_utils import data, models
from mdl_utils.bits import codelength_bits
from mdl_utils.codes import intrinsic_dimension as S
from mdl_utils.training import predict_logits


def test_projection_regenerates_from_seed_and_theta0_is_the_init():
    a = S.Subspace("mlp", (20,), 10, 30, seed=4)
    b = S.Subspace("mlp", (20,), 10, 30, seed=4)
    c = S.Subspace("mlp", (20,), 10, 30, seed=5)
    assert torch.equal(a.P, b.P) and torch.equal(a.theta0, b.theta0)
    assert not torch.equal(a.P, c.P)
    init = torch.cat([p.detach().flatten() for p in models.build("mlp", (20,), 10, seed=4).parameters()])
    assert torch.equal(a.theta0, init)
    assert a.dense and a.P.shape == (a.D, 30)
    assert torch.equal(a.theta(torch.zeros(30)), a.theta0)


def test_sparse_projection_for_large_models():
    s = S.Subspace("mlp", (20,), 10, 50, seed=0, dense_limit=10)
    assert not s.dense and s.P.is_sparse
    col = s.P.to_dense()[:, 0]
    assert 0 < (col != 0).sum() <= math.ceil(math.sqrt(s.D))
    t = torch.randn(50)
    assert torch.allclose(s.theta(t), s.theta0 + s.P.to_dense() @ t, atol=1e-5)
    w = torch.randn(s.D)
    t.requires_grad_(True)
    (s.theta(t) * w).sum().backward()
    assert torch.allclose(t.grad, s.P.to_dense().t() @ w, atol=1e-4)
    t = t.detach()
    again = S.Subspace("mlp", (20,), 10, 50, seed=0, dense_limit=10)
    assert torch.equal(s.theta(t), again.theta(t))


@pytest.mark.parametrize("p", [1, 3, 8, 32])
def test_quantizer(p):
    t = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.7])
    payload, q = S.quantize(t, p)
    assert len(payload) == math.ceil((5 * p + (0 if p == 32 else 32)) / 8)
    assert torch.equal(S.dequantize(payload, 5, p), q)
    if p == 32:
        assert torch.equal(q, t)
    else:
        step = 4.0 / ((1 << p) - 1)
        assert (q - t).abs().max() <= step / 2 + 1e-6
        assert q.min() == -2.0
    with pytest.raises(ValueError):
        S.quantize(t, 0)


@pytest.mark.parametrize("dense_limit", [S.DENSE_LIMIT, 10])
def test_model_rebuilt_from_seed_and_bytes_predicts_like_the_encoder(dense_limit):
    train = data.load("synthetic", "train", n=500)
    sub = S.Subspace("mlp", (20,), 10, 40, seed=7, dense_limit=dense_limit)
    s = dataclasses.replace(S.settings("smoke"), epochs=2, lr=0.1)
    theta_d, hist = S.train_subspace(sub, train.x, train.y, s, seed=7)
    assert hist[-1] < hist[0]
    payload, q = S.quantize(theta_d, 6)
    # encoder: functional forward with the quantized theta_d (what the data term uses in the code)
    with torch.no_grad():
        enc_logits = sub.forward(q, train.x)
    enc_model_logits = predict_logits(sub.materialize(q), train.x, "cpu")
    # Bob: a fresh subspace from the seed and the bytes alone
    bob = S.Subspace("mlp", (20,), 10, 40, seed=7, dense_limit=dense_limit)
    dec = bob.materialize(S.dequantize(payload, 40, 6))
    dec_logits = predict_logits(dec, train.x, "cpu")
    assert torch.equal(dec_logits, enc_model_logits)
    assert torch.allclose(dec_logits, enc_logits, atol=1e-5)
    assert codelength_bits(dec_logits, train.y) == codelength_bits(enc_model_logits, train.y)
    if dense_limit == S.DENSE_LIMIT:
        dec2 = S.decode_model(payload, "mlp", (20,), 10, 40, 6, seed=7)
        assert torch.equal(predict_logits(dec2, train.x, "cpu"), dec_logits)


def test_subspace_code_accounting():
    train, test = data.load("synthetic", "train", n=400), data.load("synthetic", "test", n=200)
    s = dataclasses.replace(S.settings("smoke"), dims=(10, 40), precisions=(4, 32), epochs=1, lr=0.1)
    r = S.subspace_code(train, test, "mlp", s, scale="smoke", progress=False)
    assert r.code == "intrinsic_dimension" and r.n == 400
    i = r.curves["d"].index(40)
    assert r.curves["theta_bits"][i] == 32 + 40 * 4 and r.curves["p"][i] == 4
    assert r.curves["theta_bits"][i + 1] == 40 * 32
    assert r.parts["selection_bits"] == 2.0
    assert r.codelength_bits == pytest.approx(r.parts["model_bits"] + r.parts["data_bits"], abs=1e-9)
    assert r.codelength_bits == min(r.curves["total_bits"])
    assert r.parts["model_bits"] == r.parts["header_bits"] + r.parts["theta_d_bits"] + r.parts["padding_bits"] \
        + r.parts["selection_bits"]
    assert r.params["best_d"] * r.params["best_p"] == r.parts["theta_d_bits"]


def test_only_theta_d_is_trained():
    train = data.load("synthetic", "train", n=300)
    sub = S.Subspace("mlp", (20,), 10, 25, seed=1)
    theta0 = sub.theta0.clone()
    model = S.SubspaceModel(sub)
    assert [n for n, _ in model.named_parameters()] == ["theta_d"]
    theta_d, _ = S.train_subspace(sub, train.x, train.y, S.settings("smoke"), seed=1)
    assert torch.equal(sub.theta0, theta0) and theta_d.abs().sum() > 0
    # the network's own weights stay theta_0: only theta_d moved
    assert torch.equal(torch.cat([p.detach().flatten() for p in sub.net.parameters()]), theta0)
