"""The coder and the codes as files (mdl_utils.coder, mdl_utils.codes.bytes): round trips, sizes, the header's
checks, corruption."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from mdl_utils import coder, compress, data, numerics, scales, training
from mdl_utils.codes import bytes as B
from mdl_utils.codes import file_header as H
from mdl_utils.codes import files as F
from mdl_utils.codes import prequential as P
from mdl_utils.codes import switch as S

from .conftest import ROOT, needs_data
from .reference import mixture_prior_bits

SLACK_BITS = 64  # range coder: whole 32-bit words, the final flush, 24-bit rounding
N, STEPS = 400, (10, 20, 40, 80, 160, 400)
CHECKED_BLOCKS = {"uniform": 0, "prequential": 5, "two_part": 1, "switch": 5, "self_switch": 5}  # all but the first


def recipe(model="mlp", steps=STEPS, **changes) -> P.Recipe:
    return P.Recipe(model=model, timesteps=tuple(steps), epochs=2, patience=2, seed=0, record_epochs=False,
                    **changes)


def make_code(name: str, n=N, steps=STEPS):
    """A small code of each kind (custom recipes: no named scale)."""
    r = {m: scales.as_params(recipe(m, steps)) for m in ("mlp", "logistic")}
    return {"uniform": lambda: F.UniformCode(n, 10),
            "prequential": lambda: F.PrequentialCode(n, 10, r["mlp"]),
            "two_part": lambda: F.TwoPartCode(n, 10, {"model": "logistic", "epochs": 2, "lr": 1e-2, "batch_size": 128,
                                                      "patience": 2, "val_fraction": 0.1, "seed": 0}),
            "switch": lambda: F.SwitchCode(n, 10, {"strategies": [r["mlp"], r["logistic"]]}),
            "self_switch": lambda: F.SelfSwitchCode(n, 10, r["mlp"])}[name]()


def bob(ds):
    """Bob's dataset: the inputs, no labels."""
    return dataclasses.replace(ds, y=torch.full_like(ds.y, -1))


@pytest.fixture(scope="module")
def synth():
    return data.load("synthetic", "train", n=N, seed=0)


@pytest.fixture(scope="module")
def encoded(synth):
    """Every code's file of the synthetic labels, encoded once (one torch thread)."""
    with training.torch_threads(1):
        return {name: F.encode(synth, make_code(name), progress=False) for name in F.CODES}


@pytest.fixture(scope="module")
def chapter_runs(synth):
    """The prequential chapter's runs (with the self-switch records) of the same recipes."""
    with training.torch_threads(1):
        return {m: P.prequential_code(synth, None, dataclasses.replace(recipe(m), record_epochs=True), scale="smoke",
                                      device="cpu", progress=False) for m in ("mlp", "logistic")}


