"""The range coder and file format of mdl_utils.coding: round trips, sizes, corruption, determinism."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from mdl_utils import coding, data, training
from mdl_utils.codes import prequential as P
from mdl_utils.codes.prequential import PrequentialSettings

from .conftest import needs_data

SLACK_BITS = 64  # range coder: whole 32-bit words plus the final flush


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=400, seed=0)


def preq_settings(model="mlp", steps=(10, 20, 40, 80, 160, 400)):
    return PrequentialSettings(model=model, timesteps=list(steps), epochs=2, patience=2, seed=0, record_epochs=False)


@pytest.fixture(scope="module")
def synth_preq(synth):
    s = preq_settings()
    enc = coding.encode(synth, "prequential", s, progress=False)
    return s, enc


def bob(ds):
    """Bob's dataset: the inputs, no labels."""
    return dataclasses.replace(ds, y=torch.full_like(ds.y, -1))


def test_uniform_round_trip_and_size(synth):
    enc = coding.encode(synth, "uniform", progress=False)
    dec = coding.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy())
    assert enc.codelength_bits == pytest.approx(synth.n * math.log2(10))
    assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS
    assert enc.file_bits == enc.payload_bits + enc.header_bits and enc.model_bits == 0
    assert enc.header_bits < 8 * 400  # the header stays small


def test_prequential_round_trip_size_and_exact_probabilities(synth, synth_preq):
    _, enc = synth_preq
    dec = coding.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy())
    assert dec.probs.dtype == np.float32 and np.array_equal(dec.probs, enc.probs)  # bit for bit, every label
    assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS
    assert enc.codelength_bits < synth.n * math.log2(10)  # the model did learn something


def test_encoder_codelength_is_the_prequential_chapters(synth, synth_preq):
    s, enc = synth_preq
    with training.torch_threads(1):
        result, per_sample = P.prequential_code(synth, None, s, scale="smoke", device="cpu", progress=False)
    assert enc.codelength_bits == pytest.approx(result.codelength_bits, rel=1e-12)
    # and the coder's float32 probabilities give the same per-sample bits up to float32 rounding
    ideal = -np.log2(enc.probs[np.arange(synth.n), synth.y.numpy()].astype(np.float64))
    np.testing.assert_allclose(ideal, per_sample, atol=1e-5)


def test_two_part_round_trip_weights_in_the_file(synth):
    s = {"model": "logistic", "epochs": 2, "lr": 1e-2, "batch_size": 128, "patience": 2, "val_fraction": 0.1,
         "seed": 0}
    enc = coding.encode(synth, "two_part", s, progress=False)
    dec = coding.decode(enc.data, bob(synth), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy()) and np.array_equal(dec.probs, enc.probs)
    assert enc.model_bits == 32 * (20 * 10 + 10)
    assert abs(enc.payload_bits + enc.model_bits - enc.codelength_bits) <= SLACK_BITS


def test_a_label_of_probability_zero_is_still_encodable():
    import constriction

    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    labels = np.array([1, 0, 2])
    enc = constriction.stream.queue.RangeEncoder()
    coding._encode_block(enc, labels, probs)
    words = enc.get_compressed()
    assert np.array_equal(coding._decode_block(constriction.stream.queue.RangeDecoder(words), probs), labels)
    assert 32 * len(words) <= 3 * 24 + SLACK_BITS  # each impossible label costs at most 24 bits


