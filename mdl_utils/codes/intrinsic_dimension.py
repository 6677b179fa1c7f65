"""Random affine subspace code, the intrinsic-dimension method (paper Sec. 3.2, App. B,
Algorithm 1; Li et al. 2018).

Alice and Bob agree on the architecture, a seed and d. Both draw the initial
parameters theta_0 (the architecture's usual initialization) and a D x d
projection P from the seed. Alice trains only theta_d in

    theta = theta_0 + P theta_d,

quantizes theta_d to p bits per coordinate with a uniform quantizer on
[-R, R], R = max |theta_d| (R travels in a 32-bit float header; p = 32 sends
theta_d as float32 without header), and sends the labels with the quantized
model:

    L = header + d p + log2(#(d, p) pairs tried) + sum_i -log2 p_theta(y_i | x_i).

P is a dense Gaussian N(0, 1/D) (columns of norm about 1) when D d is small
enough, else a very sparse random projection with s = ceil(sqrt(D)) entries
+-1/sqrt(s) per column (Li, Hastie and Church 2006), drawn column by column from
the seed. The paper counted only d x 32 bits (a lower bound: 9.28 kbits for MNIST
LeNet at d = 290, 92.8 kbits for CIFAR-10 at d = 2900) and left optimizing p as
future work; here the sweep over d and p does it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import nn

from .compression import BitReader, BitWriter

DENSE_LIMIT = 25_000_000  # largest D * d drawn as a dense matrix (100 MB in float32)
FLOAT_BITS = 32


class Subspace:
    """theta(theta_d) = theta_0 + P theta_d for architecture ``model``, regenerated from ``seed``."""

    def __init__(self, model: str, input_shape, num_classes: int, d: int, seed: int = 0,
                 dense_limit: int = DENSE_LIMIT):
        from ..models import build

        if int(d) != d or d < 1:
            raise ValueError(f"the subspace dimension d must be a positive integer, got {d!r}")
        self.model_name, self.input_shape, self.K, self.d, self.seed = model, tuple(input_shape), num_classes, int(d), seed
        self.net = build(model, self.input_shape, num_classes, seed=seed)
        self.names = [n for n, _ in self.net.named_parameters()]
        self.shapes = [p.shape for _, p in self.net.named_parameters()]
        self.theta0 = torch.cat([p.detach().flatten() for p in self.net.parameters()]).float()
        self.D = self.theta0.numel()
        g = torch.Generator().manual_seed(10_007 * seed + 1)
        self.dense = self.D * self.d <= dense_limit
        if self.dense:
            self.P = torch.randn(self.D, self.d, generator=g) / math.sqrt(self.D)
        else:
            s = math.ceil(math.sqrt(self.D))
            rows = torch.randint(0, self.D, (self.d, s), generator=g)
            signs = torch.randint(0, 2, (self.d, s), generator=g).float() * 2 - 1
            cols = torch.arange(self.d)[:, None].expand(self.d, s)
            idx = torch.stack([rows.flatten(), cols.flatten()])
            self.P = torch.sparse_coo_tensor(idx, signs.flatten() / math.sqrt(s), (self.D, self.d),
                                             check_invariants=True).coalesce()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
                self._csr = self.P.to_sparse_csr()
                self._csr_t = self.P.t().coalesce().to_sparse_csr()

    def theta(self, theta_d: torch.Tensor) -> torch.Tensor:
        """theta_0 + P theta_d (differentiable in theta_d)."""
        if theta_d.shape != (self.d,):
            raise ValueError(f"theta_d must have shape ({self.d},), got {tuple(theta_d.shape)}")
        if self.dense:
            return self.theta0 + self.P @ theta_d
        return self.theta0 + _SparseMatVec.apply(theta_d, self._csr, self._csr_t)

    def params(self, theta_d: torch.Tensor) -> dict[str, torch.Tensor]:
        flat, out, pos = self.theta(theta_d), {}, 0
        for n, sh in zip(self.names, self.shapes):
            k = math.prod(sh)
            out[n] = flat[pos:pos + k].reshape(sh)
            pos += k
        return out

    def forward(self, theta_d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.net, self.params(theta_d), (x,))

    @torch.no_grad()
    def materialize(self, theta_d: torch.Tensor) -> nn.Module:
        """A fresh module (built from the seed) holding theta_0 + P theta_d."""
        from ..models import build

        net = build(self.model_name, self.input_shape, self.K, seed=self.seed)
        for p, v in zip(net.parameters(), self.params(theta_d.float()).values()):
            p.copy_(v)
        return net.eval()


class _SparseMatVec(torch.autograd.Function):
    """P v with P in CSR form (and P^T precomputed for the backward pass): fast and deterministic on CPU."""

    @staticmethod
    def forward(ctx, v, csr, csr_t):
        ctx.csr_t = csr_t
        return csr @ v

    @staticmethod
    def backward(ctx, grad):
        return ctx.csr_t @ grad, None, None


# -------------------------------------------------------------- quantization


def quantize(theta_d: torch.Tensor, p: int) -> tuple[bytes, torch.Tensor]:
    """Write theta_d at ``p`` bits per coordinate; returns (bytes, the dequantized float32 theta_d).

    p = 32: the float32 values themselves. p in 1..24: R = max |theta_d| as a
    float32 header, then round((theta_d + R) / (2R) (2^p - 1)) on p bits each;
    the value sent is -R + q 2R / (2^p - 1) (p = 1: +-R).
    """
    theta_d = theta_d.detach().cpu().float()
    w = BitWriter()
    if p == FLOAT_BITS:
        w.write_float32(theta_d.numpy())
    elif 1 <= p <= 24:
        R = np.float32(theta_d.abs().max().item())
        w.write_float32([R])
        levels = (1 << p) - 1
        if R > 0:
            q = np.rint((theta_d.numpy().astype(np.float64) + R) / (2 * float(R)) * levels)
            q = np.clip(q, 0, levels).astype(np.int64)
        else:
            q = np.zeros(theta_d.numel(), np.int64)
        w.write(q, p)
    else:
        raise ValueError(f"precision p must be 32 (float32) or lie in 1..24 bits, got {p}")
    payload = w.getvalue()
    return payload, dequantize(payload, theta_d.numel(), p)


def dequantize(payload: bytes, d: int, p: int) -> torch.Tensor:
    """theta_d (float32) from the bytes of :func:`quantize`."""
    rd = BitReader(payload)
    if p == FLOAT_BITS:
        return torch.from_numpy(rd.read_float32(d).copy())
    R = np.float64(rd.read_float32(1)[0])
    q = rd.read(d, p).astype(np.float64)
    levels = (1 << p) - 1
    return torch.from_numpy((-R + q * (2 * R / levels)).astype(np.float32))


def decode_model(payload: bytes, model: str, input_shape, num_classes: int, d: int, p: int,
                 seed: int = 0) -> nn.Module:
    """Bob's side of Algorithm 1: regenerate theta_0 and P from the seed, read theta_d, build the model."""
    sub = Subspace(model, input_shape, num_classes, d, seed)
    return sub.materialize(dequantize(payload, d, p))