@pytest.fixture
def no_decoding(monkeypatch):
    """Make any attempt to decode a label fail the test: checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a label was decoded before the checks failed")
    monkeypatch.setattr(F, "_run", refuse)


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", F.CODES)
def test_every_code_round_trips_exactly_within_a_few_words_of_its_codelength(encoded, synth, name):
    enc = encoded[name]
    with training.torch_threads(1):
        dec = F.decode(enc.data, bob(synth), make_code(name), progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy())
    assert dec.probs.dtype == np.float32 and np.array_equal(dec.probs, enc.probs)  # bit for bit, every label
    assert enc.sections["header"] == 192  # n = 400: a 2-byte varint; <= 200 bits up to n = 2,097,151
    assert enc.file_bits == sum(enc.sections.values())
    assert enc.check_bits == coder.CHECK_BITS * CHECKED_BLOCKS[name]  # a check symbol per trained block
    assert abs(enc.payload_bits + enc.model_bits - enc.codelength_bits - enc.check_bits) <= SLACK_BITS
    assert enc.header_bits == 192 + (16 if name == "two_part" else 0)  # two_part: the model section's length
    if name != "uniform":
        assert enc.codelength_bits - enc.model_bits < N * math.log2(10)  # the models did learn something


def test_header_layout_and_bit_counts():
    h = coder.Header("switch", "cpu", "mnist", 60000, 0, b"abc", b"de", b"fghi", 123, None)
    assert 8 * len(h.to_bytes()) + 32 == 200  # magic 16, version 8, flags 8, n 24, seed 8, hashes 72, CRC 32
    data_ = coder.pack(h, np.array([1, 2], dtype=np.uint32))
    f = coder.unpack(data_)
    assert f.header == h and list(f.payload) == [1, 2] and f.sections == {"header": 200, "payload": 64}
    custom = dataclasses.replace(h, scale=None, dataset=None, seed=None, description={"a": [1, 2]})
    assert coder.unpack(coder.pack(custom, np.zeros(0, np.uint32))).header == custom
    for v in (0, 1, 127, 128, 60000, 2 ** 40):
        assert coder.read_varint(coder.varint(v), 0, 99) == (v, len(coder.varint(v)))
    assert len(coder.varint(60000)) == 3 and len(coder.varint(2 ** 21 - 1)) == 3


def test_prequential_codelength_is_the_chapters(encoded, chapter_runs, synth):
    enc, result = encoded["prequential"], chapter_runs["mlp"]
    assert enc.codelength_bits == result.codelength_bits  # the same per-sample bits, one exactly rounded sum
    ideal = -np.log2(enc.probs[np.arange(N), synth.y.numpy()].astype(np.float64))
    np.testing.assert_allclose(ideal, result.arrays["bits"], atol=1e-5)  # float32 probabilities


def test_switch_file_is_the_switch_chapters_mixture(encoded, chapter_runs):
    enc = encoded["switch"]
    per_sample = [chapter_runs[m].arrays["bits"] for m in ("mlp", "logistic")]
    exact = S.mixture_bits(np.vstack([*per_sample, np.full(N, math.log2(10))])).sum()
    stored = S.mixture_bits(np.vstack([*(p.astype(np.float32) for p in per_sample),  # as the chapter stores them
                                       np.full(N, math.log2(10))])).sum()
    assert enc.reference_bits == pytest.approx(exact, rel=1e-12)  # mixture_bits on this run's float64 numbers
    assert enc.codelength_bits == pytest.approx(exact, rel=1e-12)  # the forward recursion in linear space
    assert enc.codelength_bits == pytest.approx(stored, rel=1e-6)
    assert enc.payload_bits <= 1.001 * stored + enc.check_bits + 32
    assert enc.codelength_bits < min(r.codelength_bits for r in chapter_runs.values()) + mixture_prior_bits(
        [0] * N, 3)


def test_self_switch_file_is_the_chapters(encoded, chapter_runs):
    enc, chapter = encoded["self_switch"], S.self_switch_result(chapter_runs["mlp"])
    assert enc.codelength_bits == pytest.approx(chapter.codelength_bits, rel=1e-12)
    assert enc.reference_bits == pytest.approx(chapter.codelength_bits, rel=1e-12)
    assert enc.payload_bits <= 1.001 * chapter.codelength_bits + enc.check_bits + 32
    assert chapter.parts["choice_bits"] == pytest.approx(sum(math.log2(e + 1) for e in chapter.curves["epochs_run"]))


def test_switch_weights_are_the_forward_algorithm():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=(3, 50))  # 3 strategies, 50 labels, K = 4
    y = rng.integers(0, 4, 50)
    weights, bits = F.SwitchWeights(3), 0.0
    for t in range(50):
        q64, q32 = coder.mixture_probabilities(weights.w, p[:, t])
        assert q64.sum() == pytest.approx(1, abs=1e-12) and q32.dtype == np.float32
        bits -= math.log2(q64[y[t]])
        weights.update(p[:, t, y[t]])
    assert bits == pytest.approx(S.mixture_bits(-np.log2(p[:, np.arange(50), y])).sum(), rel=1e-12)


def test_parallel_chains_write_the_same_file(encoded, synth):
    with training.torch_threads(1):
        assert F.encode(synth, make_code("switch"), parallel=True, progress=False).data == encoded["switch"].data


def test_a_label_of_probability_zero_is_still_encodable():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]], dtype=np.float32)
    labels = np.array([1, 0, 2])
    enc = coder.RangeCoder()
    enc.encode(labels, probs)
    words = enc.words()
    assert np.array_equal(coder.RangeCoder(words).decode(probs), labels)
    assert 32 * len(words) <= 3 * 24 + SLACK_BITS  # each impossible label costs at most 24 bits


def test_warm_start_prequential_round_trips(synth):
    code = F.PrequentialCode(N, 10, scales.as_params(recipe(warm_start=True, carry_optimizer=True)))
    with training.torch_threads(1):
        enc = F.encode(synth, code, progress=False)
        dec = F.decode(enc.data, bob(synth), code, progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy()) and np.array_equal(dec.probs, enc.probs)


# ------------------------------------------------------- a named recipe, checks


@pytest.fixture(scope="module")
def smoke_file(synth):
    """A prequential file of the logistic model at the smoke scale: Bob names the model, nothing else."""
    code = F.code_for("prequential", "synthetic", N, 10, "logistic", "smoke")
    with training.torch_threads(1):
        return F.encode(synth, code, progress=False)


def test_bob_names_the_model_as_alice_did(smoke_file, synth):
    with training.torch_threads(1):
        dec = F.decode(smoke_file.data, bob(synth), model="logistic", progress=False)
    assert np.array_equal(dec.labels, synth.y.numpy()) and dec.header.scale == "smoke" and dec.header.seed == 0


@pytest.mark.parametrize("change, message", [
    (dict(model="mlp"), "wrong recipe: .* it matches --model logistic"),
    (dict(model=None), "name its model as Alice did, e.g. --model mlp"),
    (dict(num_threads=2), "written with 1 torch thread.*decode with --threads 1"),
    (dict(order_seed=1), "order_seed=0"),
    (dict(n=300), "n=300"),
    (dict(x=True), "hash of the inputs"),
    (dict(name="mnist"), "wrong dataset: .* decode with --dataset synthetic"),
    (dict(code="self_switch"), "wrong code: the file holds a prequential code"),
    (dict(torch="9.9"), "other software or machine: .* torch 9.9"),
])
def test_other_recipe_inputs_or_environment_fail_before_any_label(smoke_file, synth, no_decoding, monkeypatch,
                                                                     change, message):
    ds = data.load("synthetic", "train", n=N, seed=change["order_seed"]) if "order_seed" in change else synth
    ds = ds.head(change["n"]) if "n" in change else ds
    if "x" in change:
        ds = dataclasses.replace(ds, x=ds.x.clone())
        ds.x[17, 3] += 1e-3
    ds = dataclasses.replace(ds, name=change.get("name", ds.name))
    if "torch" in change:
        monkeypatch.setattr(torch, "__version__", change["torch"])
    code = F.code_for(change["code"], "synthetic", N, 10, "logistic", "smoke") if "code" in change else None
    with pytest.raises(coder.CodingError, match=message) as err:
        F.decode(smoke_file.data, bob(ds), code, model=change.get("model", "logistic"),
                 num_threads=change.get("num_threads", 1))
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def described_file(synth):
    with training.torch_threads(1):
        return F.encode(synth, F.code_for("prequential", "synthetic", N, 10, "logistic", "smoke"), describe=True,
                        progress=False)


def test_self_describing_file_needs_no_names_and_says_what_differs(synth, smoke_file, described_file):
    assert described_file.payload_bits == smoke_file.payload_bits
    assert described_file.header_bits == smoke_file.header_bits + smoke_file.description_bits
    assert coder.unpack(described_file.data).header.description["settings"]["model"] == "logistic"
    with training.torch_threads(1):
        assert np.array_equal(F.decode(described_file.data, bob(synth), progress=False).labels, synth.y.numpy())


def test_a_self_describing_file_names_the_difference(synth, described_file, no_decoding):
    with pytest.raises(coder.CodingError, match="num_threads: 1 in the file, 3 here; decode with the encoder's "
                                                "versions, thread count"):
        F.decode(described_file.data, bob(synth), num_threads=3)
    settings = dict(coder.unpack(described_file.data).header.description["settings"], epochs=2)
    with pytest.raises(coder.CodingError, match="epochs: 3 in the file, 2 here"):
        F.decode(described_file.data, bob(synth), F.PrequentialCode(N, 10, settings))


def test_a_decoder_with_other_models_is_caught_by_the_labels_crc(encoded, synth):
    f = coder.unpack(encoded["uniform"].data)
    forged = dataclasses.replace(f.header, labels_crc=coder.labels_crc(np.zeros(N)))  # what a diverging Bob finds
    with pytest.raises(coder.CodingError, match="CRC-32 check"):
        F.decode(coder.pack(forged, f.payload), bob(synth), F.UniformCode(N, 10), progress=False)


def test_flipped_byte_anywhere_is_detected(encoded, synth):
    data_ = encoded["two_part"].data
    for pos in sorted({0, 1, 2, 3, 4, 6, 9, 13, 20, 30, len(data_) // 2, len(data_) - 10, len(data_) - 1}):
        bad = bytearray(data_)
        bad[pos] ^= 0x40
        with pytest.raises(coder.CodingError):
            F.decode(bytes(bad), bob(synth), make_code("two_part"), progress=False)
    bad = bytearray(data_)
    bad[-20] ^= 1  # inside the payload
    with pytest.raises(coder.CodingError, match="CRC-32 mismatch"):
        coder.unpack(bytes(bad))


def test_truncated_extended_and_foreign_files(encoded, tmp_path):
    data_ = encoded["prequential"].data
    for bad in (data_[:-7], data_[:-1], data_ + b"\0", data_[:10]):
        with pytest.raises(coder.CodingError, match="truncated"):
            coder.unpack(bad)
    with pytest.raises(coder.CodingError, match="magic"):
        coder.unpack(b"PK\x03\x04" + data_[4:])
    with pytest.raises(coder.CodingError, match="format version 1"):
        coder.unpack(b"MDLB\x01" + data_)
    with pytest.raises(coder.CodingError, match="format version 7"):
        coder.unpack(data_[:2] + b"\x07" + data_[3:])
    with pytest.raises(coder.CodingError, match="no such labels file"):
        coder.read(tmp_path / "missing.mdl")
    path = coder.write(tmp_path / "l.mdl", data_)
    assert coder.read(path) == data_


# ---------------------------------------------------------------- the chapter


def test_round_trip_result_and_cli(synth, tmp_path, capsys):
    from mdl_utils import compress, decompress

    r = B.round_trip(synth.head(200), F.UniformCode(200, 10), scale="smoke", path=tmp_path / "u.mdl", progress=False)
    assert r.code == "bytes" and r.model == "uniform" and r.codelength_bits == r.parts["file_bits"] == 8 * r.parts["file_bytes"]
    assert r.parts["fixed_header_bits"] == 192 < r.parts["self_describing_header_bits"]
    out = tmp_path / "p.mdl"
    assert compress.main(["--code", "prequential", "--dataset", "synthetic", "--model", "logistic", "--n", "300",
                          "--scale", "smoke", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "encoding 300 labels of synthetic" in printed and "computed codelength" in printed
    assert decompress.main([str(out), "--model", "logistic", "--out", str(tmp_path / "y.npy"), "--no-progress"]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy"), data.load("synthetic", "train", n=300).y.numpy())
    capsys.readouterr()
    for args, message in ((["--dataset", "mnist"], "error: wrong dataset"), (["--model", "mlp"], "error: wrong recipe"),
                          (["--model", "logistic", "--threads", "2"], "error: wrong thread count")):
        assert decompress.main([str(out), *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith(message) and err.count("\n") == 1
    out.write_bytes(out.read_bytes()[:-3])
    assert decompress.main([str(out), "--model", "logistic"]) == 1
    assert "truncated" in capsys.readouterr().err


@needs_data
def test_real_mnist_subset_round_trip():
    mnist = data.load("mnist", "train", n=256, seed=0)
    steps = (8, 16, 32, 64, 128, 256)
    with training.torch_threads(1):
        for name in ("uniform", "prequential", "switch", "self_switch"):
            enc = F.encode(mnist, make_code(name, 256, steps), progress=False)
            dec = F.decode(enc.data, bob(mnist), make_code(name, 256, steps), progress=False)
            assert np.array_equal(dec.labels, mnist.y.numpy()) and np.array_equal(dec.probs, enc.probs)
            assert abs(enc.payload_bits - enc.codelength_bits - enc.check_bits) <= SLACK_BITS
            assert enc.sections["header"] == 192


def test_coder_uses_the_chapters_settings():
    # the file coder's recipes are the prequential chapter's, per-model epoch caps included, without the records
    for model, epochs in (("mlp", 20), ("tinycnn", 5)):
        code = F.code_for("prequential", "cifar10", 50000, 10, model, "cpu")
        assert code.recipe.epochs == epochs and code.recipe.timesteps[:2] == (10, 20)
        assert code.recipe.record_epochs is False and code.recipe.patience == 3 and code.recipe.calibrate
    assert F.code_for("prequential", "mnist", 60000, 10, "mlp", "cpu").recipe.timesteps[0] == 8
    mix = F.code_for("switch", "cifar10", 50000, 10, "switch-mlp-tinycnn-uniform", "cpu")
    assert [r.epochs for r in mix.recipes] == [20, 5] and mix.model_arg == "mlp-tinycnn"
    assert B.result_model(mix) == "switch-mlp-tinycnn-uniform" == S.mixture_name(["mlp", "tinycnn"])
    with pytest.raises(ValueError, match="takes one model"):
        F.code_for("self_switch", "mnist", 600, 10, "mlp-small_cnn", "smoke")
    warm = F.code_for("prequential", "mnist", 60000, 10, "mlp_warm", "cpu")  # a named recipe of the chapter
    assert warm.recipe.warm_start and warm.recipe.model == "mlp" and B.result_model(warm) == "prequential_mlp_warm"


def test_model_names_of_the_chapter():
    assert B.split_name("prequential_small_cnn") == ("prequential", "small_cnn")
    assert B.split_name("uniform") == ("uniform", None) and B.split_name("two_part_mlp") == ("two_part", "mlp")
    assert B.split_name("switch-mlp-small_cnn-uniform") == ("switch", "mlp-small_cnn")
    assert B.split_name("self_switch_small_cnn") == ("self_switch", "small_cnn")
    with pytest.raises(ValueError, match="unknown code"):
        B.split_name("switchy")


@needs_data
def test_a_warm_start_recipe_round_trips_on_mnist_smoke_and_codes_what_the_chapter_computes():
    """Issue 16: the chapter's warm recipe mlp_warm as a file, on MNIST at smoke scale: Bob replays the chain
    from the labels he decoded, and the file's computed codelength is the prequential chapter's (to 1e-9)."""
    mnist = data.load("mnist", "train", n=P.settings("smoke").n_train, seed=0)
    code = F.code_for("prequential", "mnist", mnist.n, mnist.K, "mlp_warm", "smoke")
    assert code.recipe.warm_start
    with training.torch_threads(1):
        enc = F.encode(mnist, code, progress=False)
        dec = F.decode(enc.data, bob(mnist), model="mlp_warm", progress=False)
    assert np.array_equal(dec.labels, mnist.y.numpy()) and np.array_equal(dec.probs, enc.probs)
    chapter = P.compute("mnist", "mlp_warm", "smoke", device="cpu", progress=False)
    assert enc.codelength_bits == pytest.approx(chapter.codelength_bits, rel=1e-9, abs=1e-6)


# ------------------------------------------------ numerics and per-block checks


def test_the_environment_field_names_the_numerics():
    for kind in coder.NUMERICS_IDS:
        field = coder.environment_field({"numerics": kind, "torch": "x"})
        assert len(field) == 2 and coder.numerics_of(field) == kind
    a, b = (coder.environment_field({"numerics": "portable", "num_threads": t}) for t in (1, 2))
    assert a != b and coder.numerics_of(a) == coder.numerics_of(b) == "portable"
    env = H.environment(1)
    assert env["numerics"] == "portable" and env["code_version"] == numerics.CODE_VERSION  # the suite runs portable
    assert "cpu" not in env and "mdl_utils" not in env  # portable bits do not depend on the CPU model


class _Diverging(F.PrequentialCode):
    """Bob's code whose models predict differently from block ``start`` on (a CPU whose kernels differ)."""

    def __init__(self, *args, start: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.diverge_at, self.blocks_seen = start, []

    def chain_block(self, y_prefix, start, end):
        self.blocks_seen.append(start)
        z, temperature = self.chains.next_blocks(y_prefix, end)[0]
        return F.ChainBlock(z + 1e-4 if start >= self.diverge_at else z, temperature)


def test_a_diverging_decoder_stops_at_the_first_wrong_block(encoded, synth):
    code = _Diverging(N, 10, scales.as_params(recipe()), start=40)
    with training.torch_threads(1), pytest.raises(coder.CodingError, match="per-block check failed before label "
                                                                           "(41|81)") as err:
        F.decode(encoded["prequential"].data, bob(synth), code, progress=False)
    assert code.blocks_seen[-1] <= 80 and "\n" not in str(err.value)  # stopped before the blocks after it


def _header_with(encoded, environment: dict) -> coder.Header:
    f = coder.unpack(encoded["uniform"].data)
    return dataclasses.replace(f.header, environment_hash=coder.environment_field(environment))


@pytest.mark.parametrize("facts, message, needs", [
    ({"device": "cuda", "numerics": "cuda", "gpu": "NVIDIA H200", "cuda": "13.0", "cudnn": 92400},
     "written on a GPU \\(CUDA\\), and decodes only on the same kind of GPU", None),
    ({"device": "cpu", "numerics": "native", "cpu_isa": "AVX", "cpu": "GenuineIntel Intel(R) Core(TM) i3-540 CPU"},
     "native numerics \\(--fast-numerics\\) on another kind of CPU, and decodes only there; this machine: native ",
     None),
    ("native here", "written with native numerics on this kind of CPU, .* decode with MDL_NUMERICS=native", "native"),
    ("portable, other vendor", "written with portable numerics on an (Intel|AMD) CPU, and this one is (AMD|Intel|\\w+): "
     "portable numerics give the same bits within one CPU vendor only; decode on an (Intel|AMD) x86-64 CPU",
     "portable"),
])
def test_files_of_other_numerics_are_refused_before_any_label(encoded, synth, no_decoding, facts, message, needs):
    if facts == "native here":
        facts = numerics.native_environment()
    elif facts == "portable, other vendor":
        here = numerics.cpu_identity()["vendor"]
        facts = numerics.portable_environment("AuthenticAMD" if here == "GenuineIntel" else "GenuineIntel")
    header = _header_with(encoded, H.environment(1, facts=facts))
    with pytest.raises(coder.CodingError, match=message) as err:
        H.check_environment(header, 1)
    assert "\n" not in str(err.value)
    assert H.file_numerics(header, 1) == needs


def test_portable_numerics_name_the_cpu_vendor_except_intel():
    """Files and results made before the vendor entered the environment (all on Intel) keep theirs."""
    assert numerics.portable_environment("GenuineIntel") == {"device": "cpu", "numerics": "portable"}
    amd = numerics.portable_environment("AuthenticAMD")
    assert amd == {"device": "cpu", "numerics": "portable", "cpu_vendor": "AuthenticAMD"}
    assert coder.environment_field(H.environment(1, facts=amd)) != \
        coder.environment_field(H.environment(1, facts=numerics.portable_environment("GenuineIntel")))
    assert numerics.describe(amd) == "portable numerics (AMD CPUs)"


def test_a_native_file_decodes_with_native_numerics_only(tmp_path, synth, no_decoding):
    """Alice writes with --fast-numerics (another process: numerics are set before torch computes); Bob's
    portable process refuses at once, and the decompress command switches to native numerics by itself."""
    out = tmp_path / "native.mdl"
    args = ["--code", "prequential", "--dataset", "synthetic", "--model", "logistic", "--n", "300", "--scale",
            "smoke", "--no-progress"]
    alice = subprocess.run([sys.executable, "-m", "mdl_utils.compress", str(out), *args, "--fast-numerics"],
                           capture_output=True, text=True, timeout=300)
    assert alice.returncode == 0, alice.stderr
    assert "numerics: native numerics on" in alice.stdout and "only on this kind of CPU" in alice.stdout
    header = coder.unpack(out.read_bytes()).header
    assert coder.numerics_of(header.environment_hash) == "native"
    with pytest.raises(coder.CodingError, match="native numerics on this kind of CPU"):
        F.decode(out.read_bytes(), bob(synth.head(300)), model="logistic")
    bob_ = subprocess.run([sys.executable, "-m", "mdl_utils.decompress", str(out), "--model", "logistic", "--out",
                           str(tmp_path / "y.npy"), "--no-progress"], capture_output=True, text=True, timeout=300)
    assert bob_.returncode == 0, bob_.stderr
    assert "decoding with native numerics" in bob_.stdout
    assert np.array_equal(np.load(tmp_path / "y.npy"), synth.head(300).y.numpy())


def test_a_payload_below_the_computed_codelength_says_why(encoded):
    """The coder floors every probability at 2^-24: a near-impossible label costs at most 24 bits in the file."""
    enc = encoded["prequential"]
    assert "2^-24" not in compress.summary(enc)
    floored = dataclasses.replace(enc, codelength_bits=enc.payload_bits + 100.0)
    assert "costs at most 24 bits in the file" in compress.summary(floored)


def test_a_file_is_compared_with_its_chapter_only_under_the_same_numerics():
    """Chapter 9 calls a gap between a file's computed codelength and its chapter's 'summation order' only when
    both ran the same numerics and code version; another CPU vendor's run is named as such."""
    from mdl_utils.results import CodeResult
    from mdl_utils.tables import bytes as T

    def run(**provenance):
        return CodeResult("prequential", "mnist", "mlp", "cpu", 10, 10, 1.0, provenance=provenance)

    intel = run(numerics={"device": "cpu", "numerics": "portable"}, code_version=2)
    amd = run(numerics=numerics.portable_environment("AuthenticAMD"), code_version=2)
    assert T._same_numerics(intel, run(**intel.provenance))
    assert not T._same_numerics(intel, amd)
    assert not T._same_numerics(intel, run(numerics=intel.provenance["numerics"], code_version=1))
    assert T._agreement(3.0, 3.0) == "the same number"
    assert T._agreement(3.0, 3.0 + 2e-12).endswith("floating-point summation order")


LEGACY_STEPS = [10, 20, 40, 80, 160, 300]


def legacy_code(name: str):
    """The codes of the code-version-2 files in tests/data (calibrated from 5 held-out labels: hedge-relevant)."""
    def r(m):
        return scales.as_params(P.Recipe(model=m, timesteps=tuple(LEGACY_STEPS), epochs=3, patience=2, seed=0,
                                         record_epochs=False, min_calibration=5))
    if name == "prequential":
        return F.PrequentialCode(300, 10, r("mlp"))
    return F.SwitchCode(300, 10, {"strategies": [r("mlp"), r("logistic")]})


@pytest.mark.parametrize("name", ["prequential", "switch"])
def test_files_of_code_version_2_still_decode_with_its_rules(name):
    """Files written before the hedged calibration (code version 2: the temperature alone; written by commit
    fa8942f on an AMD CPU) decode exactly: the decoder reads the version from the header and applies its rules."""
    if numerics.cpu_identity()["vendor"] != "AuthenticAMD":
        pytest.skip("these code-version-2 files were written on an AMD CPU (Intel's: tests/test_numerics.py)")
    ds = data.load("synthetic", "train", n=300, seed=0)
    code = legacy_code(name)
    with training.torch_threads(1):
        decoded = F.decode((ROOT / "tests" / "data" / f"synthetic-{name}-v2-AuthenticAMD.mdl").read_bytes(), bob(ds),
                           code, progress=False)
    assert code.code_version == 2 and np.array_equal(decoded.labels, ds.y.numpy())
