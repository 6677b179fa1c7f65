"""Averaged predictions: a network's over fixed transformations of its input (test-time augmentation), and
several networks' (an ensemble).

For a trained network f and fixed views v_1..v_V of an image (the identity, translations by a pixel, a mirror
image), the prediction of a label is the mixture

    p(y | x) = (1/V) sum_v softmax(f(v(x)))_y,

returned as logits log p(y | x) (so softmax of them gives p back). The views are fixed, and both Alice and Bob hold
the inputs, so the prequential code stays causal: Bob recomputes every p(y | x) from the images and the labels
decoded so far (Sec. 3.3 of the paper; issue 24, item 1). Views worth averaging are the ones the network was
trained with (the recipe's augmentation): a network never shown mirror images gains nothing from them.

``TTA`` names the view sets a prequential recipe can ask for (its ``tta`` field). The same average over the
networks of an ensemble (:func:`mixture`) is the prediction of a recipe's ``members`` chains trained side by side.
"""

from __future__ import annotations

import math

import torch
from torch import nn

IDENTITY = (0, 0, False)  # (rows down, columns right, mirrored)
SHIFTS1 = ((1, 0, False), (-1, 0, False), (0, 1, False), (0, -1, False))
TTA: dict[str, tuple[tuple[int, int, bool], ...]] = {
    "none": (IDENTITY,),
    "flip": (IDENTITY, (0, 0, True)),               # CIFAR-10's mirror images (VGGb's augmentation)
    "shift1": (IDENTITY, *SHIFTS1),                 # translations by one pixel (the cnn4 recipes' augmentation)
    "flip_shift1": (IDENTITY, (0, 0, True), *SHIFTS1),
}
WORDS = {"none": "the image alone", "flip": "the image and its mirror image",
         "shift1": "the image and its four one-pixel shifts",
         "flip_shift1": "the image, its mirror image and its four one-pixel shifts"}


def check(name: str) -> tuple[tuple[int, int, bool], ...]:
    """The views of ``name``; a ValueError naming the choices for an unknown one."""
    if name not in TTA:
        raise ValueError(f"unknown test-time augmentation {name!r}; choose one of {', '.join(TTA)}")
    return TTA[name]


def view(x: torch.Tensor, down: int, right: int, mirrored: bool, fill: float = 0.0) -> torch.Tensor:
    """Images ``x`` (N, C, H, W) moved ``down`` rows and ``right`` columns (the pixels that enter are ``fill``),
    then mirrored left to right when ``mirrored``; the same memory layout as ``x``."""
    out = x
    if down or right:
        p = max(abs(down), abs(right))
        h, w = x.shape[-2:]
        padded = nn.functional.pad(x, (p, p, p, p), value=fill)
        out = padded[..., p - down:p - down + h, p - right:p - right + w]
    if mirrored:
        out = torch.flip(out, dims=(-1,))
    nhwc = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last) if nhwc else out.contiguous()


class Averaged(nn.Module):
    """The prediction of ``models`` (one network or several) averaged over them and over ``views``:
    log((1/(M V)) sum_m sum_v softmax(model_m(view_v(x)))), in float32."""

    def __init__(self, models: nn.Module | list[nn.Module], views: tuple[tuple[int, int, bool], ...] = (IDENTITY,),
                 fill: float = 0.0):
        super().__init__()
        self.models = nn.ModuleList(models if isinstance(models, (list, tuple)) else [models])
        self.views, self.fill = tuple(views), float(fill)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logs = [torch.log_softmax(m(view(x, *v, fill=self.fill)).float(), dim=1)
                for m in self.models for v in self.views]
        return torch.logsumexp(torch.stack(logs), dim=0) - math.log(len(logs))


def predictor(model: nn.Module, name: str, fill: float = 0.0) -> nn.Module:
    """What predicts with ``model`` under the view set ``name``: the model itself for "none", else
    :class:`Averaged` over the views."""
    views = check(name)
    return model if views == (IDENTITY,) else Averaged(model, views, fill)


def mixture(models: list[nn.Module]) -> nn.Module:
    """The average of several networks' predictions (an ensemble's): the network itself when there is one."""
    return models[0] if len(models) == 1 else Averaged(list(models))
