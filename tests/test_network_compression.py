"""Network compression (Sec. 3.2): entropy coders (mdl_utils.bitio), pruning, and the bytes -> model round trip."""

import dataclasses

import numpy as np
import pytest
import torch

from mdl_utils import bitio, data, models
from mdl_utils.bits import codelength_bits
from mdl_utils.codes import network_compression as C


def test_bit_io_round_trip():
    rng = np.random.default_rng(0)
    w = bitio.BitWriter()
    vals = rng.integers(0, 1 << 13, 500)
    w.write(vals, 13)
    w.write_gamma(1)
    w.write_gamma(1000)
    w.write_float32([1.5, -2.25e-7])
    w.write_unary([0, 3, 1])
    payload = w.getvalue()
    assert len(payload) == (w.nbits + 7) // 8 == (500 * 13 + 1 + 19 + 64 + 7 + 7) // 8
    r = bitio.BitReader(payload)
    assert (r.read(500, 13) == vals).all()
    assert r.read_gamma() == 1 and r.read_gamma() == 1000
    assert r.read_float32(2).tolist() == [1.5, np.float32(-2.25e-7)]
    assert r.read_unary(3).tolist() == [0, 3, 1]


def test_huffman_is_optimal_prefix_code_and_decodes():
    counts = np.array([45, 13, 12, 16, 9, 5, 0])
    lengths = bitio.huffman_lengths(counts)
    assert lengths.tolist() == [1, 3, 3, 3, 4, 4, 0]  # the textbook example (CLRS 16.3)
    assert (counts * lengths).sum() == 224
    assert np.sum(2.0 ** -lengths[lengths > 0]) == 1.0  # Kraft equality
    rng = np.random.default_rng(1)
    syms = rng.choice(6, size=2000, p=counts[:6] / counts.sum())
    codes = bitio.canonical_codes(lengths)
    w = bitio.BitWriter()
    w.write(codes[syms], lengths[syms])
    assert w.nbits == lengths[syms].sum()
    assert (bitio.BitReader(w.getvalue()).read_huffman(syms.size, lengths) == syms).all()


def test_rice_parameter_and_length():
    gaps = np.array([0, 1, 2, 9, 30])
    assert bitio.rice_bits(gaps, 0) == gaps.sum() + gaps.size
    assert bitio.rice_bits(gaps, 2) == (0 + 0 + 0 + 2 + 7) + 5 * 3
    r = bitio.best_rice_parameter(gaps)
    assert all(bitio.rice_bits(gaps, r) <= bitio.rice_bits(gaps, q) for q in range(10))


def test_magnitude_masks_keep_the_largest_weights():
    net = models.build("mlp", (20,), 10, seed=0)
    masks = C.magnitude_masks(net, 0.9)
    assert set(masks) == {n for n, p in net.named_parameters() if p.ndim >= 2}
    for n, p in net.named_parameters():
        if n in masks:
            m = masks[n]
            assert m.sum().item() == int(np.ceil(0.1 * p.numel()))
            assert p[m].abs().min() >= p[~m].abs().max()


def test_kmeans_1d():
    vals = np.array([0.0, 0.1, 0.2, 5.0, 5.1, 5.2], dtype=np.float32)
    cents, idx = C.kmeans_1d(vals, 2)
    assert np.allclose(cents, [0.1, 5.1]) and idx.tolist() == [0, 0, 0, 1, 1, 1]
    cents, idx = C.kmeans_1d(np.array([1.0, 1.0]), 4)  # empty clusters are dropped
    assert cents.tolist() == [1.0] and idx.tolist() == [0, 0]


@pytest.mark.parametrize("name,shape", [("mlp", (20,)), ("lenet", (1, 28, 28))])
def test_serialized_weights_decode_to_the_model_of_the_data_term(name, shape):
    train = data.load("synthetic", "train", n=400)
    x = train.x if name == "mlp" else torch.randn(64, *shape, generator=torch.Generator().manual_seed(0))
    y = train.y[: len(x)]
    net = models.build(name, shape, 10, seed=0)
    masks = C.magnitude_masks(net, 0.8)
    C.apply_masks(net, masks)
    ds = data.Dataset("toy", "train", x, y, 10, [str(k) for k in range(10)], "test tensors", 0, np.arange(len(y)))
    payload, acct = C.serialize(net, 3, set(masks))
    decoded = C.deserialize(payload, models.build(name, shape, 10, seed=5)).eval()
    with torch.no_grad():
        logits = decoded(x)
    record = C.evaluate_pair(net, masks, ds, None, 3, lambda: models.build(name, shape, 10, seed=5))
    assert record["weight_bits"] == 8 * len(payload) and record["data_bits"] == codelength_bits(logits, y)
    # counted weight bits are the serialized size, and the parts add up
    assert acct["weight_bits"] == 8 * len(payload)
    assert sum(v for k, v in acct.items() if k != "weight_bits") == acct["weight_bits"]
    # an independent decode of the bytes gives exactly the logits of the data term
    again = C.deserialize(payload, models.build(name, shape, 10, seed=9)).eval()
    with torch.no_grad():
        assert torch.equal(again(x), logits)
    # the decoded tensors: pruned positions are zero, at most 2^3 distinct values per tensor
    for n, v in again.state_dict().items():
        if n in masks:
            assert (v[~masks[n]] == 0).all()
            assert torch.unique(v[masks[n]]).numel() <= 8
    with pytest.raises(ValueError):
        C.deserialize(payload[: len(payload) // 2], models.build(name, shape, 10, seed=9))


def test_network_compression_code_pays_serialized_bits():
    train, test = data.load("synthetic", "train", n=500), data.load("synthetic", "test", n=200)
    s = dataclasses.replace(C.settings("smoke"), sparsities=(0.0, 0.9), bits=(2, 4), epochs=1, finetune_epochs=1)
    r = C.network_compression(train, test, "mlp", s, scale="smoke", progress=False)
    assert r.code == "network_compression" and r.n == 500 and r.model == "mlp"
    assert r.parts["model_bits"] == r.parts["weight_bits"] + 2.0  # log2(4 configurations)
    assert r.codelength_bits == pytest.approx(r.parts["model_bits"] + r.parts["data_bits"], rel=0, abs=1e-6)
    assert r.codelength_bits == min(r.curves["total_bits"])
    assert r.parts["weight_bits"] % 8 == 0
    # 90% sparse 2-bit weights cost far fewer bits than float32
    i = r.curves["sparsity"].index(0.9)
    assert r.curves["bits_per_weight"][i] < 2
