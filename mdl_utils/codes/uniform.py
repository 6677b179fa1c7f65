"""The uniform code (paper Sec. 2.3).

Each label among K classes costs log2 K bits, whatever the inputs:
L_unif(y_1:n) = n log2 K. MNIST: 60000 log2 10 = 199,315.7 bits.
"""

from __future__ import annotations

import math


def uniform_bits(n: int, num_classes: int) -> float:
    """Codelength of n labels among ``num_classes`` classes under the uniform code: n log2 K."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"the number of classes K must be an integer >= 2, got {num_classes!r}")
    return int(n) * math.log2(int(num_classes))


def uniform_code(dataset, *, scale: str, params: dict | None = None):
    """The uniform code of ``dataset``'s labels as a CodeResult (no model, no training)."""
    from ..results import CodeResult, Stopwatch, provenance

    with Stopwatch() as sw:
        bits = uniform_bits(dataset.n, dataset.K)
    return CodeResult(
        code="uniform", dataset=dataset.name, model="uniform", scale=scale, n=dataset.n, K=dataset.K,
        codelength_bits=bits, test_accuracy=1.0 / dataset.K,
        parts={"data_bits": bits, "model_bits": 0.0},
        params={"seed": dataset.seed, **(params or {})},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=dataset.source),
        note="n log2 K; test accuracy is that of a uniform random guess",
    )
