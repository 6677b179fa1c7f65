"""Training shared by every code: device choice, determinism, fitting, prediction.

Determinism is what lets Bob decode: given the seed, the same data and the
same machine, fitting gives the same weights bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; any other value is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use device='auto' or 'cpu'")
    return device


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (None: unchanged), then restore the previous count.

    The thread count is part of what a decoder must reproduce: CPU kernels may sum in another order.
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_deterministic() -> None:
    """Deterministic kernels (bit-identical reruns on one machine)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, device: str | torch.device = "auto",
                   batch_size: int = 4096) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, on the CPU, in float32."""
    device = resolve_device(device)
    model.eval()
    out = [model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def fit_full_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, weight_decay: float = 0.0,
                   max_iter: int = 100, device: str | torch.device = "auto") -> nn.Module:
    """Minimize mean cross-entropy + (weight_decay / 2) ||weights||^2 by full-batch L-BFGS.

    For convex models (logistic regression) this reaches the regularized
    optimum; it is deterministic since no sampling is involved.
    """
    device = resolve_device(device)
    make_deterministic()
    model.to(device).train()
    x, y = x.to(device), y.to(device)
    weights = [p for name, p in model.named_parameters() if not name.endswith("bias")]
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=max_iter, history_size=20,
                            line_search_fn="strong_wolfe", tolerance_grad=1e-9, tolerance_change=1e-12)

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        if weight_decay:
            loss = loss + 0.5 * weight_decay * sum((w * w).sum() for w in weights)
        loss.backward()
        return loss

    opt.step(closure)
    return model.eval()


# ------------------------------------------------------------- minibatches


def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random translations by up to ``pad`` pixels (zero padding) and horizontal flips (VGGb, App. D)."""
    b, c, h, w = x.shape
    dev = x.device
    shift = torch.randint(0, 2 * pad + 1, (2, b), generator=generator).to(dev)
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    rows = torch.arange(h, device=dev)[None, :] + shift[0][:, None]
    cols = torch.arange(w, device=dev)[None, :].expand(b, w)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + shift[1][:, None]
    return padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` did: per-epoch history, the epoch whose weights were kept, time."""

    best_epoch: int
    epochs_run: int
    history: dict[str, list[float]]
    seconds: float
    n_train: int
    n_val: int


def validation_size(n: int, val_fraction: float) -> int:
    """Samples held out for early stopping: round(val_fraction * n), at least 1 when n >= 2, 0 when off."""
    if val_fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(val_fraction * n)))


def cross_entropy_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The default loss of :func:`fit`: mean cross-entropy (nats) of ``model`` on a mini-batch."""
    return nn.functional.cross_entropy(model(xb), yb)


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int = 20, batch_size: int = 128,
        lr: float = 1e-3, weight_decay: float = 0.0, val_fraction: float = 0.1, patience: int | None = 3,
        augment: bool = False, seed: int = 0, device: str | torch.device = "auto", progress: bool | str = False,
        on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss,
        param_groups: list[dict] | None = None) -> FitResult:
    """Train ``model`` on (x, y) with Adam and mini-batches; deterministic given ``seed``. The one training loop.

    The last ``val_fraction`` of the given samples (in the order given) is held
    out; after each epoch the validation loss is measured and training stops
    when it has not improved for ``patience`` epochs; the weights of the best
    epoch are restored. Everything the routine looks at is in (x, y): for a
    prequential block these are transmitted labels only (the causality rule).
    ``on_epoch_end(e, model)`` is called with e = 0 before training and after
    every epoch e = 1..epochs_run (for self-switch codes). ``loss(model, xb, yb)``
    is the mini-batch objective (the variational code passes KL/n + data bits);
    ``param_groups`` Adam's parameter groups (default: all of ``model``'s, at ``lr``).
    """
    device = resolve_device(device)
    make_deterministic()
    n_val = validation_size(len(y), val_fraction)
    n_train = len(y) - n_val
    x_tr, y_tr = x[:n_train].to(device), y[:n_train].to(device)
    x_val, y_val = x[n_train:].to(device), y[n_train:].to(device)
    model.to(device)
    opt = torch.optim.Adam(param_groups or model.parameters(), lr=lr, weight_decay=weight_decay)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    best = (math.inf, 0, copy.deepcopy(model.state_dict()))
    t0 = time.perf_counter()
    bar = tqdm(total=epochs, desc=progress if isinstance(progress, str) else "fit", leave=False,
               disable=not progress)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        if on_epoch_end:
            on_epoch_end(0, model)
        epoch = 0
        for epoch in range(1, epochs + 1):
            model.train()
            history["train_loss"].append(_epoch(model, opt, loss, x_tr, y_tr, batch_size, augment, g))
            if n_val:
                val_loss, val_acc = _validate(model, x_val, y_val, device)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
                if val_loss < best[0]:
                    best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
            if on_epoch_end:
                on_epoch_end(epoch, model)
            bar.update(1)
            if n_val and patience is not None and epoch - best[1] >= patience:
                break
    bar.close()
    if n_val:
        model.load_state_dict(best[2])
    model.eval()
    return FitResult(best_epoch=best[1] if n_val else epoch, epochs_run=epoch, history=history,
                     seconds=time.perf_counter() - t0, n_train=n_train, n_val=n_val)


def _epoch(model, opt, loss_fn, x, y, batch_size: int, augment: bool, g: torch.Generator) -> float:
    """One pass over (x, y) in the order drawn from ``g``; returns the mean mini-batch loss (no sync per step)."""
    n = len(y)
    order = torch.randperm(n, generator=g).to(x.device)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        xb = augment_batch(x[idx], g) if augment else x[idx]
        loss = loss_fn(model, xb, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach().double() * len(idx)
    return total.item() / max(n, 1)


def _validate(model, x_val, y_val, device) -> tuple[float, float]:
    """(mean cross-entropy in nats, accuracy) on the held-out samples."""
    logits = predict_logits(model, x_val, device)
    val_loss = nn.functional.cross_entropy(logits, y_val.cpu()).item()
    return val_loss, (logits.argmax(1) == y_val.cpu()).double().mean().item()
