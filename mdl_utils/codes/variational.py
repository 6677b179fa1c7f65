"""The variational (bits-back) code (paper Sec. 3.3, Def. 2, App. C).

Alice trains a posterior beta over the weights, a diagonal Gaussian
N(mu, sigma^2) with sigma = softplus(rho) = log(1 + exp(rho)), against a prior
alpha = N(0, sigma0^2 I). With bits-back coding (Hinton & van Camp 1993) the
labels cost, in expectation,

    L_var(y | x) = KL(beta || alpha) + E_{theta ~ beta}[ sum_i -log2 p_theta(y_i | x_i) ]   (bits)

and L_var >= L_Bayes = -log2 integral p_theta(y | x) alpha(theta) dtheta, with
equality iff beta is the exact posterior (Sec. 3.3, eq. (4)). The KL between
diagonal Gaussians is in closed form,

    KL = sum_j [ ln(sigma0 / sigma_j) + (sigma_j^2 + mu_j^2) / (2 sigma0^2) - 1/2 ]  nats,

divided by ln 2 for bits. E_beta[L] is estimated by Monte Carlo with the
reparameterization trick: linear layers use the local reparameterization
(pre-activations sampled per example, Kingma et al. 2015), convolutions sample
their weights once per mini-batch. The prior width sigma0 is chosen from a grid
agreed in advance; its choice costs log2(len(grid)) bits.
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

LN2 = math.log(2.0)

# The posterior starts narrow: sigma = softplus(rho) with this sigma at initialization.
INIT_SIGMA = 1e-3


# --------------------------------------------------------------------- KL


def softplus_inverse(sigma: float) -> float:
    """rho such that softplus(rho) = log(1 + exp(rho)) = sigma (sigma > 0)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma!r}")
    return float(sigma + math.log(-math.expm1(-sigma)))


def kl_gaussian_bits(mu: torch.Tensor, sigma: torch.Tensor, sigma0: float) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, sigma0^2 I)) in bits, summed over all coordinates (closed form).

    KL = sum_j ln(sigma0 / sigma_j) + (sigma_j^2 + mu_j^2) / (2 sigma0^2) - 1/2 nats; bits = nats / ln 2.
    """
    if not sigma0 > 0:
        raise ValueError(f"the prior width sigma0 must be positive, got {sigma0!r}")
    nats = math.log(sigma0) - torch.log(sigma) + (sigma ** 2 + mu ** 2) / (2.0 * sigma0 ** 2) - 0.5
    return nats.sum() / LN2


# ------------------------------------------------------------------ layers


class BayesianLayer(nn.Module):
    """Base of the Bayesian layers: weight and bias posteriors N(mu, softplus(rho)^2).

    ``frozen`` (set by :func:`fixed_sample`) holds one parameter draw theta ~ beta used for
    every forward pass until cleared; ``use_mean`` evaluates at theta = mu.
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
        self.use_mean = False

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

    def _weights(self):
        if self.frozen is not None:
            return self.frozen
        if self.use_mean:
            return self.weight_mu, self.bias_mu
        return None


