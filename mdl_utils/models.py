"""The book's architectures, by name, in one registry (paper App. C, D).

``build(name, input_shape, num_classes, seed, bayesian=False)`` returns a freshly
initialized ``torch.nn.Module`` whose initial weights depend only on the seed,
so that Alice and Bob build the same network. Each architecture is written once
as a list of layer specs; ``bayesian=True`` builds the same layers with a
diagonal Gaussian posterior over every weight (:mod:`mdl_utils.bayesian`, the
variational code), without dropout (the weight noise plays that part) and
without batch norm (not supported there).

Dropout between fully connected layers uses p = 0.5: the paper states 0.5 for
the VGG networks; its value for the other networks was lost in extraction.

Your own network: :func:`register` a function ``(input_shape, num_classes) ->
nn.Module`` under a name, and every code, chapter, command line and job takes
that name like a built-in one (initialized from the seed as they are; Bayesian
versions, for the variational code, exist for the built-in architectures only).
"""

from __future__ import annotations

import hashlib
import inspect
import math
from typing import Callable

import torch
from torch import nn

from .bayesian import BayesConv2d, BayesLinear

DROPOUT = 0.5
VGG13_PLAN: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]

Spec = tuple  # ("conv", out, kernel, padding[, bias]) | ("bn",) | ("relu",) | ("pool",) | ("gap",) | ("flatten",)
#               | ("fc", out) | ("dropout", p)


def _convs(plan: list[int | str], kernel: int = 3, padding: int = 1, batch_norm: bool = False,
           bias: bool = True) -> list[Spec]:
    """Conv layers from a plan like [32, 32, "M", 64]: ints are convs (+ batch norm) + ReLU, "M" a 2x2 max-pool;
    ``bias=False``: convolutions without bias (batch norm's shift replaces it)."""
    specs: list[Spec] = []
    for item in plan:
        if item == "M":
            specs.append(("pool",))
        else:
            conv = ("conv", int(item), kernel, padding) + (() if bias else (False,))
            specs += [conv, *([("bn",)] if batch_norm else []), ("relu",)]
    return specs


def _head(widths: list[int], num_classes: int, dropout: float = 0.0) -> list[Spec]:
    """Flatten, then fully connected ReLU layers (each followed by dropout when > 0), then the output layer."""
    specs: list[Spec] = [("flatten",)]
    for w in widths:
        specs += [("fc", w), ("relu",), *([("dropout", dropout)] if dropout else [])]
    return specs + [("fc", num_classes)]


def _mlp_width(input_shape) -> int:
    return 256 if math.prod(input_shape) <= 28 * 28 else 512