# ------------------------------------------------------------------ training


def train_subspace(sub: Subspace, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 3, batch_size: int = 128,
                   lr: float = 1e-2, seed: int = 0, progress: bool | str = False) -> tuple[torch.Tensor, list]:
    """Adam on theta_d (initialized at 0) for the mean cross-entropy of theta_0 + P theta_d; fixed epochs.

    Deterministic given the seed (CPU). Returns (theta_d, per-epoch mean training loss).
    """
    from tqdm import tqdm

    from ..training import make_deterministic

    make_deterministic()
    theta_d = torch.zeros(sub.d, requires_grad=True)
    opt = torch.optim.Adam([theta_d], lr=lr)
    history = []
    n = len(y)
    bar = tqdm(total=epochs * math.ceil(n / batch_size), desc=progress if isinstance(progress, str) else "subspace",
               leave=False, disable=not progress, mininterval=5.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        sub.net.train()
        for _ in range(epochs):
            order = torch.randperm(n, generator=g)
            total = 0.0
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                loss = nn.functional.cross_entropy(sub.forward(theta_d, x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
                bar.update(1)
            history.append(total / n)
    bar.close()
    sub.net.eval()
    return theta_d.detach().clone(), history


def subspace_code(train, test, *, model: str, scale: str, dims=(100, 300, 1000), precisions=(4, 6, 8, 12, 16, 32),
                  epochs: int = 3, batch_size: int = 128, lr: float = 1e-2, seed: int = 0, device: str = "cpu",
                  progress: bool = True):
    """Algorithm 1 swept over d in ``dims`` and p in ``precisions``; the best total is reported.

    For each d: build the subspace from the seed, train theta_d on all of
    ``train`` for ``epochs``; for each p: write theta_d on p bits, decode the
    model from the bytes (as Bob does) and encode the training labels with it.
    L = 8 len(bytes) + log2(#(d, p)) + data bits. Runs on the CPU (``device`` is recorded only).
    """
    from ..models import num_parameters
    from ..results import CodeResult, Stopwatch, provenance
    from ..training import predict_logits
    from . import shannon

    dims = sorted(int(d) for d in dims)
    precisions = sorted(int(p) for p in precisions)
    if not dims or not precisions:
        raise ValueError("give at least one subspace dimension d and one precision p")
    shape = tuple(train.x.shape[1:])
    selection_bits = math.log2(len(dims) * len(precisions))
    curve = {k: [] for k in ("d", "p", "theta_bits", "data_bits", "total_bits", "train_accuracy", "test_accuracy")}
    curve["train_loss"] = {}
    best = None
    with Stopwatch() as sw:
        for d in dims:
            sub = Subspace(model, shape, train.K, d, seed)
            theta_d, hist = train_subspace(sub, train.x, train.y, epochs=epochs, batch_size=batch_size, lr=lr,
                                           seed=seed, progress=f"{train.name}/{model} d={d}" if progress else False)
            curve["train_loss"][str(d)] = hist
            for p in precisions:
                payload, _ = quantize(theta_d, p)
                net = sub.materialize(dequantize(payload, d, p))
                logits = predict_logits(net, train.x, "cpu")
                data_bits = shannon.codelength_bits(logits, train.y)
                theta_bits = 8 * len(payload)
                total = theta_bits + selection_bits + data_bits
                test_acc = shannon.accuracy(predict_logits(net, test.x, "cpu"), test.y) if test is not None \
                    else math.nan
                for key, val in (("d", d), ("p", p), ("theta_bits", theta_bits), ("data_bits", data_bits),
                                 ("total_bits", total), ("train_accuracy", shannon.accuracy(logits, train.y)),
                                 ("test_accuracy", test_acc)):
                    curve[key].append(val)
                if best is None or total < best["total"]:
                    best = {"total": total, "d": d, "p": p, "theta_bits": theta_bits, "data_bits": data_bits,
                            "test_acc": test_acc, "dense": sub.dense}
        D = num_parameters(sub.net)
    header = 0 if best["p"] == FLOAT_BITS else FLOAT_BITS
    parts = {"model_bits": best["theta_bits"] + selection_bits, "data_bits": best["data_bits"],
             "header_bits": float(header), "theta_d_bits": float(best["d"] * best["p"]),
             "padding_bits": float(best["theta_bits"] - header - best["d"] * best["p"]),
             "selection_bits": selection_bits}
    return CodeResult(
        code="subspace", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K,
        codelength_bits=best["total"], test_accuracy=None if test is None else best["test_acc"],
        parts=parts, curves=curve,
        params={"dims": dims, "precisions": precisions, "best_d": best["d"], "best_p": best["p"],
                "num_parameters": D, "projection": "dense Gaussian" if best["dense"] else "sparse random",
                "dense_limit": DENSE_LIMIT, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                "n_train": train.n, "n_test": None if test is None else test.n,
                "quantizer": "uniform on [-R, R], R = max|theta_d| sent as float32; p = 32: float32"},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=train.source),
        note="Algorithm 1: theta = theta_0 + P theta_d from the seed; theta_d at p bits; best (d, p) paid by "
             "log2(#pairs); data term with the model decoded from the bytes (Sec. 3.2, App. B)",
    )
