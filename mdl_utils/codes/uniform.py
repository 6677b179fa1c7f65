"""Chapter 1: the uniform code (paper Sec. 2.3) and held-out Shannon codes (Sec. 2.2, Prop. 1, Sec. 2.4).

* ``uniform``: every label costs log2 K bits whatever the inputs,
  L_unif(y_1:n) = n log2 K (MNIST: 60000 log2 10 = 199,315.7 bits).
* ``shannon_heldout``: a model fit on the first m training samples encodes the
  labels of the *test* split with its Shannon code sum -log2 p(y|x); the model
  itself is not paid for (later chapters do that). This is not a code of the
  training labels: it is stored apart, in ``results/uniform/shannon_heldout/``.
  On the synthetic task the true-model floor sum -log2 p_teacher(y|x) (Sec. 2.4)
  is reported beside it.

Entry point: ``compute(dataset, model, scale)``; model ``"uniform"`` gives the
uniform code, any other architecture (default ``"logistic"``) the held-out curve.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

from tqdm import tqdm

from .. import data, scales
from ..bits import accuracy, codelength_bits, uniform_bits
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance
from ..training import fit_full_batch, predict_logits, resolve_device

CHAPTER = "uniform"


@dataclasses.dataclass(frozen=True)
class Settings:
    """n_train/n_test: samples loaded (None = the whole split); fit_sizes: prefixes of the training order the
    held-out model is fit on (None = all n_train), by full-batch L-BFGS with an L2 penalty ``weight_decay``."""

    n_train: int | None = None
    n_test: int | None = None
    fit_sizes: tuple[int | None, ...] = (10, 30, 100, 300, 1000, 3000, 10000, None)
    max_iter: int = 300
    weight_decay: float = 1e-3
    models: tuple[str, ...] = ("uniform", "logistic")


SCALES = {
    "smoke": dict(n_train=2000, n_test=1000, fit_sizes=(50, 200, 2000), max_iter=30),
    "cpu": dict(max_iter=100),
}


settings = scales.settings_of(Settings, SCALES)


def code_of(model: str) -> str:
    return "uniform" if model == "uniform" else "shannon_heldout"


def runs(dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The uniform code, and the held-out Shannon curve of each model when the dataset has a test split (arrays
    need not: then only the uniform code, and a line says why)."""
    names = list(models or settings(scale).models)
    if not data.has_test_split(dataset) and any(m != "uniform" for m in names):
        print(f"{dataset}: no test split (x_test, y_test): the held-out Shannon curves need one; only the uniform code")
        names = [m for m in names if m == "uniform"]
    return [(dataset, m) for m in names]


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """The uniform code of ``dataset``'s training labels (model "uniform"), or the held-out Shannon curve of
    ``model`` fit on prefixes of the training split and evaluated on the test split."""
    s = settings(scale)
    train = data.load(dataset, "train", root=data_root, n=s.n_train, seed=seed)
    if model == "uniform":
        return uniform_code(train, scale=scale)
    test = data.load(dataset, "test", root=data_root, n=s.n_test, seed=seed)
    return heldout_curve(train, test, model, s, scale=scale, seed=seed, device=device)


def uniform_code(dataset: data.Dataset, *, scale: str) -> CodeResult:
    """The uniform code of ``dataset``'s labels as a CodeResult (no model, no training)."""
    with Stopwatch() as sw:
        bits = uniform_bits(dataset.n, dataset.K)
    return CodeResult(
        code="uniform", dataset=dataset.name, model="uniform", scale=scale, n=dataset.n, K=dataset.K,
        codelength_bits=bits, test_accuracy=1.0 / dataset.K, seed=dataset.seed or 0,
        parts={"data_bits": bits, "model_bits": 0.0},
        params={"seed": dataset.seed, "n_train": dataset.n},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=dataset.source),
        note="n log2 K; test accuracy is that of a uniform random guess",
    )


def heldout_curve(train: data.Dataset, test: data.Dataset, model: str, s: Settings, *, scale: str, seed: int = 0,
                  device: str = "auto", progress: bool = True) -> CodeResult:
    """Shannon codelength of the test labels under ``model`` fit on growing prefixes of ``train``.

    For each m in ``s.fit_sizes`` a model is fit on the first m transmitted training samples and the test labels
    are encoded with it: L_p(y_test | x_test) = sum -log2 p(y|x) (Prop. 1). The result's codelength is that of
    the largest fit; its n is the number of test labels.
    """
    device = resolve_device(device)
    sizes = sorted({train.n if m is None else min(int(m), train.n) for m in s.fit_sizes})
    curve = {"fit_size": [], "bits": [], "bits_per_sample": [], "test_accuracy": []}
    with Stopwatch() as sw:
        for m in tqdm(sizes, desc=f"{train.name}: fitting {model}", disable=not progress):
            net = build(model, tuple(train.x.shape[1:]), train.K, seed=seed)
            part = train.head(m)
            fit_full_batch(net, part.x, part.y, weight_decay=s.weight_decay, max_iter=s.max_iter, device=device)
            logits = predict_logits(net, test.x, device)
            curve["fit_size"].append(m)
            curve["bits"].append(codelength_bits(logits, test.y))
            curve["bits_per_sample"].append(curve["bits"][-1] / test.n)
            curve["test_accuracy"].append(accuracy(logits, test.y))
    parts = {"data_bits": curve["bits"][-1]}
    if test.true_bits is not None:
        parts["true_model_bits"] = float(test.true_bits.sum())
        curve["true_bits_per_sample"] = float(test.true_bits.mean())
    return CodeResult(
        code="shannon_heldout", dataset=train.name, model=model, scale=scale, n=test.n, K=test.K,
        codelength_bits=curve["bits"][-1], test_accuracy=curve["test_accuracy"][-1], seed=seed,
        parts=parts, curves=curve,
        params={**scales.as_params(s), "fit_sizes": sizes, "seed": seed, "n_train": train.n, "n_test": test.n,
                "num_parameters": num_parameters(net)},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="labels of the test split, model fit on a training prefix and not paid for (Prop. 1)",
    )
