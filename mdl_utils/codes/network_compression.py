"""Network compression as a two-part code (paper Sec. 3.2; Deep Compression, Han et al. 2016).

Pipeline on a trained model:

1. **magnitude pruning with retraining**: the weight tensors (ndim >= 2) keep
   their largest-magnitude (1 - s) fraction, then the survivors are fine-tuned
   with the pruned weights held at zero (iterative over growing sparsities s);
2. **per-layer weight sharing**: the surviving values of each tensor (biases
   included, unpruned) are replaced by the nearest of k = 2^b centroids of a
   1-D k-means (linear initialization);
3. **entropy coding**: the positions of the nonzeros as gaps between them with
   a Golomb-Rice code (parameter chosen per tensor and sent), the cluster
   indices with a canonical Huffman code whose code lengths are sent, the
   codebook at float32.

Everything is written to a real bit stream (:func:`serialize`), so the weight
bits are ``8 * len(bytes)``; :func:`deserialize` reads it back into a model
whose predictions on the training set are those of the data term:

    L = 8 len(bytes) + log2(#configurations tried) + sum_i -log2 p_theta(y_i | x_i).

The architecture (name, input shape, K) is agreed in advance like the seed.
The paper quotes only the weight bits of the literature as a lower bound
(400 kbits on MNIST, 14 Mbits on CIFAR-10).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .. import data, scales
from ..bits import accuracy, codelength_bits
from ..bitio import BitReader, BitWriter, best_rice_parameter, canonical_codes, huffman_lengths
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance
from ..training import FitOptions, fit, predict_logits, resolve_device
from . import two_part

CHAPTER = "network_compression"

# ------------------------------------------------------------ pruning, k-means


def prunable(tensor: torch.Tensor) -> bool:
    """Weight tensors (conv kernels, linear matrices) are pruned; biases are not."""
    return tensor.ndim >= 2


def magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Per layer, keep the ceil((1 - s) numel) largest |w| of each weight tensor (ties broken by position)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")
    masks = {}
    for name, p in model.named_parameters():
        if not prunable(p):
            continue
        w = p.detach().abs().flatten().cpu()
        keep = max(1, math.ceil((1.0 - sparsity) * w.numel()))
        order = torch.argsort(w, descending=True, stable=True)
        m = torch.zeros(w.numel(), dtype=torch.bool)
        m[order[:keep]] = True
        masks[name] = m.reshape(p.shape)
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        if name in masks:
            p.mul_(masks[name].to(p.device, p.dtype))


def masked_finetune(model: nn.Module, masks: dict[str, torch.Tensor], x, y, options: FitOptions, **fit_kwargs):
    """Retrain with pruned weights held at zero (their gradients are zeroed; Adam then never moves them)."""
    apply_masks(model, masks)
    params = dict(model.named_parameters())
    hooks = [params[n].register_hook(lambda g, m=m: g * m.to(g.device, g.dtype)) for n, m in masks.items()]
    try:
        fr = fit(model, x, y, options, **fit_kwargs)
    finally:
        for h in hooks:
            h.remove()
    apply_masks(model, masks)
    return fr


def kmeans_1d(values: np.ndarray, k: int, iters: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's 1-D k-means with linear initialization between min and max (Han et al. 2016).

    Returns (float32 centroids of the non-empty clusters, index of each value).
    Deterministic: no random initialization.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lo, hi = values.min(), values.max()
    c = np.linspace(lo, hi, k) if k > 1 else np.array([values.mean()])
    order = np.sort(values)
    for _ in range(iters):
        bounds = (c[1:] + c[:-1]) / 2
        idx = np.searchsorted(bounds, order)
        sums = np.bincount(idx, weights=order, minlength=c.size)
        cnt = np.bincount(idx, minlength=c.size)
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
        if np.allclose(new, c, rtol=0, atol=0):
            break
        c = np.sort(new)
    c32 = c.astype(np.float32)
    bounds = (c32[1:].astype(np.float64) + c32[:-1]) / 2
    idx = np.searchsorted(bounds, values)
    used = np.unique(idx)
    remap = np.full(c32.size, -1, np.int64)
    remap[used] = np.arange(used.size)
    return c32[used], remap[idx]


# ------------------------------------------------------------ serialization


def serialize(model: nn.Module, bits: int, sparse_names: set[str] | None = None) -> tuple[bytes, dict]:
    """Quantize ``model``'s float tensors to per-tensor codebooks of <= 2^bits values and write them.

    Tensors named in ``sparse_names`` (the pruned ones) send their nonzero
    positions as Rice-coded gaps; the others are dense. Per tensor the stream
    holds: 1 bit sparse flag, [gamma(nnz + 1), gamma(r + 1), Rice gaps],
    gamma(k), k float32 centroids, k Huffman code lengths on 5 bits each, the
    Huffman-coded cluster indices. Returns (bytes, bit accounting per part).
    The model is not modified; :func:`deserialize` gives the quantized model.
    """
    if not 1 <= bits <= 16:
        raise ValueError(f"bits per shared weight must lie in 1..16, got {bits}")
    sparse_names = set(sparse_names or ())
    w = BitWriter()
    acct = {"header_bits": 0, "position_bits": 0, "codebook_bits": 0, "table_bits": 0, "index_bits": 0}
    for name, t in model.state_dict().items():
        if torch.is_floating_point(t):
            _write_tensor(w, acct, t.detach().cpu().to(torch.float32).flatten().numpy(), name in sparse_names, bits)
    payload = w.getvalue()
    acct["padding_bits"] = 8 * len(payload) - w.nbits
    acct["weight_bits"] = 8 * len(payload)
    return payload, acct


def _write_tensor(w: BitWriter, acct: dict, flat: np.ndarray, sparse: bool, bits: int) -> None:
    """One tensor of :func:`serialize`, adding the bits of each part to ``acct``."""
    with w.tally(acct, "header_bits"):
        w.write(int(sparse), 1)
    vals = flat
    if sparse:
        pos = np.flatnonzero(flat != 0)
        gaps = np.diff(np.concatenate([[-1], pos])) - 1
        r = best_rice_parameter(gaps)
        with w.tally(acct, "header_bits"):
            w.write_gamma(pos.size + 1)
            w.write_gamma(r + 1)
        with w.tally(acct, "position_bits"):
            w.write_unary(gaps >> r)
            if r:
                w.write(gaps & ((1 << r) - 1), r)
        vals = flat[pos]
    cents, idx = kmeans_1d(vals, 1 << bits)
    lengths = huffman_lengths(np.bincount(idx, minlength=cents.size))
    with w.tally(acct, "header_bits"):
        w.write_gamma(cents.size + 1)
    with w.tally(acct, "codebook_bits"):
        w.write_float32(cents)
    with w.tally(acct, "table_bits"):
        w.write(lengths, 5)
    with w.tally(acct, "index_bits"):
        w.write(canonical_codes(lengths)[idx], lengths[idx])


def deserialize(payload: bytes, model: nn.Module) -> nn.Module:
    """Read :func:`serialize`'s bytes into ``model`` (same architecture, any weights); returns it."""
    rd = BitReader(payload)
    state = model.state_dict()
    for name, t in list(state.items()):
        if not torch.is_floating_point(t):
            continue
        numel = t.numel()
        sparse = rd.read_int(1)
        if sparse:
            nnz = rd.read_gamma() - 1
            r = rd.read_gamma() - 1
            # Rice code: all unary quotients first, then all r-bit remainders
            quot = rd.read_unary(nnz)
            rem = rd.read(nnz, r).astype(np.int64) if r else np.zeros(nnz, np.int64)
            gaps = (quot << r) + rem
            pos = np.cumsum(gaps + 1) - 1
            if nnz and pos[-1] >= numel:
                raise ValueError(f"{name}: decoded position beyond the tensor; wrong architecture?")
        else:
            nnz, pos = numel, None
        k = rd.read_gamma() - 1
        cents = rd.read_float32(k)
        lengths = rd.read(k, 5).astype(np.int64)
        idx = rd.read_huffman(nnz, lengths)
        flat = np.zeros(numel, dtype=np.float32)
        if pos is None:
            flat[:] = cents[idx] if nnz else flat
        else:
            flat[pos] = cents[idx]
        state[name] = torch.from_numpy(flat).reshape(t.shape).to(t.dtype)
    if rd.pos + 7 < rd.bits.size:
        raise ValueError("bytes left over after the last tensor: the payload was written for another model")
    model.load_state_dict(state)
    return model


