"""Chapter 4: the random affine subspace code, the intrinsic-dimension method (paper Sec. 3.2, App. B,
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

import dataclasses
import math
import warnings

import numpy as np
import torch
from torch import nn

from .. import data, scales
from ..bitio import BitReader, BitWriter
from ..bits import accuracy, codelength_bits
from ..models import build
from ..results import CodeResult, Stopwatch, provenance
from ..training import FitOptions, fit, predict_logits

CHAPTER = "intrinsic_dimension"
DENSE_LIMIT = 25_000_000  # largest D * d drawn as a dense matrix (100 MB in float32)
FLOAT_BITS = 32


class Subspace:
    """theta(theta_d) = theta_0 + P theta_d for architecture ``model``, regenerated from ``seed``."""

    def __init__(self, model: str, input_shape, num_classes: int, d: int, seed: int = 0,
                 dense_limit: int = DENSE_LIMIT):
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


class SubspaceModel(nn.Module):
    """The network theta_0 + P theta_d as a module whose only parameter is theta_d (initialized at 0),
    so that :func:`mdl_utils.training.fit` trains theta_d alone."""

    def __init__(self, sub: Subspace):
        super().__init__()
        self.theta_d = nn.Parameter(torch.zeros(sub.d))
        object.__setattr__(self, "sub", sub)  # not a submodule: its weights are not trained

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sub.forward(self.theta_d, x)

    def train(self, mode: bool = True) -> "SubspaceModel":
        self.sub.net.train(mode)  # dropout of the underlying network
        return super().train(mode)


@dataclasses.dataclass(frozen=True)
class Settings:
    """theta_d (from 0) trained ``epochs`` with Adam at ``lr`` on all training labels (no early stopping), for
    each dimension d in ``dims``; written at each precision p in ``precisions`` (bits). ``models`` per dataset."""

    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 20
    lr: float = 0.1
    batch_size: int = 128
    dims: tuple[int, ...] = (100, 200, 290, 500, 1000, 2900, 5000, 10000)
    precisions: tuple[int, ...] = (2, 3, 4, 5, 6, 8, 10, 12, 16, 32)
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("lenet",), "cifar10": ("lenet",), "synthetic": ("mlp",)})

    def fit_options(self) -> FitOptions:
        """How theta_d is trained: ``epochs`` on every label (no early stopping)."""
        return FitOptions(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, val_fraction=0.0, patience=None)


SCALES = {
    "smoke": dict(n_train=1000, n_test=500, epochs=1, dims=(50, 200), precisions=(4, 32)),
    "cpu": dict(epochs=3, dims=(100, 300, 1000, 3000), precisions=(2, 3, 4, 6, 8, 16, 32)),
}


settings = scales.settings_of(Settings, SCALES)


def planned_work(dataset: str, model: str, scale: str, *, data_root=None) -> int:
    """Samples x epochs this run trains at most, over the subspace dimensions (the job runner's hook)."""
    s = settings(scale)
    n = data.train_size(dataset, s.n_train, data_root)
    return n * s.epochs * len(s.dims)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """The random-subspace code of ``model`` on ``dataset``'s training labels at ``scale`` (trained on the CPU:
    the sparse projection is CPU-only; ``device`` is not used)."""
    s = settings(scale)
    train, test = data.splits(dataset, s, seed=seed, root=data_root)
    return subspace_code(train, test, model, s, scale=scale, seed=seed)


def train_subspace(sub: Subspace, x: torch.Tensor, y: torch.Tensor, s: Settings, *, seed: int = 0,
                   progress: bool | str = False) -> tuple[torch.Tensor, list]:
    """Adam on theta_d (from 0) for the mean cross-entropy of theta_0 + P theta_d; fixed epochs, all labels.

    Deterministic given the seed (CPU). Returns (theta_d, per-epoch mean training loss).
    """
    model = SubspaceModel(sub)
    fr = fit(model, x, y, s.fit_options(), seed=seed, device="cpu", progress=progress)
    return model.theta_d.detach().clone(), fr.history["train_loss"]


def evaluate_precision(sub: Subspace, theta_d: torch.Tensor, p: int, train, test) -> dict:
    """Write theta_d at p bits, rebuild the model from the bytes as Bob does, and code the training labels."""
    payload, _ = quantize(theta_d, p)
    net = sub.materialize(dequantize(payload, sub.d, p))
    logits = predict_logits(net, train.x, "cpu")
    return {"d": sub.d, "p": p, "theta_bits": 8 * len(payload), "data_bits": codelength_bits(logits, train.y),
            "train_accuracy": accuracy(logits, train.y), "dense": sub.dense,
            "test_accuracy": accuracy(predict_logits(net, test.x, "cpu"), test.y) if test is not None else math.nan}


def subspace_code(train, test, model: str, s: Settings, *, scale: str, seed: int = 0,
                  progress: bool = True) -> CodeResult:
    """Algorithm 1 swept over d in ``s.dims`` and p in ``s.precisions``; the best total is reported.

    For each d: build the subspace from the seed, train theta_d on all of ``train``; for each p: write theta_d on
    p bits, decode the model from the bytes (as Bob does) and encode the training labels with it.
    L = 8 len(bytes) + log2(#(d, p)) + data bits.
    """
    if not s.dims or not s.precisions:
        raise ValueError("give at least one subspace dimension d and one precision p")
    selection_bits = math.log2(len(s.dims) * len(s.precisions))
    records, losses = [], {}
    with Stopwatch() as sw:
        for d in sorted(int(d) for d in s.dims):
            sub = Subspace(model, tuple(train.x.shape[1:]), train.K, d, seed)
            theta_d, losses[str(d)] = train_subspace(sub, train.x, train.y, s, seed=seed,
                                                     progress=f"{train.name}/{model} d={d}" if progress else False)
            records += [evaluate_precision(sub, theta_d, p, train, test) for p in sorted(int(p) for p in s.precisions)]
    for r in records:
        r["total_bits"] = r["theta_bits"] + selection_bits + r["data_bits"]
    best = min(records, key=lambda r: r["total_bits"])
    curve = {k: [r[k] for r in records] for k in ("d", "p", "theta_bits", "data_bits", "total_bits",
                                                  "train_accuracy", "test_accuracy")}
    curve["train_loss"] = losses
    return _result(train, test, model, s, best, curve, selection_bits, sub.D, scale=scale, seed=seed, sw=sw)


def _result(train, test, model, s, best, curve, selection_bits, num_parameters, *, scale, seed, sw) -> CodeResult:
    header = 0 if best["p"] == FLOAT_BITS else FLOAT_BITS
    return CodeResult(
        code="intrinsic_dimension", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K, seed=seed,
        codelength_bits=best["total_bits"], test_accuracy=None if test is None else best["test_accuracy"],
        parts={"model_bits": best["theta_bits"] + selection_bits, "data_bits": best["data_bits"],
               "header_bits": float(header), "theta_d_bits": float(best["d"] * best["p"]),
               "padding_bits": float(best["theta_bits"] - header - best["d"] * best["p"]),
               "selection_bits": selection_bits},
        curves=curve,
        params={**scales.as_params(s), "best_d": best["d"], "best_p": best["p"], "num_parameters": num_parameters,
                "projection": "dense Gaussian" if best["dense"] else "sparse random", "dense_limit": DENSE_LIMIT,
                "seed": seed, "n_train": train.n, "n_test": None if test is None else test.n,
                "quantizer": "uniform on [-R, R], R = max|theta_d| sent as float32; p = 32: float32"},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=train.source),
        note="Algorithm 1: theta = theta_0 + P theta_d from the seed; theta_d at p bits; best (d, p) paid by "
             "log2(#pairs); data term with the model decoded from the bytes (Sec. 3.2, App. B)",
    )