# name -> (layer specs for (input_shape, K), one-line description with the paper's section)
ARCHITECTURES: dict[str, tuple[Callable[[tuple, int], list[Spec]], str]] = {
    "logistic": (lambda s, k: _head([], k), "multinomial logistic regression softmax(W x + b) (Sec. 2.2)"),
    "mlp": (lambda s, k: _head([_mlp_width(s)] * 2, k, DROPOUT),
            "two hidden ReLU layers, 256 wide on MNIST-sized inputs, 512 on larger, dropout (App. C, D)"),
    "mlp3x200": (lambda s, k: _head([200, 200, 200], k), "three hidden ReLU layers of 200 (Figure 1)"),
    "shallow": (lambda s, k: _head([5000], k), "one hidden ReLU layer of width 5000 (App. D, CIFAR-10)"),
    "lenet": (lambda s, k: _convs([6, "M", 16, "M"], kernel=5, padding=0) + _head([120, 84], k),
              "LeNet-like: conv 6 and 16 filters 5x5, ReLU + max-pool each; FC 120, 84 (App. C)"),
    "small_cnn": (lambda s, k: _convs([16, "M", 32, "M"]) + _head([128], k, DROPOUT),
                  "ours, not the paper's: conv 16, pool, conv 32, pool, FC 128 + dropout"),
    "cnn4": (lambda s, k: _convs([32, 32, "M", 64, 64, "M"]) + _head([256], k, DROPOUT),
             "ours, not the paper's: 4 conv layers (32, 32, 64, 64), max-pool after every two; FC 256 + dropout"),
    "vgg6": (lambda s, k: _convs([32, 32, "M", 64, 64, "M", 128, 128, "M"], batch_norm=True, bias=False)
             + [("gap",), ("flatten",), ("fc", k)],
             "ours, not the paper's: VGG-like, 6 conv layers (32 32 64 64 128 128) with batch norm, max-pool after "
             "every two, global average pooling, linear output"),
    "tinycnn": (lambda s, k: _convs([32, 32, "M", 32, 32, "M"]) + _head([256, 256], k, DROPOUT),
                "tinyCNN (App. D): 4 conv layers of 32 filters, max-pool after every two; FC 256, 256 + dropout"),
    "vgg_mnist": (lambda s, k: _convs([32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"])
                  + _head([256, 256], k, DROPOUT),
                  "VGG-like, 8 conv layers (32 32 64 64 128 128 256 256), max-pool every two; FC 256, 256 (App. D)"),
    "vgg_cifar": (lambda s, k: _convs(VGG13_PLAN) + _head([512], k, DROPOUT),
                  "VGGa (App. D): the 13-conv VGG of Zagoruyko (2015), no batch norm, dropout 0.5"),
    "vgg_cifar_bn": (lambda s, k: _convs(VGG13_PLAN, batch_norm=True) + _head([512], k, DROPOUT),
                     "VGGb (App. D): the same 13-conv VGG with batch norm"),
}


def _out_shape(spec: Spec, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape (no batch axis) after one layer; ValueError when the inputs do not fit it."""
    kind = spec[0]
    if kind in ("conv", "bn", "pool", "gap") and len(shape) != 3:
        raise ValueError(f"a {kind} layer needs image inputs (C, H, W), got shape {shape}")
    if kind == "conv":
        out, k, p = spec[1:4]
        h, w = shape[1] + 2 * p - k + 1, shape[2] + 2 * p - k + 1
        if h < 1 or w < 1:
            raise ValueError(f"inputs of shape {shape} are too small for a {k}x{k} convolution")
        return out, h, w
    if kind == "pool":
        if shape[1] < 2 or shape[2] < 2:
            raise ValueError(f"inputs of shape {shape} are too small for another 2x2 max-pool")
        return shape[0], shape[1] // 2, shape[2] // 2
    if kind == "gap":
        return shape[0], 1, 1
    if kind == "flatten":
        return (math.prod(shape),)
    if kind == "fc":
        return (spec[1],)
    if kind in ("bn", "relu", "dropout"):
        return shape
    raise ValueError(f"unknown layer spec {spec!r}")


def _module(spec: Spec, shape: tuple[int, ...], bayesian: bool, init_sigma: float) -> nn.Module | None:
    """The layer of ``spec`` for inputs of ``shape`` (None: nothing, e.g. dropout in a Bayesian network)."""
    kind = spec[0]
    if kind == "conv":
        c, (out, k, p), bias = shape[0], spec[1:4], spec[4] if len(spec) > 4 else True
        if bayesian:
            return BayesConv2d(c, out, k, padding=p, init_sigma=init_sigma)
        return nn.Conv2d(c, out, k, padding=p, bias=bias)
    if kind == "fc":
        return BayesLinear(shape[0], spec[1], init_sigma=init_sigma) if bayesian else nn.Linear(shape[0], spec[1])
    if kind == "bn":
        if bayesian:
            raise ValueError("batch norm has no Bayesian version; choose an architecture without it")
        return nn.BatchNorm2d(shape[0])
    if kind == "dropout":
        return None if bayesian else nn.Dropout(spec[1])
    return {"pool": lambda: nn.MaxPool2d(2), "gap": GlobalAvgPool, "flatten": nn.Flatten,
            "relu": lambda: nn.ReLU() if bayesian else nn.ReLU(inplace=True)}[kind]()



class GlobalAvgPool(nn.Module):
    """Global average pooling, (B, C, H, W) -> (B, C, 1, 1), as a mean over H and W: the same numbers as
    nn.AdaptiveAvgPool2d(1) on the CPU (tested), but with a deterministic backward on CUDA, where
    adaptive_avg_pool2d's has none (training.make_deterministic is strict there)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)

# ------------------------------------------------------------ your own networks

CUSTOM: dict[str, Callable[[tuple, int], nn.Module]] = {}  # name -> (input_shape, num_classes) -> nn.Module


def register(name: str, fn: Callable[[tuple, int], nn.Module] | None = None):
    """Register ``fn(input_shape, num_classes) -> nn.Module`` as model ``name`` (also as a decorator:
    ``@register("mynet")``). Alice and Bob must register the same function under the same name: a labels file
    holds a fingerprint of its source (:func:`fingerprint`) and a decoder with another one refuses it."""
    if not isinstance(name, str) or not name or "-" in name or name in ARCHITECTURES:
        raise ValueError(f"model name {name!r}: give a new name without '-' (not a built-in one: "
                         f"{', '.join(sorted(ARCHITECTURES))})")

    def add(f: Callable[[tuple, int], nn.Module]) -> Callable[[tuple, int], nn.Module]:
        if not callable(f):
            raise ValueError(f"register({name!r}, ...) needs a function (input_shape, num_classes) -> nn.Module")
        CUSTOM[name] = f
        return f

    return add if fn is None else add(fn)


def known(name: str) -> bool:
    """Whether ``name`` is a model: a built-in architecture or a registered network."""
    return name in ARCHITECTURES or name in CUSTOM


def names() -> list[str]:
    """Every model name, built-in and registered."""
    return sorted([*ARCHITECTURES, *CUSTOM])


def fingerprint(name: str) -> str | None:
    """The SHA-256 (16 hex digits) of a registered network's source code (its qualified name when the source is not
    readable); None for a built-in architecture."""
    if name not in CUSTOM:
        return None
    fn = CUSTOM[name]
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = getattr(fn, "__qualname__", repr(fn))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _custom(name: str, shape: tuple[int, ...], num_classes: int, seed: int) -> nn.Module:
    """A registered network, built under ``seed``; a one-line ValueError when it is not an nn.Module."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = CUSTOM[name](tuple(shape), int(num_classes))
    if not isinstance(net, nn.Module):
        raise ValueError(f"the registered model {name!r} returned {type(net).__name__}, not a torch.nn.Module; "
                         "its function must build and return the network")
    return net


def output_misfit(net: nn.Module, input_shape: tuple[int, ...], num_classes: int) -> str | None:
    """Why ``net`` does not map a batch of inputs of ``input_shape`` to (batch, num_classes) logits, or None."""
    try:
        with torch.no_grad():
            out = net.eval()(torch.zeros(2, *input_shape))
    except Exception as e:  # a user's network: any error is the answer
        return f"it fails on inputs of shape {tuple(input_shape)}: {type(e).__name__}: {' '.join(str(e).split())}"
    finally:
        net.train()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return (f"it returns {got} for a batch of 2 inputs, not (2, {num_classes}): it must return one logit per "
                "class for each input")
    return None


def _specs(name: str, input_shape, num_classes: int) -> list[Spec]:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(names())}, or register yours "
                         "(mdl_utils.models.register)")
    return ARCHITECTURES[name][0](tuple(input_shape), int(num_classes))


def build(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int = 0, *,
          bayesian: bool = False, init_sigma: float = 1e-3) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (without batch axis), initialized from ``seed``.

    ``bayesian=True``: the same layers with Gaussian posteriors N(mu, softplus(rho)^2), means at PyTorch's
    default initialization and widths ``init_sigma`` (the variational code, Sec. 3.3).
    """
    shape = tuple(int(s) for s in input_shape)
    if name in CUSTOM:
        if bayesian:
            raise ValueError(f"{name!r} is a registered network: Bayesian versions (the variational code) exist for "
                             f"the built-in architectures only ({', '.join(sorted(ARCHITECTURES))})")
        return _custom(name, shape, num_classes, seed)
    layers = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for spec in _specs(name, shape, num_classes):
            out = _out_shape(spec, shape)
            module = _module(spec, shape, bayesian, init_sigma)
            shape = out
            if module is not None:
                layers.append(module)
    return nn.Sequential(*layers)


def misfit(name: str, input_shape: tuple[int, ...]) -> str | None:
    """Why architecture ``name`` does not accept inputs of ``input_shape`` (e.g. lenet needs images >= 16 x 16),
    None when it does."""
    shape = tuple(int(s) for s in input_shape)
    if name in CUSTOM:
        try:
            return output_misfit(_custom(name, shape, 2, 0), shape, 2)
        except ValueError as e:
            return str(e)
    try:
        for spec in _specs(name, shape, 2):
            shape = _out_shape(spec, shape)
    except ValueError as e:
        return str(e)
    return None


def fits(name: str, input_shape: tuple[int, ...]) -> bool:
    """Whether architecture ``name`` accepts inputs of ``input_shape``."""
    return misfit(name, input_shape) is None


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
