"""Chapter 8: fake labels. Random labels cannot be compressed (paper App. A, Prop. 2, Figure 1).

Proposition 2. Let y_1..y_n be iid uniform among K classes, whatever the inputs x.
For any prefix code of the labels (it may depend on x in any way fixed in
advance), with probability at least 1 - 2^-c its codelength is at least
n log2 K - c bits.

Proof (counting). A prefix code has at most 2^l codewords of length l, so fewer
than 2^(L0) label sequences get a codeword shorter than L0 bits (Kraft:
sum_y 2^-L(y) <= 1, hence #{y : L(y) < L0} < 2^L0). Each sequence has
probability K^-n, so P(L(y) < n log2 K - c) < 2^(n log2 K - c) K^-n = 2^-c.

The chapter stores, per dataset D (Figure 1, MNIST in the paper): the
variational code of the true labels (``D`` / ``mlp3x200``), the variational code
of iid uniform random labels (``D_random`` / ``mlp3x200``), and plain Adam
training that memorizes random labels, stated as a float32 two-part code
(``D_random`` / ``mlp3x200_adam``; Zhang et al. 2017).
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import torch

from .. import data, scales
from ..bits import accuracy, codelength_bits, uniform_bits
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance
from ..training import FitOptions, fit, predict_logits, resolve_device, torch_threads
from . import variational

CHAPTER = "fake_labels"
RANDOM_SUFFIX = "_random"
MEMORIZE_SUFFIX = "_adam"


# ------------------------------------------------------------- the bound


def counting_bound_bits(n: int, K: int, c: float) -> float:
    """n log2 K - c: with probability >= 1 - 2^-c no code spends fewer bits on n uniform labels."""
    if c < 0:
        raise ValueError(f"c must be >= 0 (bits below the uniform code), got {c!r}")
    return uniform_bits(n, K) - float(c)


def bound_failure_probability(c: float) -> float:
    """2^-c: the largest probability that a code beats n log2 K by c bits or more on uniform labels."""
    if c < 0:
        raise ValueError(f"c must be >= 0, got {c!r}")
    return 2.0 ** (-float(c))


def counting_table(n: int, K: int, cs: Iterable[float]) -> list[dict]:
    """One row per c: bound n log2 K - c (bits), 2^-c, and the bound as a ratio of n log2 K."""
    u = uniform_bits(n, K)
    return [{"c": c, "bound_bits": counting_bound_bits(n, K, c), "probability": bound_failure_probability(c),
             "ratio": counting_bound_bits(n, K, c) / u} for c in cs]




def random_labels(dataset: data.Dataset, seed: int = 0) -> data.Dataset:
    """A copy of ``dataset`` whose labels are iid uniform among its K classes, drawn from ``seed``
    (the inputs are unchanged; the name gets the suffix ``_random``)."""
    g = torch.Generator().manual_seed(int(seed))
    y = torch.randint(0, dataset.K, (dataset.n,), generator=g, dtype=torch.int64)
    return dataclasses.replace(dataset, name=f"{dataset.name}{RANDOM_SUFFIX}", y=y, true_bits=None,
                               source=f"{dataset.source}; labels replaced by iid uniform labels (seed {seed})")


def stays_above(codelength_bits_: float, n: int, K: int, c: float = 20.0) -> bool:
    """True when a codelength of n random labels respects the counting bound n log2 K - c."""
    return codelength_bits_ >= counting_bound_bits(n, K, c)


# ------------------------------------------------------------- the chapter


@dataclasses.dataclass(frozen=True)
class Settings(variational.Posterior):
    """The variational runs (true and random labels) train their posteriors as the variational chapter does
    (:class:`variational.Posterior`, here on a smaller grid of prior widths) for ``epochs`` on n_train samples;
    ``memorize_n`` / ``memorize_epochs``: plain Adam training at ``lr`` on random labels (no noise, no early
    stopping); random labels drawn from ``label_seed``; ``model`` the architecture of Figure 1."""

    sigma0_grid: tuple[float, ...] = (0.05, 0.1, 0.2)
    n_train: int | None = None
    epochs: int = 100
    memorize_n: int | None = None
    memorize_epochs: int = 300
    label_seed: int = 1
    model: str = "mlp3x200"

    def memorize_options(self) -> FitOptions:
        """How the memorizing network is trained: ``memorize_epochs`` on every label, no early stopping."""
        return FitOptions(epochs=self.memorize_epochs, batch_size=self.batch_size, lr=self.lr, val_fraction=0.0,
                          patience=None)

    def variational(self) -> variational.Settings:
        """These settings as the variational chapter's (for :func:`variational.variational_code`)."""
        posterior = {f.name: getattr(self, f.name) for f in dataclasses.fields(variational.Posterior)}
        return variational.Settings(**posterior, n_train=self.n_train, n_test=None)

