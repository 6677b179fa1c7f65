"""Portable numerics (mdl_utils.numerics): the same bits on any x86-64 CPU with AVX2 of one vendor.

The committed references below were computed on other machines than the one running the suite (CI and
reviewers run on other CPUs), one set per CPU vendor (Intel and AMD differ in the last bits): the per-sample bits
of the first blocks of the MNIST mlp and small_cnn runs, and a labels file (tests/data, written by
scripts/make_reference_file.py; Intel's first blocks taken from the Intel-made runs of code version 2). The suite reproduces this vendor's references
bit for bit and checks that the other vendor's file is refused before its first label. The kernel caps
(MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA) stand in for other CPUs of the vendor on this one.
"""

import dataclasses
import hashlib
from concurrent.futures import ThreadPoolExecutor
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mdl_utils import data, numerics
from mdl_utils.bits import per_sample_bits
from mdl_utils.codes import prequential as P

from .conftest import ROOT, needs_data, real_data_root

VENDOR = numerics.cpu_identity()["vendor"]
OTHER_VENDOR = "AuthenticAMD" if VENDOR == numerics.REFERENCE_VENDOR else numerics.REFERENCE_VENDOR


def reference_script():
    """scripts/make_reference_file.py as a module (where each vendor's references live, and how they were made)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_reference_file", ROOT / "scripts" / "make_reference_file.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REF = reference_script()
# Caps that stand in for another CPU, and a user's setting that asks MKL for AVX-512 kernels (it overrides MKL's
# AVX2 reproducible branch, measured; not the COMPATIBLE one that portable numerics use).
STAND_INS = ({"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {"MKL_ENABLE_INSTRUCTIONS": "AVX512"})


def fresh_environment(**env: str) -> dict:
    """A new user's environment (without the variables mdl_utils set in this process), with ``env`` added."""
    ours = {numerics.ENV, *numerics.PORTABLE_ENV}
    return {**{k: v for k, v in os.environ.items() if k not in ours}, **env}


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh Python (numerics are fixed when torch first computes) with ``env`` added."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=fresh_environment(**env))


def test_the_suite_runs_with_portable_numerics():
    s = numerics.check()
    assert s["mode"] == "portable" and s["cpu_capability"] == "AVX2" and not s["mkldnn"] and not s["nnpack"]
    assert s["mkl_cbwr"] in ("COMPATIBLE", "unknown")
    assert numerics.environment("cpu") == numerics.portable_environment(VENDOR)
    assert ("cpu_vendor" in numerics.environment("cpu")) == (VENDOR != "GenuineIntel")
    assert not torch.backends.mkldnn.enabled


def test_torch_computing_before_mdl_utils_is_refused_in_one_line():
    run = python("import torch\ntorch.softmax(torch.ones(2, 2), 1)  # ATen picks its kernels here\n"
                 "from mdl_utils import training\ntry:\n    training.make_deterministic()\n"
                 "    print('ok', torch.backends.cpu.get_cpu_capability())\n"
                 "except Exception as e:\n    print(type(e).__name__, e)")
    if run.stdout.strip() == "ok AVX2":
        pytest.skip("this CPU's widest kernels are AVX2: computing before mdl_utils changes nothing")
    assert run.stdout.startswith("NumericsError portable numerics are not in effect (cpu_capability "), run.stdout
    assert "import mdl_utils before running any torch code" in run.stdout and run.stdout.count("\n") == 1


def test_the_switch_and_its_one_line_errors():
    native = python("import os, mdl_utils\nfrom mdl_utils import numerics\n"
                    "print(numerics.state()['mkldnn'], os.environ.get('ATEN_CPU_CAPABILITY'), os.environ['MDL_NUMERICS'])",
                    MDL_NUMERICS="native")
    assert native.stdout.split() == ["True", "None", "native"]  # the portable variables this process inherited: gone
    bad = python("import mdl_utils", MDL_NUMERICS="fast")
    assert bad.returncode != 0 and "MDL_NUMERICS='fast': choose portable (the default) or native" in bad.stderr


def train_a_little() -> str:
    """The per-sample bits (SHA-256) of an MLP and a warm CNN chain on 128 MNIST samples (random images without
    MDL_DATA), one torch thread."""
    torch.set_num_threads(1)
    if real_data_root():
        train = data.load("mnist", "train", n=128, seed=0)
        x, y = train.x, train.y
    else:  # random images exercise the same kernels
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(128, 1, 28, 28, generator=g), torch.randint(0, 10, (128,), generator=g)
    bits = []
    for model, changes in (("mlp", {}), ("cnn4_warm", dict(epochs=1, min_steps=4, uniform_below=0))):
        r = dataclasses.replace(P.settings("cpu").recipe("mnist", model, len(y)), record_epochs=False, **changes)
        chain = P.Chain(x, 10, r, "cpu")
        for t, t_next in zip(r.timesteps[:-1], r.timesteps[1:]):
            bits.append(per_sample_bits(chain.next_block(y[:t], t_next), y[t:t_next]))
    return f"{numerics.state()['mode']} {hashlib.sha256(np.concatenate(bits).tobytes()).hexdigest()}"


