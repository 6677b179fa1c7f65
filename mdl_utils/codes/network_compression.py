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

import heapq
import math

import numpy as np
import torch
from torch import nn

# ------------------------------------------------------------------ bit I/O


class BitWriter:
    """Append-only bit stream, most significant bit first; :meth:`getvalue` pads to whole bytes with zeros."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.nbits = 0

    def write(self, values, lengths) -> None:
        """Write each ``values[i]`` on ``lengths[i]`` bits (0 <= length <= 64)."""
        values = np.atleast_1d(np.asarray(values, dtype=np.uint64)).ravel()
        lengths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), values.shape).ravel()
        if values.size == 0:
            return
        if lengths.min() < 0 or lengths.max() > 64:
            raise ValueError("bit lengths must lie in 0..64")
        width = int(lengths.max())
        if width == 0:
            return
        shifts = lengths[:, None] - 1 - np.arange(width)[None, :]
        valid = shifts >= 0
        bits = (values[:, None] >> np.where(valid, shifts, 0).astype(np.uint64)) & np.uint64(1)
        out = bits[valid].astype(np.uint8)
        self._chunks.append(out)
        self.nbits += out.size

    def write_unary(self, q) -> None:
        """q ones then a zero, for each q."""
        q = np.atleast_1d(np.asarray(q, dtype=np.int64)).ravel()
        if q.size == 0:
            return
        out = np.ones(int(q.sum() + q.size), dtype=np.uint8)
        out[np.cumsum(q + 1) - 1] = 0
        self._chunks.append(out)
        self.nbits += out.size

    def write_gamma(self, x: int) -> None:
        """Elias gamma code of an integer x >= 1: floor(log2 x) zeros, then x in binary."""
        if x < 1:
            raise ValueError(f"Elias gamma codes integers >= 1, got {x}")
        nb = int(x).bit_length()
        self.write([0, int(x)], [nb - 1, nb])

    def write_float32(self, values) -> None:
        v = np.asarray(values, dtype=np.float32).ravel().view(np.uint32).astype(np.uint64)
        self.write(v, 32)

    def getvalue(self) -> bytes:
        bits = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.uint8)
        return np.packbits(bits).tobytes()


class BitReader:
    """Reads what :class:`BitWriter` wrote."""

    def __init__(self, payload: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(np.int64)
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > self.bits.size:
            raise ValueError("bit stream ended early: the payload is truncated or was written for another model")

    def read(self, count: int, length: int) -> np.ndarray:
        """``count`` unsigned integers of ``length`` bits each."""
        if length == 0 or count == 0:
            return np.zeros(count, dtype=np.uint64)
        self._need(count * length)
        block = self.bits[self.pos:self.pos + count * length].reshape(count, length).astype(np.uint64)
        self.pos += count * length
        weights = np.uint64(1) << np.arange(length - 1, -1, -1).astype(np.uint64)
        return (block * weights[None, :]).sum(axis=1).astype(np.uint64)

    def read_int(self, length: int) -> int:
        return int(self.read(1, length)[0])

    def read_gamma(self) -> int:
        zeros = 0
        while True:
            self._need(1)
            if self.bits[self.pos]:
                break
            zeros += 1
            self.pos += 1
        return self.read_int(zeros + 1)

    def read_float32(self, count: int) -> np.ndarray:
        return self.read(count, 32).astype(np.uint32).view(np.float32)

    def read_huffman(self, count: int, lengths: np.ndarray) -> np.ndarray:
        """``count`` symbols of the canonical Huffman code with these code lengths."""
        present = np.flatnonzero(lengths > 0)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        if present.size == 0:
            # a single symbol (code length 0) is the only possibility
            only = np.flatnonzero(lengths == 0)
            return np.full(count, int(only[0]) if only.size else 0, dtype=np.int64)
        codes = canonical_codes(lengths)
        width = int(lengths.max())
        table_sym = np.full(1 << width, -1, dtype=np.int64)
        table_len = np.zeros(1 << width, dtype=np.int64)
        for s in present:
            L = int(lengths[s])
            start = int(codes[s]) << (width - L)
            table_sym[start:start + (1 << (width - L))] = s
            table_len[start:start + (1 << (width - L))] = L
        bits = np.concatenate([self.bits[self.pos:], np.zeros(width, dtype=np.int64)])
        # integer value of the `width` bits starting at each position
        n = bits.size - width
        window = np.zeros(n, dtype=np.int64)
        for j in range(width):
            window = (window << 1) | bits[j:j + n]
        out = np.empty(count, dtype=np.int64)
        pos = 0
        ts, tl = table_sym.tolist(), table_len.tolist()
        win = window.tolist()
        for i in range(count):
            v = win[pos]
            out[i] = ts[v]
            pos += tl[v]
        if self.pos + pos > self.bits.size or (out < 0).any():
            raise ValueError("corrupt Huffman stream")
        self.pos += pos
        return out


# ------------------------------------------------------------ entropy codes


def huffman_lengths(counts, max_length: int = 31) -> np.ndarray:
    """Huffman code lengths for symbol ``counts`` (0 for absent symbols; 0 for a lone symbol)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.int64)
    present = [int(i) for i in np.flatnonzero(counts > 0)]
    if len(present) <= 1:
        return lengths
    heap = [(int(counts[i]), i, [i]) for i in present]
    heapq.heapify(heap)
    tie = counts.size
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    if lengths.max() > max_length:
        raise ValueError(f"Huffman code longer than {max_length} bits; use fewer clusters")
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical Huffman codewords (as integers) for the given code lengths (sorted by length, then symbol)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s] = code
        prev = int(lengths[s])
        code += 1
    return codes