# ---------------------------------------------------------------- the code


@dataclasses.dataclass(frozen=True)
class Settings(two_part.Settings):
    """Train as the two-part chapter does (:class:`two_part.Settings`: ``epochs``, Adam at ``lr``, early stopping
    with ``patience`` on the last ``val_fraction``), then for each sparsity (iterative magnitude pruning) fine-tune
    ``finetune_epochs`` at ``finetune_lr`` with the mask; each tensor quantized to a 2^b-entry k-means codebook for
    b in ``bits``. ``models`` per dataset."""

    finetune_epochs: int = 10
    finetune_lr: float = 5e-4
    sparsities: tuple[float, ...] = (0.0, 0.5, 0.75, 0.9, 0.95, 0.97, 0.98, 0.99)
    bits: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("lenet",), "cifar10": ("lenet",), "synthetic": ("mlp",)})

    def finetune_options(self) -> FitOptions:
        """How each pruned network is fine-tuned: ``finetune_epochs`` at ``finetune_lr``, the rest as trained."""
        return dataclasses.replace(self.fit_options(), epochs=self.finetune_epochs, lr=self.finetune_lr)


SCALES = {
    "smoke": dict(n_train=1000, n_test=500, epochs=2, patience=3, finetune_epochs=1, sparsities=(0.0, 0.8),
                  bits=(2, 4)),
    "cpu": dict(epochs=8, patience=2, finetune_epochs=2, sparsities=(0.0, 0.5, 0.75, 0.9, 0.95, 0.97),
                bits=(2, 3, 4, 5, 6)),
}


