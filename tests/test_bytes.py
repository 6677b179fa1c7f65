"""The coder and the codes as files (mdl_utils.coder, mdl_utils.codes.bytes): round trips, sizes, corruption."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mdl_utils import coder, data, scales, training
from mdl_utils.codes import bytes as B
from mdl_utils.codes import prequential as P

from .conftest import needs_data

SLACK_BITS = 64  # range coder: whole 32-bit words plus the final flush


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=400, seed=0)


def preq_recipe(model="mlp", steps=(10, 20, 40, 80, 160, 400)):
    return P.Recipe(model=model, timesteps=tuple(steps), epochs=2, patience=2, seed=0, record_epochs=False)


def preq_code(n, recipe):
    return B.PrequentialCode(n, 10, scales.as_params(recipe))


@pytest.fixture(scope="module")
def synth_preq(synth):
    s = preq_recipe()
    enc = B.encode(synth, preq_code(synth.n, s), progress=False)
    return s, enc


def bob(ds):
    """Bob's dataset: the inputs, no labels."""
    return dataclasses.replace(ds, y=torch.full_like(ds.y, -1))


def test_uniform_round_trip_and_size(synth):
    enc = B.encode(synth, B.UniformCode(synth.n, 10), progress=False)
    dec = B.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy())
    assert enc.codelength_bits == pytest.approx(synth.n * math.log2(10))
    assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS
    assert enc.file_bits == enc.payload_bits + enc.header_bits and enc.model_bits == 0
    assert enc.header_bits < 8 * 400  # the header stays small


def test_prequential_round_trip_size_and_exact_probabilities(synth, synth_preq):
    _, enc = synth_preq
    dec = B.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy())
    assert dec.probs.dtype == np.float32 and np.array_equal(dec.probs, enc.probs)  # bit for bit, every label
    assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS
    assert enc.codelength_bits < synth.n * math.log2(10)  # the model did learn something


def test_encoder_codelength_is_the_prequential_chapters(synth, synth_preq):
    s, enc = synth_preq
    with training.torch_threads(1):
        result = P.prequential_code(synth, None, s, scale="smoke", device="cpu", progress=False)
    per_sample = result.arrays["bits"]
    assert enc.codelength_bits == pytest.approx(result.codelength_bits, rel=1e-12)
    # and the coder's float32 probabilities give the same per-sample bits up to float32 rounding
    ideal = -np.log2(enc.probs[np.arange(synth.n), synth.y.numpy()].astype(np.float64))
    np.testing.assert_allclose(ideal, per_sample, atol=1e-5)


def test_two_part_round_trip_weights_in_the_file(synth):
    s = {"model": "logistic", "epochs": 2, "lr": 1e-2, "batch_size": 128, "patience": 2, "val_fraction": 0.1,
         "seed": 0}
    enc = B.encode(synth, B.TwoPartCode(synth.n, 10, s), progress=False)
    dec = B.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy()) and np.array_equal(dec.probs, enc.probs)
    assert enc.model_bits == 32 * (20 * 10 + 10)
    assert abs(enc.payload_bits + enc.model_bits - enc.codelength_bits) <= SLACK_BITS


def test_a_label_of_probability_zero_is_still_encodable():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    labels = np.array([1, 0, 2])
    enc = coder.RangeCoder()
    enc.encode(labels, probs)
    words = enc.words()
    assert np.array_equal(coder.RangeCoder(words).decode(probs), labels)
    assert 32 * len(words) <= 3 * 24 + SLACK_BITS  # each impossible label costs at most 24 bits


