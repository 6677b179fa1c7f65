"""Brute-force references the tests compare the library with (not used by the library itself)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn

from mdl_utils.bayesian import bayesian_layers, softplus_inverse
from mdl_utils.codes.switch import switch_rate


def mixture_prior_bits(sequence: Sequence[int], num_strategies: int) -> float:
    """-log2 pi(s) of a per-unit strategy sequence under the mixture's prior."""
    bits = math.log2(num_strategies)
    for t in range(1, len(sequence)):
        alpha = switch_rate(t)
        bits -= math.log2(alpha / (num_strategies - 1)) if sequence[t] != sequence[t - 1] else math.log2(1 - alpha)
    return bits


def set_posterior(net: nn.Module, mu: float | None = None, sigma: float | None = None) -> nn.Module:
    """Set every mean to ``mu`` and/or every width to ``sigma`` (e.g. mu=0, sigma=sigma0: beta = alpha)."""
    with torch.no_grad():
        for layer in bayesian_layers(net):
            for name in ("weight", "bias"):
                m, r = getattr(layer, f"{name}_mu"), getattr(layer, f"{name}_rho")
                if m is None:
                    continue
                if mu is not None:
                    m.fill_(mu)
                if sigma is not None:
                    r.fill_(softplus_inverse(sigma))
    return net


def exact_probability_below(log2_probs: np.ndarray, n: int, K: int, c: float) -> float:
    """P_uniform(L(y) < n log2 K - c) for the Shannon code L(y) = -log2 q(y) of a distribution q over all K^n
    sequences (``log2_probs`` lists log2 q(y) for every sequence): the exact value that Prop. 2 bounds by 2^-c."""
    log2_probs = np.asarray(log2_probs, dtype=np.float64)
    if log2_probs.shape != (K ** n,):
        raise ValueError(f"need log2 q(y) for all K^n = {K ** n} sequences, got shape {log2_probs.shape}")
    below = (-log2_probs) < n * math.log2(K) - c
    return float(below.sum()) / K ** n
