"""Shannon codelength of labels under a predictive model (paper Sec. 2.2, Prop. 1).

With a model p known to both Alice and Bob, arithmetic coding sends y_1:n in
L_p(y | x) = sum_i -log2 p(y_i | x_i) bits, up to 2 bits overall: the
cross-entropy of the model on the data, in bits (natural-log loss / ln 2).
"""

from __future__ import annotations

import math

import numpy as np
import torch

LN2 = math.log(2.0)


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
    nats = -log_probs.gather(1, labels[:, None]).squeeze(1)
    return (nats / LN2).cpu().numpy()


def codelength_bits(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """L_p(y | x) = sum_i -log2 p(y_i | x_i) in bits, p = softmax(logits)."""
    return float(per_sample_bits(logits, labels).sum())


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose most probable class is the label."""
    logits, labels = _check(logits, labels)
    if labels.numel() == 0:
        return float("nan")
    return float((logits.argmax(1) == labels).double().mean())


def heldout_curve(train, test, *, fit_sizes, scale: str, model: str = "logistic", weight_decay: float = 1e-3,
                  max_iter: int = 100, seed: int = 0, device: str = "auto", progress: bool = True):
    """Shannon codelength of the test labels under models fit on growing prefixes of ``train``.

    For each m in ``fit_sizes`` (None = all of ``train``) a ``model`` is fit on the
    first m transmitted training samples and the test labels are encoded with it:
    L_p(y_test | x_test) = sum -log2 p(y|x) (Prop. 1). The model itself is not
    paid for here; the later chapters do that. On the synthetic task the
    true-model floor sum -log2 p_teacher(y|x) is reported beside it (Sec. 2.4).
    The CodeResult's codelength is that of the largest fit.
    """
    from tqdm import tqdm

    from ..models import build, num_parameters
    from ..results import CodeResult, Stopwatch, provenance
    from ..training import fit_full_batch, predict_logits, resolve_device

    device = resolve_device(device)
    sizes = sorted({train.n if m is None else min(int(m), train.n) for m in fit_sizes})
    curve = {"fit_size": [], "bits": [], "bits_per_sample": [], "test_accuracy": []}
    with Stopwatch() as sw:
        for m in tqdm(sizes, desc=f"{train.name}: fitting {model}", disable=not progress):
            net = build(model, tuple(train.x.shape[1:]), train.K, seed=seed)
            part = train.head(m)
            fit_full_batch(net, part.x, part.y, weight_decay=weight_decay, max_iter=max_iter, device=device)
            logits = predict_logits(net, test.x, device)
            bits = codelength_bits(logits, test.y)
            curve["fit_size"].append(m)
            curve["bits"].append(bits)
            curve["bits_per_sample"].append(bits / test.n)
            curve["test_accuracy"].append(accuracy(logits, test.y))
    parts = {"data_bits": curve["bits"][-1]}
    if test.true_bits is not None:
        parts["true_model_bits"] = float(test.true_bits.sum())
        curve["true_bits_per_sample"] = float(test.true_bits.mean())
    return CodeResult(
        code="shannon", dataset=train.name, model=model, scale=scale, n=test.n, K=test.K,
        codelength_bits=curve["bits"][-1], test_accuracy=curve["test_accuracy"][-1],
        parts=parts, curves=curve,
        params={"fit_sizes": sizes, "weight_decay": weight_decay, "max_iter": max_iter, "seed": seed,
                "n_train": train.n, "n_test": test.n, "num_parameters": num_parameters(net)},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="labels of the test split, model fit on a training prefix and not paid for (Prop. 1)",
    )