def rice_bits(values: np.ndarray, r: int) -> int:
    """Length of the Golomb-Rice code (parameter 2^r) of non-negative integers: sum (v >> r) + 1 + r."""
    values = np.asarray(values, dtype=np.int64)
    return int((values >> r).sum() + values.size * (1 + r))


def best_rice_parameter(values: np.ndarray, max_r: int = 30) -> int:
    if values.size == 0:
        return 0
    return min(range(max_r + 1), key=lambda r: rice_bits(values, r))


# ------------------------------------------------------------ pruning, k-means


def prunable(name: str, tensor: torch.Tensor) -> bool:
    """Weight tensors (conv kernels, linear matrices) are pruned; biases are not."""
    return tensor.ndim >= 2


def magnitude_masks(model: nn.Module, sparsity: float) -> dict[str, torch.Tensor]:
    """Per layer, keep the ceil((1 - s) numel) largest |w| of each weight tensor (ties broken by position)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")
    masks = {}
    for name, p in model.named_parameters():
        if not prunable(name, p):
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


def masked_finetune(model: nn.Module, masks: dict[str, torch.Tensor], x, y, **fit_kwargs):
    """Retrain with pruned weights held at zero (their gradients are zeroed; Adam then never moves them)."""
    from ..training import fit

    apply_masks(model, masks)
    params = dict(model.named_parameters())
    hooks = [params[n].register_hook(lambda g, m=m: g * m.to(g.device, g.dtype)) for n, m in masks.items()]
    try:
        fr = fit(model, x, y, **fit_kwargs)
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

    def mark(part, before):
        acct[part] += w.nbits - before

    for name, t in model.state_dict().items():
        if not torch.is_floating_point(t):
            continue
        flat = t.detach().cpu().to(torch.float32).flatten().numpy()
        sparse = name in sparse_names
        b = w.nbits
        w.write(int(sparse), 1)
        mark("header_bits", b)
        if sparse:
            pos = np.flatnonzero(flat != 0)
            gaps = np.diff(np.concatenate([[-1], pos])) - 1
            r = best_rice_parameter(gaps)
            b = w.nbits
            w.write_gamma(pos.size + 1)
            w.write_gamma(r + 1)
            mark("header_bits", b)
            b = w.nbits
            w.write_unary(gaps >> r)
            if r:
                w.write(gaps & ((1 << r) - 1), r)
            mark("position_bits", b)
            vals = flat[pos]
        else:
            vals = flat
        cents, idx = kmeans_1d(vals, 1 << bits)
        lengths = huffman_lengths(np.bincount(idx, minlength=cents.size))
        codes = canonical_codes(lengths)
        b = w.nbits
        w.write_gamma(cents.size + 1)
        mark("header_bits", b)
        b = w.nbits
        w.write_float32(cents)
        mark("codebook_bits", b)
        b = w.nbits
        w.write(lengths, 5)
        mark("table_bits", b)
        b = w.nbits
        w.write(codes[idx], lengths[idx])
        mark("index_bits", b)
    payload = w.getvalue()
    acct["padding_bits"] = 8 * len(payload) - w.nbits
    acct["weight_bits"] = 8 * len(payload)
    return payload, acct


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
            quot = _read_unary(rd, nnz)
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


def _read_unary(rd: BitReader, count: int) -> np.ndarray:
    """``count`` unary codes (q ones then a zero), vectorized."""
    if count == 0:
        return np.zeros(0, np.int64)
    zeros = np.flatnonzero(rd.bits[rd.pos:] == 0)
    if zeros.size < count:
        raise ValueError("bit stream ended early in the gap codes")
    ends = zeros[:count]
    q = np.diff(np.concatenate([[-1], ends])) - 1
    rd.pos += int(ends[-1]) + 1
    return q.astype(np.int64)


# ---------------------------------------------------------------- the code


def compress_and_code(net: nn.Module, train, bits: int, sparse_names: set[str], make_model):
    """Serialize ``net`` at ``bits`` per shared weight, decode into a fresh ``make_model()``,
    and compute the data bits of the training labels with the decoded model.

    Returns (payload, accounting, decoded model, training logits).
    """
    from ..training import predict_logits

    payload, acct = serialize(net, bits, sparse_names)
    decoded = deserialize(payload, make_model()).eval()
    logits = predict_logits(decoded, train.x, "cpu")
    return payload, acct, decoded, logits


def network_compression(train, test, *, model: str, scale: str, sparsities=(0.0, 0.5, 0.8, 0.9, 0.95),
                        bits=(2, 3, 4, 5, 6), epochs: int = 10, finetune_epochs: int = 2, lr: float = 1e-3,
                        finetune_lr: float = 5e-4, batch_size: int = 128, patience: int | None = 3,
                        val_fraction: float = 0.1, seed: int = 0, device: str = "auto", progress: bool = True):
    """Deep-Compression-style two-part code of the training labels (Sec. 3.2).

    Train ``model``; for each sparsity s (increasing; pruning is iterative) prune
    by magnitude and fine-tune with the mask for ``finetune_epochs``; for each
    b in ``bits`` quantize every tensor to a 2^b-entry k-means codebook, write
    the bytes, decode them and code the training labels with the decoded model.
    L = 8 len(bytes) + log2(#(s, b) pairs) + data bits; the best pair is reported
    (its choice costs the log2 term). Curves: every (s, b).
    """
    from tqdm import tqdm

    from ..models import build, num_parameters
    from ..results import CodeResult, Stopwatch, provenance
    from ..training import fit, predict_logits, resolve_device
    from . import shannon

    sparsities = sorted(float(s) for s in sparsities)
    bits = sorted(int(b) for b in bits)
    if not sparsities or not bits:
        raise ValueError("give at least one sparsity and one bit width")
    device = resolve_device(device)
    shape = tuple(train.x.shape[1:])

    def make_model():
        return build(model, shape, train.K, seed=seed)

    fit_kw = dict(batch_size=batch_size, val_fraction=val_fraction, patience=patience, device=device)
    selection_bits = math.log2(len(sparsities) * len(bits))
    curve = {k: [] for k in ("sparsity", "bits", "weight_bits", "data_bits", "total_bits", "bits_per_weight",
                             "train_accuracy", "test_accuracy", "nonzero_fraction")}
    best = None
    with Stopwatch() as sw:
        net = make_model()
        fr = fit(net, train.x, train.y, epochs=epochs, lr=lr, seed=seed,
                 progress=f"{train.name}/{model}" if progress else False, **fit_kw)
        n_weights = num_parameters(net)
        bar = tqdm(total=len(sparsities) * len(bits), desc=f"{train.name}/{model} compress", disable=not progress)
        masks: dict[str, torch.Tensor] = {}
        for s in sparsities:
            if s > 0:
                masks = magnitude_masks(net, s)
                masked_finetune(net, masks, train.x, train.y, epochs=finetune_epochs, lr=finetune_lr,
                                seed=seed + 1, **fit_kw)
            net = net.cpu().eval()
            for b in bits:
                payload, acct, decoded, logits = compress_and_code(net, train, b, set(masks), make_model)
                data_bits = shannon.codelength_bits(logits, train.y)
                total = acct["weight_bits"] + selection_bits + data_bits
                test_acc = shannon.accuracy(predict_logits(decoded, test.x, "cpu"), test.y) if test is not None \
                    else math.nan
                nz = sum(int((v != 0).sum()) for v in decoded.state_dict().values()
                         if torch.is_floating_point(v)) / n_weights
                for key, val in (("sparsity", s), ("bits", b), ("weight_bits", acct["weight_bits"]),
                                 ("data_bits", data_bits), ("total_bits", total),
                                 ("bits_per_weight", acct["weight_bits"] / n_weights),
                                 ("train_accuracy", shannon.accuracy(logits, train.y)),
                                 ("test_accuracy", test_acc), ("nonzero_fraction", nz)):
                    curve[key].append(val)
                if best is None or total < best["total"]:
                    best = {"total": total, "s": s, "b": b, "acct": acct, "data_bits": data_bits,
                            "test_acc": test_acc, "bytes": len(payload)}
                bar.update(1)
        bar.close()
    acct = best["acct"]
    parts = {"model_bits": acct["weight_bits"] + selection_bits, "data_bits": best["data_bits"],
             "selection_bits": selection_bits, **{k: float(v) for k, v in acct.items()}}
    return CodeResult(
        code="compression", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K,
        codelength_bits=best["total"], test_accuracy=None if test is None else best["test_acc"],
        parts=parts, curves=curve,
        params={"sparsities": sparsities, "bits": bits, "best_sparsity": best["s"], "best_bits": best["b"],
                "payload_bytes": best["bytes"], "num_parameters": n_weights, "epochs": epochs,
                "epochs_run": fr.epochs_run, "finetune_epochs": finetune_epochs, "lr": lr,
                "finetune_lr": finetune_lr, "batch_size": batch_size, "patience": patience,
                "val_fraction": val_fraction, "seed": seed, "n_train": train.n,
                "n_test": None if test is None else test.n,
                "coder": "per tensor: Rice-coded gaps of nonzero positions, k-means codebook at float32, "
                         "canonical Huffman code of cluster indices (code lengths sent on 5 bits)"},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="pruning + retraining, per-layer k-means weight sharing, entropy coding; weight bits = serialized "
             "bytes; data term with the decoded model; best (sparsity, bits) paid by log2(#pairs) (Sec. 3.2)",
    )