class BayesLinear(BayesianLayer):
    """Linear layer with a diagonal Gaussian posterior; local reparameterization when sampling.

    Pre-activation of example i: a_i ~ N(x_i mu_W^T + mu_b, x_i^2 (sigma_W^2)^T + sigma_b^2), drawn
    independently per example: for each example the same distribution as with a fresh theta ~ beta.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, init_sigma: float = INIT_SIGMA):
        super().__init__()
        ref = nn.Linear(in_features, out_features, bias=bias)  # PyTorch's default initialization of the means
        self._init_posterior(ref.weight, ref.bias, init_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fixed = self._weights()
        if fixed is not None:
            return F.linear(x, *fixed)
        w_sigma = F.softplus(self.weight_rho)
        mean = F.linear(x, self.weight_mu, self.bias_mu)
        var = F.linear(x * x, w_sigma * w_sigma,
                       None if self.bias_mu is None else F.softplus(self.bias_rho) ** 2)
        return mean + var.clamp_min(1e-16).sqrt() * torch.randn_like(mean)


class BayesConv2d(BayesianLayer):
    """2-d convolution with a diagonal Gaussian posterior; weights sampled once per forward pass."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int = 0,
                 init_sigma: float = INIT_SIGMA):
        super().__init__()
        ref = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding)
        self.padding = padding
        self._init_posterior(ref.weight, ref.bias, init_sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fixed = self._weights()
        w, b = fixed if fixed is not None else self.sample()
        return F.conv2d(x, w, b, padding=self.padding)


def bayesian_layers(net: nn.Module) -> list[BayesianLayer]:
    return [m for m in net.modules() if isinstance(m, BayesianLayer)]


def kl_bits(net: nn.Module, sigma0: float) -> torch.Tensor:
    """KL(beta || alpha) of all Bayesian layers of ``net``, in bits (closed form)."""
    layers = bayesian_layers(net)
    if not layers:
        raise ValueError("the network has no Bayesian layers; build it with variational.build()")
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


@contextlib.contextmanager
def posterior_mean(net: nn.Module):
    """Within the block, ``net`` uses theta = mu (no noise)."""
    layers = bayesian_layers(net)
    try:
        for layer in layers:
            layer.use_mean = True
        yield net
    finally:
        for layer in layers:
            layer.use_mean = False


def set_posterior(net: nn.Module, mu: float | None = None, sigma: float | None = None) -> nn.Module:
    """Set every mean to ``mu`` and/or every width to ``sigma`` (e.g. mu=0, sigma=sigma0: beta = alpha)."""
    with torch.no_grad():
        for layer in bayesian_layers(net):
            for name in ("weight", "bias"):
                m, r = getattr(layer, f"{name}_mu"), getattr(layer, f"{name}_rho")
                if m is None:
                    continue
                if mu is not None:
                    m.fill_(mu)
                if sigma is not None:
                    r.fill_(softplus_inverse(sigma))
    return net


# ---------------------------------------------------------------- networks

ARCHITECTURES = ("logistic", "mlp", "mlp3x200", "lenet")


def applicable(name: str, input_shape: Sequence[int]) -> bool:
    """Whether ``build(name, input_shape, ...)`` works: lenet needs images of at least 16 x 16."""
    shape = tuple(input_shape)
    if name == "lenet":
        return len(shape) == 3 and shape[1] >= 16 and shape[2] >= 16
    return name in ARCHITECTURES


def build(name: str, input_shape: Sequence[int], num_classes: int, seed: int = 0,
          init_sigma: float = INIT_SIGMA) -> nn.Sequential:
    """A Bayesian network by name; the means start at PyTorch's default initialization drawn from ``seed``.

    ``mlp``: two hidden ReLU layers of 256 (MNIST-sized inputs) or 512 (larger), App. C, without dropout
    (the weight noise of beta plays that part); ``mlp3x200``: three hidden layers of 200 (Figure 1);
    ``lenet``: conv 6 and 16 filters 5x5, ReLU + 2x2 max-pool each, FC 120, 84 (App. C);
    ``logistic``: softmax(W x + b).
    """
    input_shape = tuple(int(s) for s in input_shape)
    d = math.prod(input_shape)
    if name == "lenet" and len(input_shape) != 3:
        raise ValueError(f"lenet needs image inputs (C, H, W), got shape {input_shape}; use mlp for vectors")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name in ("logistic", "mlp", "mlp3x200"):
            widths = {"logistic": [], "mlp": [256, 256] if d <= 28 * 28 else [512, 512],
                      "mlp3x200": [200, 200, 200]}[name]
            layers: list[nn.Module] = [nn.Flatten()]
            for w in widths:
                layers += [BayesLinear(d, w, init_sigma=init_sigma), nn.ReLU()]
                d = w
            layers.append(BayesLinear(d, num_classes, init_sigma=init_sigma))
            return nn.Sequential(*layers)
        if name == "lenet":
            c, h, w = input_shape
            h, w = (h - 4) // 2, (w - 4) // 2
            h, w = (h - 4) // 2, (w - 4) // 2
            if h < 1 or w < 1:
                raise ValueError(f"inputs of shape {input_shape} are too small for lenet (need at least 16 x 16)")
            return nn.Sequential(
                BayesConv2d(c, 6, 5, init_sigma=init_sigma), nn.ReLU(), nn.MaxPool2d(2),
                BayesConv2d(6, 16, 5, init_sigma=init_sigma), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                BayesLinear(16 * h * w, 120, init_sigma=init_sigma), nn.ReLU(),
                BayesLinear(120, 84, init_sigma=init_sigma), nn.ReLU(),
                BayesLinear(84, num_classes, init_sigma=init_sigma))
    raise ValueError(f"unknown variational model {name!r}; choose one of {', '.join(ARCHITECTURES)}")


# ---------------------------------------------------------------- training


def _bits(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-sample -log2 p(y | x)."""
    return F.cross_entropy(logits, y, reduction="none") / LN2


def fit(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma0: float, epochs: int, batch_size: int = 128,
        lr: float = 1e-3, lr_rho: float = 3e-2, seed: int = 0, device: str | torch.device = "cpu",
        progress: bool | str = False, on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        points_per_epoch: int = 10) -> dict:
    """Minimize the variational codelength KL(beta || alpha) + E_beta[sum_i -log2 p_theta(y_i | x_i)] with Adam.

    Each step minimizes the unbiased per-sample estimate KL / n + mean over the mini-batch of -log2 p_theta(y|x)
    (one draw of theta, local reparameterization in linear layers). Means use learning rate ``lr``,
    widths rho use ``lr_rho``. No early stopping: every label is encoded, the epoch count is agreed in advance.
    Returns per-epoch curves: kl_bits (at the end of the epoch), data_bits (the sum of the sampled
    -log2 p over the epoch), total_bits, objective_bits_per_sample, train_accuracy (sampled theta); and
    ``steps``: about ``points_per_epoch`` points per epoch (epoch as a fraction, KL, and n times the mean
    sampled -log2 p over the mini-batches since the previous point) for figures.
    """
    from tqdm import tqdm

    from ..training import make_deterministic, resolve_device

    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    device = resolve_device(device)
    make_deterministic()
    n = len(y)
    if n == 0:
        raise ValueError("no training labels given")
    net.to(device)
    x, y = x.to(device), y.to(device)
    mus = [p for name, p in net.named_parameters() if not name.endswith("_rho")]
    rhos = [p for name, p in net.named_parameters() if name.endswith("_rho")]
    opt = torch.optim.Adam([{"params": mus, "lr": lr}, {"params": rhos, "lr": lr_rho}])
    curves: dict[str, list[float]] = {"epoch": [], "kl_bits": [], "data_bits": [], "total_bits": [],
                                      "objective_bits_per_sample": [], "train_accuracy": [], "seconds": [],
                                      "steps": {"epoch": [], "kl_bits": [], "data_bits": [], "total_bits": []}}
    steps_per_epoch = math.ceil(n / batch_size)
    every = max(1, steps_per_epoch // max(1, points_per_epoch))
    window_bits, window_count = 0.0, 0
    t0 = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        if on_epoch_end:
            on_epoch_end(0, net)
        bar = tqdm(range(1, epochs + 1), desc=progress if isinstance(progress, str) else "variational",
                   leave=False, disable=not progress)
        for epoch in bar:
            net.train()
            order = torch.randperm(n, generator=g).to(device)
            data_bits, correct = 0.0, 0
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                logits = net(x[idx])
                bits = _bits(logits, y[idx])
                kl_step = kl_bits(net, sigma0)
                loss = bits.mean() + kl_step / n
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                data_bits += float(bits.detach().sum())
                correct += int((logits.detach().argmax(1) == y[idx]).sum())
                window_bits += float(bits.detach().sum())
                window_count += len(idx)
                step = i // batch_size + 1
                if step % every == 0 or step == steps_per_epoch:
                    kl_now = float(kl_step.detach())
                    est = window_bits / window_count * n
                    st = curves["steps"]
                    st["epoch"].append(epoch - 1 + step / steps_per_epoch)
                    st["kl_bits"].append(kl_now)
                    st["data_bits"].append(est)
                    st["total_bits"].append(kl_now + est)
                    window_bits, window_count = 0.0, 0
            with torch.no_grad():
                kl = float(kl_bits(net, sigma0))
            curves["epoch"].append(epoch)
            curves["kl_bits"].append(kl)
            curves["data_bits"].append(data_bits)
            curves["total_bits"].append(kl + data_bits)
            curves["objective_bits_per_sample"].append((kl + data_bits) / n)
            curves["train_accuracy"].append(correct / n)
            curves["seconds"].append(time.perf_counter() - t0)
            bar.set_postfix(bits_per_sample=f"{(kl + data_bits) / n:.3f}", kl=f"{kl / n:.3f}")
            if on_epoch_end:
                on_epoch_end(epoch, net)
    net.eval()
    return curves


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma0: float | None = None, samples: int = 8,
             seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 4096) -> dict:
    """Monte Carlo estimate of E_beta[sum_i -log2 p_theta(y_i | x_i)] with ``samples`` draws theta ~ beta.

    Each draw is one parameter vector used for all the inputs (as the paper measures test accuracy);
    returns data_bits (mean over draws), data_bits_se (standard error of that mean), the per-draw sums,
    accuracy (mean over draws), and kl_bits when ``sigma0`` is given.
    """
    from ..training import resolve_device

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    device = resolve_device(device)
    net.to(device).eval()
    g = torch.Generator().manual_seed(10_000 + seed)
    per_draw, accs = [], []
    for _ in range(samples):
        total, correct = 0.0, 0
        with fixed_sample(net, g):
            for i in range(0, len(y), batch_size):
                xb, yb = x[i:i + batch_size].to(device), y[i:i + batch_size].to(device)
                logits = net(xb).double()
                total += float(_bits(logits, yb).sum())
                correct += int((logits.argmax(1) == yb).sum())
        per_draw.append(total)
        accs.append(correct / max(len(y), 1))
    draws = np.asarray(per_draw)
    out = {"data_bits": float(draws.mean()),
           "data_bits_se": float(draws.std(ddof=1) / math.sqrt(samples)) if samples > 1 else math.nan,
           "data_bits_draws": per_draw, "accuracy": float(np.mean(accs)), "accuracy_draws": accs}
    if sigma0 is not None:
        out["kl_bits"] = float(kl_bits(net, sigma0))
    return out


# -------------------------------------------------------------------- code


def variational_code(train, test=None, *, model: str, scale: str, sigma0_grid: Sequence[float], epochs: int,
                     batch_size: int = 128, lr: float = 1e-3, lr_rho: float = 3e-2, init_sigma: float = INIT_SIGMA,
                     eval_samples: int = 8, seed: int = 0, device: str = "auto", progress: bool = True,
                     code: str = "variational", note: str = "", num_threads: int | None = None):
    """The variational code of ``train``'s labels as a CodeResult (Sec. 3.3, App. C).

    For each sigma0 of the grid (agreed in advance) a posterior is trained for ``epochs`` epochs from the
    same seed; its codelength KL + E_beta[sum -log2 p] is estimated on the whole training set with
    ``eval_samples`` draws. The shortest is kept and log2(len(grid)) bits pay for the choice:
    L = KL + log2|grid| + E_beta[L_theta]. Test accuracy: mean over draws theta ~ beta (as the paper).
    parts: kl_bits (model bits, KL + prior choice), kl_divergence_bits, prior_choice_bits, data_bits,
    data_bits_se. ``num_threads`` (None: unchanged) sets torch's CPU threads during the run (one thread is much
    faster than two on a loaded shared machine).
    """
    from ..results import CodeResult, Stopwatch, provenance
    from ..training import resolve_device, torch_threads

    grid = [float(s) for s in sigma0_grid]
    if not grid or any(not s > 0 for s in grid):
        raise ValueError(f"sigma0_grid must be a non-empty list of positive prior widths, got {sigma0_grid!r}")
    if len(set(grid)) != len(grid):
        raise ValueError(f"sigma0_grid has repeated values: {grid}")
    device = resolve_device(device)
    input_shape = tuple(train.x.shape[1:])
    runs = []
    with Stopwatch() as sw, torch_threads(num_threads):
        used_threads = torch.get_num_threads()
        for k, s0 in enumerate(grid):
            net = build(model, input_shape, train.K, seed=seed, init_sigma=init_sigma)
            label = f"{train.name} {model} sigma0={s0:g} ({k + 1}/{len(grid)})"
            curves = fit(net, train.x, train.y, sigma0=s0, epochs=epochs, batch_size=batch_size, lr=lr,
                         lr_rho=lr_rho, seed=seed, device=device, progress=label if progress else False)
            ev = evaluate(net, train.x, train.y, sigma0=s0, samples=eval_samples, seed=seed, device=device)
            runs.append({"sigma0": s0, "net": net, "curves": curves, "eval": ev,
                         "bits": ev["kl_bits"] + ev["data_bits"]})
        best = min(runs, key=lambda r: r["bits"])
        test_eval = (evaluate(best["net"], test.x, test.y, samples=eval_samples, seed=seed + 1, device=device)
                     if test is not None else None)
    choice = math.log2(len(grid))
    ev = best["eval"]
    widths = torch.cat([s.detach().flatten().cpu() for layer in bayesian_layers(best["net"])
                        for _, s in layer.posteriors()])
    parts = {"kl_bits": ev["kl_bits"] + choice, "kl_divergence_bits": ev["kl_bits"], "prior_choice_bits": choice,
             "data_bits": ev["data_bits"], "data_bits_se": ev["data_bits_se"],
             "model_bits": ev["kl_bits"] + choice}
    curves = dict(best["curves"])
    curves["grid"] = [{"sigma0": r["sigma0"], "kl_bits": r["eval"]["kl_bits"], "data_bits": r["eval"]["data_bits"],
                       "data_bits_se": r["eval"]["data_bits_se"], "codelength_bits": r["bits"] + choice,
                       "train_accuracy": r["eval"]["accuracy"], "curves": r["curves"]} for r in runs]
    curves["posterior_sigma_quantiles"] = {str(q): float(torch.quantile(widths, q)) for q in (0.1, 0.5, 0.9)}
    return CodeResult(
        code=code, dataset=train.name, model=model, scale=scale, n=train.n, K=train.K,
        codelength_bits=ev["kl_bits"] + choice + ev["data_bits"],
        test_accuracy=None if test_eval is None else test_eval["accuracy"],
        parts=parts, curves=curves,
        params={"sigma0_grid": grid, "sigma0": best["sigma0"], "epochs": epochs, "batch_size": batch_size, "lr": lr,
                "lr_rho": lr_rho, "init_sigma": init_sigma, "eval_samples": eval_samples, "seed": seed,
                "optimizer": "Adam", "n_train": train.n, "n_test": None if test is None else test.n,
                "num_weights": num_weights(best["net"]), "architecture": model,
                "num_threads": used_threads},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note=note or ("bits-back: KL(beta||alpha) + log2|grid| + E_beta[sum -log2 p_theta(y|x)] on the training "
                      "labels; test accuracy with theta sampled from beta"),
    )