settings = scales.settings_of(Settings, SCALES)


def planned_work(dataset: str, model: str, scale: str, *, data_root=None) -> int:
    """Samples x epochs this run trains at most: the network, then the fine-tuning at each sparsity (the job
    runner's hook)."""
    s = settings(scale)
    n = data.train_size(dataset, s.n_train, data_root)
    return n * (s.epochs + len(s.sparsities) * s.finetune_epochs)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """The network-compression code of ``model`` on ``dataset``'s training labels at ``scale``: the pruned,
    quantized, Huffman-coded weights, then the labels under the decoded model (paper Sec. 3.1, Han et al. 2016)."""
    s = settings(scale)
    train, test = data.splits(dataset, s, seed=seed, root=data_root)
    return network_compression(train, test, model, s, scale=scale, seed=seed, device=device)


def evaluate_pair(net: nn.Module, masks: dict, train, test, bits: int, make_model) -> dict:
    """Write ``net`` at ``bits`` per shared weight, decode the bytes into ``make_model()`` as Bob does, and code
    the training labels with the decoded model: the weight bits, data bits and accuracies of one (s, b) pair."""
    payload, acct = serialize(net, bits, set(masks))
    decoded = deserialize(payload, make_model()).eval()
    logits = predict_logits(decoded, train.x, "cpu")
    nonzero = sum(int((v != 0).sum()) for v in decoded.state_dict().values() if torch.is_floating_point(v))
    return {"acct": acct, "bytes": len(payload), "weight_bits": acct["weight_bits"],
            "data_bits": codelength_bits(logits, train.y), "train_accuracy": accuracy(logits, train.y),
            "test_accuracy": accuracy(predict_logits(decoded, test.x, "cpu"), test.y) if test is not None
            else math.nan, "nonzero": nonzero}


