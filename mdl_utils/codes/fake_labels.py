"""The counting argument: random labels cannot be compressed (paper App. A, Prop. 2).

Proposition 2. Let y_1..y_n be iid uniform among K classes, whatever the inputs x.
For any prefix code of the labels (it may depend on x in any way fixed in
advance), with probability at least 1 - 2^-c its codelength is at least
n log2 K - c bits.

Proof (counting). A prefix code has at most 2^l codewords of length l, so fewer
than 2^(L0) label sequences get a codeword shorter than L0 bits (Kraft:
sum_y 2^-L(y) <= 1, hence #{y : L(y) < L0} < 2^L0). Each sequence has
probability K^-n, so P(L(y) < n log2 K - c) < 2^(n log2 K - c) K^-n = 2^-c.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Iterable

import numpy as np
import torch


def counting_bound_bits(n: int, K: int, c: float) -> float:
    """n log2 K - c: with probability >= 1 - 2^-c no code spends fewer bits on n uniform labels."""
    from .uniform import uniform_bits

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
    from .uniform import uniform_bits

    u = uniform_bits(n, K)
    return [{"c": c, "bound_bits": counting_bound_bits(n, K, c), "probability": bound_failure_probability(c),
             "ratio": counting_bound_bits(n, K, c) / u} for c in cs]


def exact_probability_below(log2_probs: np.ndarray, n: int, K: int, c: float) -> float:
    """P_uniform(L(y) < n log2 K - c) for the Shannon code L(y) = -log2 q(y) of a distribution q over all K^n
    sequences (``log2_probs`` lists log2 q(y) for every sequence): the exact value that Prop. 2 bounds by 2^-c."""
    log2_probs = np.asarray(log2_probs, dtype=np.float64)
    if log2_probs.shape != (K ** n,):
        raise ValueError(f"need log2 q(y) for all K^n = {K ** n} sequences, got shape {log2_probs.shape}")
    below = (-log2_probs) < n * math.log2(K) - c
    return float(below.sum()) / K ** n


def random_labels(dataset, seed: int = 0):
    """A copy of ``dataset`` whose labels are iid uniform among its K classes, drawn from ``seed``
    (the inputs are unchanged; the name gets the suffix ``_random``)."""
    g = torch.Generator().manual_seed(int(seed))
    y = torch.randint(0, dataset.K, (dataset.n,), generator=g, dtype=torch.int64)
    return dataclasses.replace(dataset, name=f"{dataset.name}_random", y=y, true_bits=None,
                               source=f"{dataset.source}; labels replaced by iid uniform labels (seed {seed})")


def stays_above(codelength_bits: float, n: int, K: int, c: float = 20.0) -> bool:
    """True when a codelength of n random labels respects the counting bound n log2 K - c."""
    return codelength_bits >= counting_bound_bits(n, K, c)


def memorization_code(dataset, *, scale: str, widths: tuple[int, ...] = (200, 200, 200), epochs: int = 100,
                      lr: float = 1e-3, batch_size: int = 128, seed: int = 0, device: str = "auto",
                      progress: bool = True, model_name: str | None = None, num_threads: int | None = None):
    """Plain training (Adam, no noise, no early stopping) of an MLP on ``dataset`` as given, e.g. random labels
    (Figure 1, right: a network fits random labels, Zhang et al. 2017), stated as a float32 two-part code:
    L = 32 dim(theta) + sum_i -log2 p_theta(y_i | x_i) (Sec. 3.1). Curves: train accuracy and bits per epoch.
    """
    from torch import nn

    from ..results import CodeResult, Stopwatch, provenance
    from ..training import fit, predict_logits, resolve_device, torch_threads
    from .shannon import accuracy, codelength_bits

    device = resolve_device(device)
    d = int(np.prod(dataset.x.shape[1:]))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = [nn.Flatten()]
        for w in widths:
            layers += [nn.Linear(d, w), nn.ReLU()]
            d = w
        net = nn.Sequential(*layers, nn.Linear(d, dataset.K))
    curves: dict[str, list[float]] = {"epoch": [], "train_accuracy": [], "data_bits_per_sample": []}

    def record(epoch, model):
        logits = predict_logits(model, dataset.x, device)
        curves["epoch"].append(epoch)
        curves["train_accuracy"].append(accuracy(logits, dataset.y))
        curves["data_bits_per_sample"].append(codelength_bits(logits, dataset.y) / dataset.n)

    with Stopwatch() as sw, torch_threads(num_threads):
        fit(net, dataset.x, dataset.y, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=0.0,
            patience=None, seed=seed, device=device, progress=f"{dataset.name}: memorizing" if progress else False,
            on_epoch_end=record)
    dim = sum(p.numel() for p in net.parameters())
    data_bits = curves["data_bits_per_sample"][-1] * dataset.n
    return CodeResult(
        code="two_part", dataset=dataset.name, model=model_name or "mlp" + "x".join(map(str, widths)) + "_adam",
        scale=scale,
        n=dataset.n, K=dataset.K, codelength_bits=32.0 * dim + data_bits, test_accuracy=None,
        parts={"model_bits": 32.0 * dim, "data_bits": data_bits, "train_accuracy": curves["train_accuracy"][-1]},
        curves=curves,
        params={"widths": list(widths), "epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed,
                "optimizer": "Adam", "n_train": dataset.n, "num_parameters": dim},
        provenance=provenance(device=device, stopwatch=sw, data_source=dataset.source),
        note="plain training to memorize the labels; float32 two-part codelength 32 dim(theta) + data bits",
    )
