"""Bayesian layers for the variational code (paper Sec. 3.3, App. C).

Every weight and bias has a diagonal Gaussian posterior beta = N(mu, sigma^2),
sigma = softplus(rho) = log(1 + exp(rho)); the prior is alpha = N(0, sigma0^2 I).
The KL between them has a closed form,

    KL(beta || alpha) = sum_j [ ln(sigma0 / sigma_j) + (sigma_j^2 + mu_j^2) / (2 sigma0^2) - 1/2 ]  nats,

divided by ln 2 for bits. Linear layers sample their pre-activations per example
(local reparameterization, Kingma et al. 2015); convolutions draw their weights
once per forward pass. :func:`mdl_utils.models.build` with ``bayesian=True``
builds the book's architectures from these layers.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .bits import LN2


def softplus_inverse(sigma: float) -> float:
    """rho such that softplus(rho) = log(1 + exp(rho)) = sigma (sigma > 0)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    return float(sigma + math.log(-math.expm1(-sigma)))


def kl_gaussian_bits(mu: torch.Tensor, sigma: torch.Tensor, sigma0: float) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, sigma0^2 I)) in bits, summed over all coordinates (closed form)."""
    if not sigma0 > 0:
        raise ValueError(f"the prior width sigma0 must be positive, got {sigma0!r}")
    nats = math.log(sigma0) - torch.log(sigma) + (sigma ** 2 + mu ** 2) / (2.0 * sigma0 ** 2) - 0.5
    return nats.sum() / LN2


class BayesianLayer(nn.Module):
    """Base of the Bayesian layers: weight and bias posteriors N(mu, softplus(rho)^2).

    ``frozen`` (set by :func:`fixed_sample`) holds one parameter draw theta ~ beta used for
    every forward pass until cleared.
    """

    def _init_posterior(self, weight: torch.Tensor, bias: torch.Tensor | None, init_sigma: float) -> None:
        rho = softplus_inverse(init_sigma)
        self.weight_mu = nn.Parameter(weight.detach().clone())
        self.weight_rho = nn.Parameter(torch.full_like(weight, rho))
        if bias is not None:
            self.bias_mu = nn.Parameter(bias.detach().clone())
            self.bias_rho = nn.Parameter(torch.full_like(bias, rho))
        else:
            self.register_parameter("bias_mu", None)
            self.register_parameter("bias_rho", None)
        self.frozen: tuple[torch.Tensor, torch.Tensor | None] | None = None

    def posteriors(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(mu, sigma) of each parameter tensor."""
        yield self.weight_mu, F.softplus(self.weight_rho)
        if self.bias_mu is not None:
            yield self.bias_mu, F.softplus(self.bias_rho)

    def kl_bits(self, sigma0: float) -> torch.Tensor:
        return sum(kl_gaussian_bits(mu, sigma, sigma0) for mu, sigma in self.posteriors())

    def sample(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One draw theta = mu + sigma * eps, eps ~ N(0, I) (the reparameterization trick)."""
        out = []
        for mu, sigma in self.posteriors():
            eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
            out.append(mu + sigma * eps)
        return out[0], (out[1] if len(out) > 1 else None)


class BayesLinear(BayesianLayer):
    """Linear layer with a diagonal Gaussian posterior; local reparameterization when sampling.

    Pre-activation of example i: a_i ~ N(x_i mu_W^T + mu_b, x_i^2 (sigma_W^2)^T + sigma_b^2), drawn
    independently per example: for each example the same distribution as with a fresh theta ~ beta.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_sigma: float = 1e-3):
        super().__init__()
        ref = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default initialization of the means
        self._init_posterior(ref.weight, ref.bias, init_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen is not None:
            return F.linear(x, *self.frozen)
        w_sigma = F.softplus(self.weight_rho)
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        var = F.linear(x * x, w_sigma * w_sigma,
                       None if self.bias_mu is None else F.softplus(self.bias_rho) ** 2)
        return mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean)


class BayesConv2d(BayesianLayer):
    """2-d convolution with a diagonal Gaussian posterior; weights sampled once per forward pass."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 init_sigma: float = 1e-3):
        super().__init__()
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.padding = padding
        self._init_posterior(ref.weight, ref.bias, init_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.frozen if self.frozen is not None else self.sample()
        return F.conv2d(x, w, b, padding=self.padding)


def bayesian_layers(net: nn.Module) -> list[BayesianLayer]:
    return [m for m in net.modules() if isinstance(m, BayesianLayer)]


def kl_bits(net: nn.Module, sigma0: float) -> torch.Tensor:
    """KL(beta || alpha) of all Bayesian layers of ``net``, in bits (closed form)."""
    layers = bayesian_layers(net)
    if not layers:
        raise ValueError("the network has no Bayesian layers; build it with models.build(..., bayesian=True)")
    return sum(layer.kl_bits(sigma0) for layer in layers)


def num_weights(net: nn.Module) -> int:
    """Number of weights theta (each has a mean and a width in beta)."""
    return sum(mu.numel() for layer in bayesian_layers(net) for mu, _ in layer.posteriors())


@contextlib.contextmanager
def fixed_sample(net: nn.Module, generator: torch.Generator | None = None):
    """Within the block, ``net`` uses one parameter draw theta ~ beta for every input."""
    layers = bayesian_layers(net)
    try:
        with torch.no_grad():
            for layer in layers:
                layer.frozen = layer.sample(generator)
        yield net
    finally:
        for layer in layers:
            layer.frozen = None


