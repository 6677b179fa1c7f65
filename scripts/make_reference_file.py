"""Write the references that the test suite reproduces bit for bit on any x86-64 machine of this CPU vendor.

    MDL_DATA=../shared/data python scripts/make_reference_file.py

tests/data/mnist-<N>-cnn4_warm_short[-<vendor>].mdl: the first N MNIST training labels (order seed 0; N = 1,024, the
Intel file of an earlier version has 2,048) with a
short warm CNN recipe (cnn4_warm's scheme at one epoch and at least five steps per block), in a self-describing file
(the recipe travels in its header), written with portable numerics. tests/test_numerics.py decodes it with the
kernels capped at AVX2 (a stand-in for another CPU of the vendor) and checks that a machine of another vendor
refuses it before its first label. Portable numerics hold within one CPU vendor (mdl_utils.numerics), so each
vendor has its file: no suffix for Intel (numerics.REFERENCE_VENDOR), ``-AuthenticAMD`` for AMD.

tests/data/prequential-first-blocks-<vendor>.json: the per-sample bits of the first blocks of the MNIST ``mlp``
and ``small_cnn`` prequential runs at cpu scale with the temperature alone (what Chain.next_block gives; the
hedged calibration of code version 3 does not move them). Intel's were taken from the Intel-made stored runs of
code version 2, made on an Intel Xeon.

Regenerate them all, and bump mdl_utils.numerics.CODE_VERSION, after any change that moves the bits: the test
refuses a file whose code version differs, and any other change fails its per-block checks.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from mdl_utils import coder, data, numerics, scales, training  # noqa: E402  (mdl_utils first: portable numerics)
from mdl_utils.bits import per_sample_bits  # noqa: E402
from mdl_utils.codes import files as B  # noqa: E402
from mdl_utils.compress import summary  # noqa: E402
from mdl_utils.codes import prequential as P  # noqa: E402

N = 1024  # labels in the file: a decode of about 15 s on one core (files of an earlier version have 2,048)
FIRST_BLOCKS = {"mlp": 6, "small_cnn": 4}  # blocks of each MNIST cpu-scale run kept as a reference


def file_path(vendor: str, n: int | None = None) -> Path:
    """The reference labels file of CPU ``vendor`` (a ``vendor_id``: GenuineIntel, AuthenticAMD) with ``n`` labels;
    by default the one in tests/data (N labels, or 2,048 for a file of an earlier version)."""
    suffix = "" if vendor == numerics.REFERENCE_VENDOR else f"-{vendor}"
    if n is None:
        earlier = file_path(vendor, 2048)
        return earlier if earlier.is_file() and not file_path(vendor, N).is_file() else file_path(vendor, N)
    return ROOT / "tests" / "data" / f"mnist-{n}-cnn4_warm_short{suffix}.mdl"


def bits_path(vendor: str) -> Path:
    return ROOT / "tests" / "data" / f"prequential-first-blocks-{vendor}.json"


def write_bits(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Per-sample bits as text: each run's float32 values, little-endian, in hex (bit-exact, diffable)."""
    path.write_text(json.dumps({k: a.astype("<f4").tobytes().hex() for k, a in arrays.items()}, indent=1) + "\n")


def read_bits(path: Path) -> dict[str, np.ndarray]:
    """What :func:`write_bits` wrote."""
    return {k: np.frombuffer(bytes.fromhex(h), dtype="<f4") for k, h in json.loads(path.read_text()).items()}


def first_blocks(model: str, blocks: int) -> np.ndarray:
    """Per-sample bits (float32, as results store them) of the first ``blocks`` blocks of the MNIST ``model``
    prequential run at cpu scale (one torch thread): labels t_1 .. t_{1+blocks} (the first t_1 are sent uniformly)."""
    train = data.load("mnist", "train", seed=0)
    recipe = P.settings("cpu").recipe("mnist", model, train.n)
    chain = P.Chain(train.x, train.K, recipe, "cpu")
    out = []
    for t_s, t_next in zip(recipe.timesteps[:blocks], recipe.timesteps[1:blocks + 1]):
        out.append(per_sample_bits(chain.next_block(train.y[:t_s], t_next), train.y[t_s:t_next]))
    return np.concatenate(out).astype(np.float32)


def reference_recipe() -> P.Recipe:
    """cnn4_warm (prequential.RECIPES) on N labels, one epoch and at least five steps per block."""
    r = P.settings("cpu").recipe("mnist", "cnn4_warm", N, seed=0)
    return dataclasses.replace(r, epochs=1, min_steps=5, record_epochs=False)


def main() -> int:
    vendor = numerics.cpu_identity()["vendor"]
    train = data.load("mnist", "train", seed=0).head(N)
    code = B.PrequentialCode(N, train.K, scales.as_params(reference_recipe()))
    with training.torch_threads(1):
        enc = B.encode(train, code, num_threads=1, describe=True)
        file_path(vendor, 2048).unlink(missing_ok=True)  # an earlier version's file
        coder.write(file_path(vendor, N), enc.data)
        print(f"wrote {file_path(vendor, N).relative_to(ROOT)}")
        print(summary(enc))
        write_bits(bits_path(vendor), {m: first_blocks(m, b) for m, b in FIRST_BLOCKS.items()})
        print(f"wrote {bits_path(vendor).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