def sweep(train, test, model: str, s: Settings, *, seed: int, device, progress: bool) -> tuple[list[dict], object]:
    """Train, then for each sparsity (growing: pruning is iterative) prune and fine-tune, and evaluate every bit
    width: one record per (sparsity, bits) pair, in that order; also the initial training's FitResult."""
    def make_model():
        return build(model, tuple(train.x.shape[1:]), train.K, seed=seed)

    net = make_model()
    fr = fit(net, train.x, train.y, s.fit_options(), seed=seed, device=device,
             progress=f"{train.name}/{model}" if progress else False)
    records, masks = [], {}
    bar = tqdm(total=len(s.sparsities) * len(s.bits), desc=f"{train.name}/{model} compress", disable=not progress)
    for sparsity in sorted(float(x) for x in s.sparsities):
        if sparsity > 0:
            masks = magnitude_masks(net, sparsity)
            masked_finetune(net, masks, train.x, train.y, s.finetune_options(), seed=seed + 1, device=device)
        net = net.cpu().eval()
        for b in sorted(int(x) for x in s.bits):
            records.append({"sparsity": sparsity, "bits": b, **evaluate_pair(net, masks, train, test, b, make_model)})
            bar.update(1)
    bar.close()
    return records, fr


def network_compression(train, test, model: str, s: Settings, *, scale: str, seed: int = 0, device: str = "auto",
                        progress: bool = True) -> CodeResult:
    """Deep-Compression-style two-part code of the training labels (Sec. 3.2): the best (sparsity, bits) pair,
    L = 8 len(bytes) + log2(#pairs) + data bits (its choice costs the log2 term). Curves: every pair."""
    if not s.sparsities or not s.bits:
        raise ValueError("give at least one sparsity and one bit width")
    device = resolve_device(device)
    selection_bits = math.log2(len(s.sparsities) * len(s.bits))
    with Stopwatch() as sw:
        records, fr = sweep(train, test, model, s, seed=seed, device=device, progress=progress)
    n_weights = num_parameters(build(model, tuple(train.x.shape[1:]), train.K, seed=seed))
    for r in records:
        r["total_bits"] = r["weight_bits"] + selection_bits + r["data_bits"]
    best = min(records, key=lambda r: r["total_bits"])  # first of equal totals, as the sweep order
    curve = {k: [r[k] for r in records] for k in ("sparsity", "bits", "weight_bits", "data_bits", "total_bits",
                                                  "train_accuracy", "test_accuracy")}
    curve["bits_per_weight"] = [r["weight_bits"] / n_weights for r in records]
    curve["nonzero_fraction"] = [r["nonzero"] / n_weights for r in records]
    return CodeResult(
        code="network_compression", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K, seed=seed,
        codelength_bits=best["total_bits"], test_accuracy=None if test is None else best["test_accuracy"],
        parts={"model_bits": best["weight_bits"] + selection_bits, "data_bits": best["data_bits"],
               "selection_bits": selection_bits, **{k: float(v) for k, v in best["acct"].items()}},
        curves=curve,
        params={**scales.as_params(s), "best_sparsity": best["sparsity"], "best_bits": best["bits"],
                "payload_bytes": best["bytes"], "num_parameters": n_weights, "epochs_run": fr.epochs_run,
                "seed": seed, "n_train": train.n, "n_test": None if test is None else test.n,
                "coder": "per tensor: Rice-coded gaps of nonzero positions, k-means codebook at float32, "
                         "canonical Huffman code of cluster indices (code lengths sent on 5 bits)"},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="pruning + retraining, per-layer k-means weight sharing, entropy coding; weight bits = serialized "
             "bytes; data term with the decoded model; best (sparsity, bits) paid by log2(#pairs) (Sec. 3.2)",
    )
