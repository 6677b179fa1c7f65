"""Write the labels file that the test suite decodes bit for bit on any x86-64 machine.

    MDL_DATA=../shared/data python scripts/make_reference_file.py

tests/data/mnist-2048-cnn4_warm_short.mdl: the first 2,048 MNIST training labels (order seed 0) with a short
warm CNN recipe (cnn4_warm's scheme at one epoch and at least five steps per block), in a self-describing file (the recipe travels in
its header), written with portable numerics. tests/test_numerics.py decodes it with the kernels capped at AVX2 (a
stand-in for another CPU). Regenerate it, and bump mdl_utils.numerics.CODE_VERSION, after any change that moves
the bits: the test refuses a file whose code version differs, and any other change fails its per-block checks.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mdl_utils import coder, data, scales, training  # noqa: E402  (mdl_utils first: portable numerics)
from mdl_utils.codes import bytes as B  # noqa: E402
from mdl_utils.codes import prequential as P  # noqa: E402

PATH = ROOT / "tests" / "data" / "mnist-2048-cnn4_warm_short.mdl"
N = 2048


def reference_recipe() -> P.Recipe:
    """cnn4_warm (prequential.RECIPES) on 2,048 labels, one epoch and at least five steps per block (a decode of
    about ten seconds on one core)."""
    r = P.settings("cpu").recipe("mnist", "cnn4_warm", N, seed=0)
    return dataclasses.replace(r, epochs=1, min_steps=5, record_epochs=False)


def main() -> int:
    train = data.load("mnist", "train", seed=0).head(N)
    code = B.PrequentialCode(N, train.K, scales.as_params(reference_recipe()))
    with training.torch_threads(1):
        enc = B.encode(train, code, num_threads=1, describe=True)
    coder.write(PATH, enc.data)
    print(f"wrote {PATH.relative_to(ROOT)}")
    print(B.summary(enc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
