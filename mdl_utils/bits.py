"""Codelengths in bits: the two formulas every code of the book is built from.

* **Uniform code** (paper Sec. 2.3): each of n labels among K classes costs
  log2 K bits, L_unif = n log2 K (MNIST: 60000 log2 10 = 199,315.7 bits).
* **Shannon code** of a predictive model p known to both sides (Sec. 2.2,
  Prop. 1): with arithmetic coding the labels cost
  L_p(y | x) = sum_i -log2 p(y_i | x_i) bits, up to 2 bits overall. This is
  the cross-entropy of the model in bits (natural-log loss / ln 2).
"""

from __future__ import annotations

import math

import numpy as np
import torch

LN2 = math.log(2.0)


def uniform_bits(n: int, num_classes: int) -> float:
    """Codelength of n labels among ``num_classes`` classes under the uniform code: n log2 K."""
    if isinstance(n, bool) or int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"the number of classes K must be an integer >= 2, got {num_classes!r}")
    return int(n) * math.log2(int(num_classes))


def _check(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.as_tensor(logits)
    labels = torch.as_tensor(labels)
    if logits.ndim != 2:
        raise ValueError(f"logits must have shape (n, K), got {tuple(logits.shape)}")
    if labels.shape != (logits.shape[0],):
        raise ValueError(
            f"labels must have shape ({logits.shape[0]},) to match the logits, got {tuple(labels.shape)}"
        )
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in 0..{logits.shape[1] - 1}")
    return logits, labels


def per_sample_bits(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """-log2 softmax(logits)[i, y_i] for each sample, as float64 (computed in float64)."""
    logits, labels = _check(logits, labels)
    log_probs = torch.log_softmax(logits.detach().to(torch.float64), dim=1)
    nats = -log_probs.gather(1, labels[:, None].to(log_probs.device)).squeeze(1)
    return (nats / LN2).cpu().numpy()


def total(bits) -> float:
    """The sum of codelengths (any array or iterable of floats), exactly rounded (``math.fsum``): the same float
    for the same numbers in any order or grouping, on any machine. Every total of the book is this sum, so that
    two codes that spend the same per-sample bits report the same codelength to the last bit."""
    return math.fsum(np.asarray(bits, dtype=np.float64).ravel().tolist())


def codelength_bits(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """L_p(y | x) = sum_i -log2 p(y_i | x_i) in bits, p = softmax(logits) (Prop. 1)."""
    return total(per_sample_bits(logits, labels))


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose most probable class is the label."""
    logits, labels = _check(logits, labels)
    if labels.numel() == 0:
        return float("nan")
    return float((logits.argmax(1).cpu() == labels.cpu()).double().mean())