def test_flipped_byte_anywhere_is_detected(synth_preq, synth):
    _, enc = synth_preq
    data_ = enc.data
    for pos in sorted({0, 4, 5, 13, 20, len(data_) // 2, len(data_) - 10, len(data_) - 1}):
        bad = bytearray(data_)
        bad[pos] ^= 0x40
        with pytest.raises(coding.CodingError):
            coding.decode(bytes(bad), bob(synth), progress=False)
    bad = bytearray(data_)
    bad[-20] ^= 1  # inside the payload
    with pytest.raises(coding.CodingError, match="CRC32"):
        coding.unpack(bytes(bad))


def test_truncated_and_foreign_files(synth_preq, tmp_path):
    _, enc = synth_preq
    with pytest.raises(coding.CodingError, match="truncated"):
        coding.unpack(enc.data[:-7])
    with pytest.raises(coding.CodingError, match="after its end"):
        coding.unpack(enc.data + b"\0")
    with pytest.raises(coding.CodingError, match="magic"):
        coding.unpack(b"PK\x03\x04" + enc.data[4:])
    with pytest.raises(coding.CodingError, match="no such labels file"):
        coding.read(tmp_path / "missing.mdl")
    path = coding.write(tmp_path / "l.mdl", enc.data)
    assert coding.read(path) == enc.data


def test_wrong_dataset_or_inputs(synth, synth_preq):
    _, enc = synth_preq
    other_order = data.load("synthetic", "train", n=400, seed=1)
    with pytest.raises(coding.CodingError, match="order_seed"):
        coding.decode(enc.data, bob(other_order), progress=False)
    with pytest.raises(coding.CodingError, match="n=300"):
        coding.decode(enc.data, bob(synth.head(300)), progress=False)
    changed = dataclasses.replace(synth, x=synth.x.clone())
    changed.x[17, 3] += 1e-3
    with pytest.raises(coding.CodingError, match="SHA-256 of the inputs"):
        coding.decode(enc.data, bob(changed), progress=False)
    renamed = dataclasses.replace(synth, name="mnist")
    with pytest.raises(coding.CodingError, match="wrong dataset"):
        coding.decode(enc.data, bob(renamed), progress=False)


def test_a_decoder_with_another_model_is_caught_by_the_label_checksum(synth):
    enc = coding.encode(synth, "uniform", progress=False)
    header, model, payload = coding.unpack(enc.data)
    header["labels_sha256"] = coding.labels_fingerprint(np.zeros(synth.n))  # what a diverging Bob would find
    with pytest.raises(coding.CodingError, match="SHA-256 check"):
        coding.decode(coding.pack(header, payload, model), bob(synth), progress=False)


def test_round_trip_result_and_cli(synth, tmp_path, capsys, monkeypatch):
    from mdl_utils import compress, decompress

    r = coding.round_trip(synth.head(200), "uniform", scale="smoke", path=tmp_path / "u.mdl", progress=False)
    assert r.code == "bytes_uniform" and r.codelength_bits == r.parts["file_bits"] == 8 * r.parts["file_bytes"]
    assert r.params["round_trip_labels_equal"] and r.params["round_trip_probabilities_equal"]
    out = tmp_path / "p.mdl"
    assert compress.main(["--code", "prequential", "--dataset", "synthetic", "--model", "logistic", "--n", "300",
                          "--scale", "smoke", str(out), "--no-progress"]) == 0
    assert "computed codelength" in capsys.readouterr().out
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
    for code, s in (("uniform", None), ("prequential", preq_settings("mlp", (8, 16, 32, 64, 128, 256)))):
        enc = coding.encode(mnist, code, s, progress=False)
        dec = coding.decode(enc.data, bob(mnist), progress=False)
        assert np.array_equal(dec.labels, mnist.y.numpy()) and np.array_equal(dec.probs, enc.probs)
        assert abs(enc.payload_bits - enc.codelength_bits) <= SLACK_BITS


def test_coder_uses_the_prequential_chapters_settings():
    # one source of truth: the file coder and the chapter agree, per-model epoch caps included
    for model in ("mlp", "tinycnn"):
        ours = coding.settings_for("prequential", "cifar10", 50000, model, "cpu")
        chapter = P.settings_for("cifar10", model, 50000, "cpu", record_epochs=False)
        assert ours == chapter
    assert coding.settings_for("prequential", "cifar10", 50000, "tinycnn", "cpu").epochs == 5