SCALES = {
    "smoke": dict(n_train=1000, epochs=3, sigma0_grid=(0.1,), eval_samples=4, final_eval_samples=8, lr_rho=3e-2,
                  memorize_n=500, memorize_epochs=20, num_threads=1),
    "cpu": dict(epochs=10, sigma0_grid=(0.1,), eval_samples=8, final_eval_samples=32, lr_rho=3e-2, memorize_n=5000,
                memorize_epochs=150, num_threads=1),
}


settings = scales.settings_of(Settings, SCALES)


def code_of(model: str) -> str:
    return "two_part" if model.endswith(MEMORIZE_SUFFIX) else "variational"


def networks(model: str, dataset: str, scale: str) -> list[str]:
    """The architecture a run trains (the registry's hook): the model, with or without the memorization suffix."""
    return [model.removesuffix(MEMORIZE_SUFFIX)]


def runs(dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """Per architecture m: the variational code of the true and of random labels, and memorization."""
    rnd = dataset + RANDOM_SUFFIX
    return [pair for m in (models or [settings(scale).model])
            for pair in ((dataset, m), (rnd, m), (rnd, m + MEMORIZE_SUFFIX))]


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """``D``/m: variational code of D's true labels; ``D_random``/m: of random labels;
    ``D_random``/m_adam: plain training that memorizes random labels, as a float32 two-part code."""
    s = settings(scale)
    base, randomized = dataset.removesuffix(RANDOM_SUFFIX), dataset.endswith(RANDOM_SUFFIX)
    arch = model.removesuffix(MEMORIZE_SUFFIX)
    if model.endswith(MEMORIZE_SUFFIX):
        train = random_labels(data.load(base, "train", root=data_root, n=s.memorize_n, seed=seed), s.label_seed)
        return memorization_code(train, arch, s, scale=scale, seed=seed, device=device)
    train = data.load(base, "train", root=data_root, n=s.n_train, seed=seed)
    test = None if randomized else data.load(base, "test", root=data_root, seed=seed)
    if randomized:
        train = random_labels(train, s.label_seed)
    return variational.variational_code(train, test, arch, s.variational(), epochs=s.epochs, scale=scale,
                                        seed=seed, device=device)


def memorization_code(dataset: data.Dataset, model: str, s: Settings, *, scale: str, seed: int = 0,
                      device: str = "auto", progress: bool = True) -> CodeResult:
    """Plain training (Adam, no noise, no early stopping) of ``model`` on ``dataset`` as given, e.g. random labels
    (Figure 1, right: a network fits random labels, Zhang et al. 2017), stated as a float32 two-part code:
    L = 32 dim(theta) + sum_i -log2 p_theta(y_i | x_i) (Sec. 3.1). Curves: train accuracy and bits per epoch."""
    device = resolve_device(device)
    net = build(model, tuple(dataset.x.shape[1:]), dataset.K, seed=seed)
    curves: dict[str, list[float]] = {"epoch": [], "train_accuracy": [], "data_bits_per_sample": []}

    def record(epoch, m):
        logits = predict_logits(m, dataset.x, device)
        curves["epoch"].append(epoch)
        curves["train_accuracy"].append(accuracy(logits, dataset.y))
        curves["data_bits_per_sample"].append(codelength_bits(logits, dataset.y) / dataset.n)

    with Stopwatch() as sw, torch_threads(s.num_threads):
        fit(net, dataset.x, dataset.y, s.memorize_options(), seed=seed, device=device, on_epoch_end=record,
            progress=f"{dataset.name}: memorizing" if progress else False)
    dim = num_parameters(net)
    data_bits = curves["data_bits_per_sample"][-1] * dataset.n
    return CodeResult(
        code="two_part", dataset=dataset.name, model=model + MEMORIZE_SUFFIX, scale=scale, n=dataset.n, K=dataset.K,
        seed=seed, codelength_bits=32.0 * dim + data_bits, test_accuracy=None,
        parts={"model_bits": 32.0 * dim, "data_bits": data_bits, "train_accuracy": curves["train_accuracy"][-1]},
        curves=curves,
        params={**scales.as_params(s), "epochs": s.memorize_epochs, "seed": seed, "optimizer": "Adam",
                "n_train": dataset.n, "num_parameters": dim},
        provenance=provenance(device=device, stopwatch=sw, data_source=dataset.source),
        note="plain training to memorize the labels; float32 two-part codelength 32 dim(theta) + data bits",
    )
