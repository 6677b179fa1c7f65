"""Models by name. ``build(name, input_shape, num_classes, seed)`` returns a
freshly initialized ``torch.nn.Module`` whose initial weights depend only on
the seed, so that Alice and Bob build the same network.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def logistic(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: p(y|x) = softmax(W x + b) (book chapter 1)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "logistic": logistic,
}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (without batch axis), initialized from ``seed``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](tuple(input_shape), num_classes)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
