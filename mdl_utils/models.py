"""Models by name (paper App. C, D). ``build(name, input_shape, num_classes, seed)``
returns a freshly initialized ``torch.nn.Module`` whose initial weights depend
only on the seed, so that Alice and Bob build the same network.

Dropout between fully connected layers uses p = 0.5: the paper states 0.5 for
the VGG networks; its value for the other networks was lost in extraction.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

DROPOUT = 0.5


def _fc_head(in_features: int, widths: list[int], num_classes: int, dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Flatten()]
    for w in widths:
        layers += [nn.Linear(in_features, w), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(nn.Dropout(dropout))
        in_features = w
    layers.append(nn.Linear(in_features, num_classes))
    return layers


def _conv_stack(channels: int, plan: list[int | str], batch_norm: bool = False, kernel: int = 3,
                padding: int = 1) -> tuple[list[nn.Module], int]:
    """Conv layers from a plan like [32, 32, "M", 64]: ints are 3x3 convs + ReLU, "M" a 2x2 max-pool."""
    layers: list[nn.Module] = []
    for item in plan:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers.append(nn.Conv2d(channels, int(item), kernel, padding=padding))
            if batch_norm:
                layers.append(nn.BatchNorm2d(int(item)))
            layers.append(nn.ReLU(inplace=True))
            channels = int(item)
    return layers, channels


def _flat_size(features: nn.Module, input_shape: tuple[int, ...]) -> int:
    features.eval()
    try:
        with torch.no_grad():
            size = math.prod(features(torch.zeros(1, *input_shape)).shape[1:])
    except RuntimeError as e:
        raise ValueError(f"inputs of shape {input_shape} do not fit this network ({e})") from None
    features.train()
    return size


def _with_head(features: list[nn.Module], input_shape, widths, num_classes, dropout) -> nn.Sequential:
    body = nn.Sequential(*features)
    return nn.Sequential(*features, *_fc_head(_flat_size(body, input_shape), widths, num_classes, dropout))


def logistic(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression: p(y|x) = softmax(W x + b) (chapter 1)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Two hidden ReLU layers with dropout: 256 wide on MNIST-sized inputs, 512 on larger (CIFAR-10) (App. C, D)."""
    width = 256 if math.prod(input_shape) <= 28 * 28 else 512
    return nn.Sequential(*_fc_head(math.prod(input_shape), [width, width], num_classes, DROPOUT))


def shallow(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """One hidden ReLU layer of width 5000 (App. D, CIFAR-10)."""
    return nn.Sequential(*_fc_head(math.prod(input_shape), [5000], num_classes, 0.0))


def lenet(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet-like (App. C): conv 6 and 16 filters 5x5, ReLU + 2x2 max-pool each; FC 120, 84."""
    features, _ = _conv_stack(input_shape[0], [6, "M", 16, "M"], kernel=5, padding=0)
    return _with_head(features, input_shape, [120, 84], num_classes, 0.0)


def small_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """A CNN practical on a 2-core CPU (ours, not the paper's): conv 16, pool, conv 32, pool, FC 128 + dropout."""
    features, _ = _conv_stack(input_shape[0], [16, "M", 32, "M"])
    return _with_head(features, input_shape, [128], num_classes, DROPOUT)


def tinycnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """tinyCNN (App. D, CIFAR-10): 4 conv layers of 32 filters, max-pool after every two; FC 256, 256 + dropout."""
    features, _ = _conv_stack(input_shape[0], [32, 32, "M", 32, 32, "M"])
    return _with_head(features, input_shape, [256, 256], num_classes, DROPOUT)


def vgg_mnist(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGG-like, 8 conv layers (32 32 64 64 128 128 256 256), max-pool every two; FC 256, 256 + dropout (App. D)."""
    features, _ = _conv_stack(input_shape[0], [32, 32, "M", 64, 64, "M", 128, 128, "M", 256, 256, "M"])
    return _with_head(features, input_shape, [256, 256], num_classes, DROPOUT)


VGG13_PLAN: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def _vgg_cifar(input_shape, num_classes, batch_norm: bool) -> nn.Module:
    features, _ = _conv_stack(input_shape[0], VGG13_PLAN, batch_norm=batch_norm)
    return _with_head(features, input_shape, [512], num_classes, DROPOUT)


def vgg_cifar(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGGa (App. D): the 13-conv VGG of Zagoruyko (2015), no batch norm, dropout 0.5 (trained without augmentation)."""
    return _vgg_cifar(input_shape, num_classes, batch_norm=False)


def vgg_cifar_bn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """VGGb (App. D): the same 13-conv VGG with batch norm (trained with augmentation)."""
    return _vgg_cifar(input_shape, num_classes, batch_norm=True)


MODELS: dict[str, Callable[[tuple[int, ...], int], nn.Module]] = {
    "logistic": logistic,
    "mlp": mlp,
    "shallow": shallow,
    "lenet": lenet,
    "small_cnn": small_cnn,
    "tinycnn": tinycnn,
    "vgg_mnist": vgg_mnist,
    "vgg_cifar": vgg_cifar,
    "vgg_cifar_bn": vgg_cifar_bn,
}

# Models whose training recipe adds data augmentation (VGGb).
AUGMENTED = {"vgg_cifar_bn"}


def build(name: str, input_shape: tuple[int, ...], num_classes: int, seed: int = 0) -> nn.Module:
    """Model ``name`` for inputs of ``input_shape`` (without batch axis), initialized from ``seed``."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[name](tuple(input_shape), num_classes)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
