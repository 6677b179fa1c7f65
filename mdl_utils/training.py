"""Training shared by every code: device choice, determinism, fitting, prediction.

Determinism is what lets Bob decode: given the seed, the same data and the
same machine, fitting gives the same weights bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; any other value is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use device='auto' or 'cpu'")
    return device


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
