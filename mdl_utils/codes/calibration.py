"""Forward calibration of the prequential code, hedged so that it cannot make a code much longer (Sec. 3.4).

Each block's model gives two predictions of a label: the raw one, p_raw = softmax(z), and the calibrated one,
p_T = softmax(z / T), with the softmax temperature T fitted on the held-out part of the labels already sent
(:func:`fit_temperature`; forward calibration, Bornschein, Li & Hutter 2022). A temperature fitted on a few,
perfectly classified held-out labels runs to the bottom of its range and makes every mistake of the next block
cost many bits: on a small, easy dataset that once doubled a code. So the code does not bet on T; it sends each
label i with the mixture

    q_i = w_i p_T(. | x_i) + (1 - w_i) p_raw(. | x_i),

w_i being the Bayesian posterior weight of the calibrated prediction given the labels sent before i (prior 1/2):

    w_{i+1} = w_i p_T(y_i) / (w_i p_T(y_i) + (1 - w_i) p_raw(y_i)),  then kept in [eps, 1 - eps], eps = 2^-16.

Labels whose block has no temperature (T = 1: the uniform blocks, blocks with too few held-out labels) are sent
with p_raw and leave w as it is. Bob recomputes every w_i from the labels he has decoded, with the same float64
operations (+, *, /: the same bits on any machine).

Guarantees (``tests/test_calibration.py`` checks them on random sequences): for m = calibrated or raw and any
stretch of k labels starting at label a, L_q <= L_m + log2(1 / w_{m,a}) + k log2(1 / (1 - eps)). Over the whole
code (w = 1/2 at the start): at most 1 + n 2.2e-5 bits more than the better of the two (about 2.3 bits for
MNIST's 60,000 labels); over any stretch, a block for instance: at most 16 + k 2.2e-5 bits more.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import coder

FLOOR = 2.0 ** -16  # eps: each prediction keeps at least this weight
PRIOR = 0.5  # w before the first label


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, temperature_range=(0.05, 20.0),
                    min_samples: int = 10) -> float:
    """Softmax temperature T minimizing sum -log p(y | logits / T) on held-out labels.

    Golden-section search on log T over ``temperature_range`` (the NLL is unimodal in 1/T); deterministic.
    Returns 1.0 with fewer than ``min_samples`` labels.
    """
    if len(labels) < min_samples:
        return 1.0
    logits = logits.double()

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels, reduction="sum").item()

    a, b = math.log(temperature_range[0]), math.log(temperature_range[1])
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def mix(w: float, p_calibrated, p_raw):
    """q = w p_T + (1 - w) p_raw: one label's probability (floats) or distribution (float64 arrays), the same
    float64 operations either way."""
    return w * p_calibrated + (1.0 - w) * p_raw


def update(w: float, p_calibrated: float, p_raw: float) -> float:
    """The calibrated prediction's weight after a label it gave p_calibrated and the raw one p_raw (Bayes, then
    kept in [FLOOR, 1 - FLOOR])."""
    joint = w * p_calibrated
    return min(max(joint / (joint + (1.0 - w) * p_raw), FLOOR), 1.0 - FLOOR)


def hedged_bits(p_calibrated: np.ndarray, p_raw: np.ndarray, calibrated: np.ndarray, w: float = PRIOR
                ) -> tuple[np.ndarray, np.ndarray]:
    """Each label's codelength -log2 q_i(y_i) under the hedged code, from p_T(y_i) and p_raw(y_i) (float64) and
    whether its block has a temperature (``calibrated``; the others are sent with p_raw). Returns (bits, the
    weight w_i before each label)."""
    n = len(p_raw)
    bits, weights = np.empty(n), np.empty(n)
    for i, (pt, pr, on) in enumerate(zip(np.asarray(p_calibrated, np.float64).tolist(),
                                         np.asarray(p_raw, np.float64).tolist(), np.asarray(calibrated).tolist())):
        weights[i] = w
        if on:
            bits[i] = -math.log2(mix(w, pt, pr))
            w = update(w, pt, pr)
        else:
            bits[i] = -math.log2(pr)
    return bits, weights


def label_probabilities(logits: torch.Tensor, temperature: float, labels: torch.Tensor) -> tuple[np.ndarray, ...]:
    """(p_T(y_i), p_raw(y_i)) of a block's labels from its raw logits (float32) and temperature: the entries of
    the float64 softmax that the coder uses (mdl_utils.coder.softmax64, the same rule on both sides)."""
    rows, labels = np.arange(len(labels)), np.asarray(labels)
    return coder.softmax64(logits / temperature)[rows, labels], coder.softmax64(logits)[rows, labels]