def test_flipped_byte_anywhere_is_detected(synth_preq, synth):
    _, enc = synth_preq
    data_ = enc.data
    for pos in sorted({0, 4, 5, 13, 20, len(data_) // 2, len(data_) - 10, len(data_) - 1}):
        bad = bytearray(data_)
        bad[pos] ^= 0x40
        with pytest.raises(coder.CodingError):
            B.decode(bytes(bad), bob(synth), progress=False)
    bad = bytearray(data_)
    bad[-20] ^= 1  # inside the payload
    with pytest.raises(coder.CodingError, match="CRC32"):
        coder.unpack(bytes(bad))


def test_truncated_and_foreign_files(synth_preq, tmp_path):
    _, enc = synth_preq
    with pytest.raises(coder.CodingError, match="truncated"):
        coder.unpack(enc.data[:-7])
    with pytest.raises(coder.CodingError, match="after its end"):
        coder.unpack(enc.data + b"\0")
    with pytest.raises(coder.CodingError, match="magic"):
        coder.unpack(b"PK\x03\x04" + enc.data[4:])
    with pytest.raises(coder.CodingError, match="no such labels file"):
        coder.read(tmp_path / "missing.mdl")
    path = coder.write(tmp_path / "l.mdl", enc.data)
    assert coder.read(path) == enc.data


def test_wrong_dataset_or_inputs(synth, synth_preq):
    _, enc = synth_preq
    other_order = data.load("synthetic", "train", n=400, seed=1)
    with pytest.raises(coder.CodingError, match="order_seed"):
        B.decode(enc.data, bob(other_order), progress=False)
    with pytest.raises(coder.CodingError, match="n=300"):
        B.decode(enc.data, bob(synth.head(300)), progress=False)
    changed = dataclasses.replace(synth, x=synth.x.clone())
    changed.x[17, 3] += 1e-3
    with pytest.raises(coder.CodingError, match="SHA-256 of the inputs"):
        B.decode(enc.data, bob(changed), progress=False)
    renamed = dataclasses.replace(synth, name="mnist")
    with pytest.raises(coder.CodingError, match="wrong dataset"):
        B.decode(enc.data, bob(renamed), progress=False)


def test_a_decoder_with_another_model_is_caught_by_the_label_checksum(synth):
    enc = B.encode(synth, B.UniformCode(synth.n, 10), progress=False)
    header, model, payload = coder.unpack(enc.data)
    header["labels_sha256"] = coder.labels_fingerprint(np.zeros(synth.n))  # what a diverging Bob would find
    with pytest.raises(coder.CodingError, match="SHA-256 check"):
        B.decode(coder.pack(header, payload, model), bob(synth), progress=False)


def test_round_trip_result_and_cli(synth, tmp_path, capsys, monkeypatch):
    from mdl_utils import compress, decompress

    r = B.round_trip(synth.head(200), B.UniformCode(200, 10), scale="smoke", path=tmp_path / "u.mdl", progress=False)
    assert r.code == "bytes" and r.model == "uniform" and r.codelength_bits == r.parts["file_bits"] == 8 * r.parts["file_bytes"]
    assert r.params["round_trip_labels_equal"] and r.params["round_trip_probabilities_equal"]
    out = tmp_path / "p.mdl"
    assert compress.main(["--code", "prequential", "--dataset", "synthetic", "--model", "logistic", "--n", "300",
                          "--scale", "smoke", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "encoding 300 labels of synthetic" in printed and "computed codelength" in printed
    assert decompress.main([str(out), "--dataset", "synthetic", "--out", str(tmp_path / "y.npy"),
                            "--no-progress"]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), data.load("synthetic", "train", n=300).y.numpy())
    capsys.readouterr()
    assert decompress.main([str(out), "--dataset", "mnist"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: wrong dataset") and err.count("\n") == 1
    out.write_bytes(out.read_bytes()[:-3])
    assert decompress.main([str(out), "--dataset", "synthetic"]) == 1
    assert "truncated" in capsys.readouterr().err


@needs_data
def test_real_mnist_subset_round_trip():
    mnist = data.load("mnist", "train", n=256, seed=0)
    for code in (B.UniformCode(256, 10), preq_code(256, preq_recipe("mlp", (8, 16, 32, 64, 128, 256)))):
        enc = B.encode(mnist, code, progress=False)
        dec = B.decode(enc.data, bob(mnist), progress=False)
        assert np.array_equal(dec.labels, mnist.y.numpy()) and np.array_equal(dec.probs, enc.probs)
        assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS


def test_coder_uses_the_prequential_chapters_settings():
    # the file coder's recipe is the chapter's, per-model epoch caps included, without the self-switch records
    for model, epochs in (("mlp", 20), ("tinycnn", 5)):
        code = B.code_for("prequential", "cifar10", 50000, 10, model, "cpu")
        assert code.recipe.epochs == epochs and code.recipe.timesteps[:2] == (10, 20)
        assert code.recipe.record_epochs is False and code.recipe.patience == 3 and code.recipe.calibrate
    assert B.code_for("prequential", "mnist", 60000, 10, "mlp", "cpu").recipe.timesteps[0] == 8


def test_model_names_of_the_chapter():
    assert B.split_name("prequential_small_cnn") == ("prequential", "small_cnn")
    assert B.split_name("uniform") == ("uniform", None) and B.split_name("two_part_mlp") == ("two_part", "mlp")
    with pytest.raises(ValueError, match="unknown code"):
        B.split_name("switchy")
