"""Benchmark: the range coder (probabilities -> bits -> labels) and the switch mixture's per-label loop.

    python benchmarks/bench_coder.py [--n 1000000] [--mixture-n 20000]

Table 1: the coder alone (mdl_utils.coder.RangeCoder, one call for all labels)
on random categorical distributions (Dirichlet(1/2) per label, labels drawn
from them), for K = 2, 10, 100: labels per second encoding and decoding, and
the payload's bits over the bound sum -log2 p (float32 probabilities). Table 2:
the switch code's label-by-label loop (mdl_utils.codes.bytes: mixture of M
strategies in float64, weight update, one coder call per label), with fixed
random strategy distributions instead of trained chains, K = 10. No
thresholds: the numbers are for reading (the coder should do >= 1e6 labels/s
at K = 10).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mdl_utils import coder
from mdl_utils.codes import files as F
from mdl_utils.formats import markdown


def random_task(n: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(float32 probabilities (n, k), labels drawn from them)."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.5), size=n).astype(np.float32)
    cdf = np.cumsum(p.astype(np.float64), axis=1)
    y = (cdf < rng.random((n, 1)) * cdf[:, -1:]).sum(axis=1).clip(0, k - 1)
    return p, y


def coder_row(n: int, k: int) -> list:
    """Encode and decode n labels among k in one call each; labels/s and bits over the bound."""
    probs, y = random_task(n, k)
    t0 = time.perf_counter()
    rc = coder.RangeCoder()
    rc.encode(y, probs)
    words = rc.words()
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = coder.RangeCoder(words).decode(probs)
    decode_s = time.perf_counter() - t0
    assert np.array_equal(decoded, y)
    bound = -np.log2(probs[np.arange(n), y].astype(np.float64)).sum()
    return [f"{n:,}", k, f"{n / encode_s:,.0f}", f"{n / decode_s:,.0f}", f"{32 * len(words) - bound:+.1f}"]


class FixedSwitch(F.SwitchCode):
    """The switch code's loop over fixed strategy distributions (no training): (n, M, K) float64 probabilities."""

    def __init__(self, probs: np.ndarray):
        self.n, self.K, self.scale, self.settings = probs.shape[0], probs.shape[2], None, None
        self.probs, self.recipes = probs, [None] * (probs.shape[1] - 1)

    def start(self, x, num_threads: int = 1, parallel: bool = False, device: str = "cpu") -> None:
        self.weights, self.strategy_bits, self.checks = F.SwitchWeights(self.probs.shape[1]), [], 0

    def checked(self, start: int) -> bool:
        return False  # fixed distributions: nothing a decoder recomputes

    def close(self) -> None:
        pass

    def blocks(self) -> list[tuple[int, int]]:
        return [(0, self.n)]

    def strategy_probs(self, y_prefix, start: int, end: int) -> np.ndarray:
        return self.probs[start:end]


def mixture_row(n: int, m: int, k: int = 10) -> list:
    """The switch code's loop (bytes._run) on n labels, m fixed strategies: labels/s each way."""
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.full(k, 0.5), size=(n, m))
    y = rng.integers(0, k, n)
    rc = coder.RangeCoder()
    t0 = time.perf_counter()
    F._run(FixedSwitch(probs), None, rc, n, k, y, num_threads=1, parallel=False, progress=False, desc="")
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    labels, _, _ = F._run(FixedSwitch(probs), None, coder.RangeCoder(rc.words()), n, k, None, num_threads=1,
                          parallel=False, progress=False, desc="")
    decode_s = time.perf_counter() - t0
    assert np.array_equal(labels, y)
    return [f"{n:,}", m, k, f"{n / encode_s:,.0f}", f"{n / decode_s:,.0f}", f"{decode_s / n * 6e4:.2f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    ap.add_argument("--n", type=int, default=1_000_000, help="labels per coder row")
    ap.add_argument("--mixture-n", type=int, default=20_000, help="labels per mixture row")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = [coder_row(args.n, k) for k in (2, 10, 100)]
    print(markdown(["n", "K", "encode labels/s", "decode labels/s", "bits over the bound"], rows,
                   "The range coder alone (one call for all labels, float32 probabilities)."))
    print()
    rows = [mixture_row(args.mixture_n, m) for m in (2, 3, 4)]
    print(markdown(["n", "strategies M", "K", "encode labels/s", "decode labels/s", "decode s per 60,000 labels"],
                   rows, "The switch mixture, label by label (float64 mixture, weight update, one coder call "
                         "per label); fixed strategy distributions, no training."))


if __name__ == "__main__":
    main()