def test_the_bits_do_not_move_when_the_kernels_are_capped(one_torch_thread):
    """An MLP and a warm CNN chain trained here and in processes whose caps stand in for other CPUs: the same
    bits."""
    code = "import mdl_utils\nfrom tests.test_numerics import train_a_little\nprint(train_a_little())"
    with ThreadPoolExecutor(len(STAND_INS)) as pool:  # the other processes train while this one does
        pending = [pool.submit(python, code, **env) for env in STAND_INS]
        here = train_a_little()
        runs = [p.result() for p in pending]
    assert all(r.returncode == 0 for r in runs), [r.stderr[-500:] for r in runs]
    assert here.startswith("portable ") and [r.stdout.strip() for r in runs] == [here] * len(STAND_INS)


def committed_bits(model: str, timesteps) -> tuple[np.ndarray, int]:
    """This vendor's committed per-sample bits of the first blocks of the MNIST ``model`` run (tests/data) and the
    label index of their first entry."""
    path = REF.bits_path(VENDOR)
    if not path.is_file():
        pytest.skip(f"no committed references for {VENDOR} CPUs: write them with scripts/make_reference_file.py")
    return REF.read_bits(path)[model], timesteps[0]


@needs_data
@pytest.mark.parametrize("model, blocks", sorted(REF.FIRST_BLOCKS.items()))
def test_the_committed_cpu_bits_are_reproduced(one_torch_thread, model, blocks):
    """The first blocks of an MLP's and a CNN's MNIST run (computed with portable numerics on another machine of
    this CPU vendor), bit for bit (stored as float32): the book's numbers are not this machine's only."""
    train = data.load("mnist", "train", seed=0)
    recipe = P.settings("cpu").recipe("mnist", model, train.n)
    committed, first = committed_bits(model, recipe.timesteps)
    chain = P.Chain(train.x, train.K, recipe, "cpu")
    for t_s, t_next in zip(recipe.timesteps[:blocks], recipe.timesteps[1:blocks + 1]):
        bits = per_sample_bits(chain.next_block(train.y[:t_s], t_next), train.y[t_s:t_next])
        assert np.array_equal(bits.astype(np.float32), committed[t_s - first:t_next - first]), t_s


def decompress(path, out, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mdl_utils.decompress", str(path), "--out", str(out),
                           "--no-progress"], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env=fresh_environment(**env, MDL_DATA=str(real_data_root())))


@needs_data
def test_the_committed_labels_file_decodes_exactly_with_capped_kernels(tmp_path):
    """This vendor's shipped file (a warm CNN recipe, the first 1,024 or 2,048 MNIST labels) decodes to the exact labels on this
    machine with the kernels capped at AVX2. A change that moves the bits fails here: regenerate the files with
    scripts/make_reference_file.py and bump numerics.CODE_VERSION."""
    if not REF.file_path(VENDOR).is_file():
        pytest.skip(f"no committed labels file for {VENDOR} CPUs: write it with scripts/make_reference_file.py")
    out = tmp_path / "labels.npy"
    run = decompress(REF.file_path(VENDOR), out, **STAND_INS[0])
    assert run.returncode == 0, run.stderr
    decoded = np.load(out)
    assert len(decoded) >= 1024 and np.array_equal(decoded, data.load("mnist", "train", seed=0).y[:len(decoded)].numpy())
    assert "labels CRC-32 OK" in run.stdout


@needs_data
def test_the_other_vendors_labels_file_is_refused_before_its_first_label(tmp_path):
    """Portable numerics hold within one CPU vendor: the other vendor's file is refused from its header, in one
    line naming both vendors, and no label is written."""
    path = REF.file_path(OTHER_VENDOR)
    if not path.is_file():
        pytest.skip(f"no committed labels file for {OTHER_VENDOR} CPUs")
    out = tmp_path / "labels.npy"
    run = decompress(path, out)
    assert run.returncode != 0 and not out.exists()
    theirs, here = (numerics.vendor_words(numerics.portable_environment(v)) for v in (OTHER_VENDOR, VENDOR))
    assert f"written with portable numerics on an {theirs} CPU, and this one is {here}" in run.stderr, run.stderr
    assert run.stderr.strip().count("\n") == 0
