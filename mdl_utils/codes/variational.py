"""Chapter 5: the variational (bits-back) code (paper Sec. 3.3, Def. 2, App. C).

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
reparameterization trick (the Bayesian layers of :mod:`mdl_utils.bayesian`,
built by ``models.build(..., bayesian=True)``). The prior width sigma0 is chosen from a grid
agreed in advance; its choice costs log2(len(grid)) bits. The choice is made on
Monte Carlo estimates (``eval_samples`` draws per width); the minimum of noisy
estimates is biased low (by up to about one standard error), so the reported
codelength re-estimates the chosen width with ``final_eval_samples`` fresh
draws, seeded independently of the selection draws (:func:`final_draw_seed`).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .. import data, scales
from ..bayesian import bayesian_layers, fixed_sample, kl_bits, num_weights
from ..bits import LN2
from ..models import build
from ..results import CodeResult, Stopwatch, provenance
from ..training import FitOptions, fit, resolve_device, torch_threads

CHAPTER = "variational"


@dataclasses.dataclass(frozen=True)
class Posterior:
    """How a posterior is trained and evaluated (the variational and fake-labels chapters): ``sigma0_grid``: prior
    widths tried, one training run each, log2(len) bits paid for the choice; ``eval_samples``: draws theta ~ beta
    per width to choose sigma0 (the grid's estimates) and for the test accuracy; ``final_eval_samples``: fresh
    draws, independent of those, for the reported codelength of the chosen width and its standard error;
    posterior widths start at ``init_sigma``; Adam at ``lr`` for the means and ``lr_rho`` for the widths, on
    mini-batches of ``batch_size``; ``num_threads``: torch CPU threads during the run (None: unchanged)."""

    sigma0_grid: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
    eval_samples: int = 32
    final_eval_samples: int = 128
    init_sigma: float = 1e-3
    lr: float = 1e-3
    lr_rho: float = 1e-2
    batch_size: int = 128
    num_threads: int | None = None


@dataclasses.dataclass(frozen=True)
class Settings(Posterior):
    """The chapter's settings: how posteriors are trained (:class:`Posterior`), n_train/n_test: samples loaded
    (None = the whole split), ``epochs`` per dataset, agreed in advance (no early stopping: every label is
    encoded), ``models`` per dataset."""

    n_train: int | None = None
    n_test: int | None = None
    epochs: dict[str, int] = dataclasses.field(default_factory=lambda: {"mnist": 100, "cifar10": 100,
                                                                         "synthetic": 100})
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("mlp", "lenet"), "cifar10": ("mlp", "lenet"), "synthetic": ("mlp",)})

    def epochs_for(self, dataset: str) -> int:
        """Epochs on ``dataset``: its own entry, else that of the dataset with the most epochs."""
        return self.epochs.get(dataset, max(self.epochs.values()))


SCALES = {
    "smoke": dict(n_train=500, n_test=500, epochs={"mnist": 2, "cifar10": 2, "synthetic": 2}, sigma0_grid=(0.05, 0.2),
                  eval_samples=4, final_eval_samples=8, lr_rho=3e-2, num_threads=1),
    "cpu": dict(epochs={"mnist": 4, "cifar10": 2, "synthetic": 5}, sigma0_grid=(0.05, 0.1, 0.2), eval_samples=8,
                final_eval_samples=32, lr_rho=3e-2, num_threads=1),
}


settings = scales.settings_of(Settings, SCALES)


def planned_work(dataset: str, model: str, scale: str, *, data_root=None) -> int:
    """Samples x epochs this run trains at most, over the prior widths (the job runner's hook)."""
    s = settings(scale)
    n = data.train_size(dataset, s.n_train, data_root)
    return n * s.epochs_for(dataset) * len(s.sigma0_grid)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """The variational code of the Bayesian ``model`` on ``dataset``'s training labels at ``scale``."""
    s = settings(scale)
    train, test = data.splits(dataset, s, seed=seed, root=data_root)
    return variational_code(train, test, model, s, epochs=s.epochs_for(dataset), scale=scale, seed=seed,
                            device=device)


# ---------------------------------------------------------------- training


class Objective:
    """The mini-batch loss KL(beta || alpha) / n + mean_i -log2 p_theta(y_i | x_i) (one draw of theta), an
    unbiased per-sample estimate of L_var / n, and the curves of training: per epoch kl_bits (at the end of the
    epoch), data_bits (the sum of the sampled -log2 p over the epoch), total_bits, objective_bits_per_sample,
    train_accuracy (sampled theta), seconds; and ``steps``: about ``points_per_epoch`` points per epoch (epoch as
    a fraction, KL, and n times the mean sampled -log2 p over the mini-batches since the previous point)."""

    def __init__(self, sigma0: float, n: int, batch_size: int, points_per_epoch: int = 10):
        self.sigma0, self.n = sigma0, n
        self.steps_per_epoch = math.ceil(n / batch_size)
        self.every = max(1, self.steps_per_epoch // max(1, points_per_epoch))
        self.curves: dict = {"epoch": [], "kl_bits": [], "data_bits": [], "total_bits": [],
                             "objective_bits_per_sample": [], "train_accuracy": [], "seconds": [],
                             "steps": {"epoch": [], "kl_bits": [], "data_bits": [], "total_bits": []}}
        self.window_bits, self.window_count, self.t0 = 0.0, 0, time.perf_counter()
        self._new_epoch(1)

    def _new_epoch(self, epoch: int) -> None:
        self.epoch, self.step, self.data_bits, self.correct = epoch, 0, 0.0, 0

    def __call__(self, net: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        logits = net(xb)
        bits = F.cross_entropy(logits, yb, reduction="none") / LN2
        kl_step = kl_bits(net, self.sigma0)
        self.step += 1
        batch_bits = float(bits.detach().sum())
        self.data_bits += batch_bits
        self.correct += int((logits.detach().argmax(1) == yb).sum())
        self.window_bits += batch_bits
        self.window_count += len(yb)
        if self.step % self.every == 0 or self.step == self.steps_per_epoch:
            kl_now, est = float(kl_step.detach()), self.window_bits / self.window_count * self.n
            for key, value in (("epoch", self.epoch - 1 + self.step / self.steps_per_epoch), ("kl_bits", kl_now),
                               ("data_bits", est), ("total_bits", kl_now + est)):
                self.curves["steps"][key].append(value)
            self.window_bits, self.window_count = 0.0, 0
        return bits.mean() + kl_step / self.n

    def end_epoch(self, epoch: int, net: nn.Module) -> None:
        """training.fit's on_epoch_end: the epoch's curves (nothing for epoch 0, before training)."""
        if epoch == 0:
            return
        with torch.no_grad():
            kl = float(kl_bits(net, self.sigma0))
        for key, value in (("epoch", epoch), ("kl_bits", kl), ("data_bits", self.data_bits),
                           ("total_bits", kl + self.data_bits), ("objective_bits_per_sample",
                                                                  (kl + self.data_bits) / self.n),
                           ("train_accuracy", self.correct / self.n), ("seconds", time.perf_counter() - self.t0)):
            self.curves[key].append(value)
        self._new_epoch(epoch + 1)


def fit_posterior(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma0: float, epochs: int,
                  batch_size: int = 128, lr: float = 1e-3, lr_rho: float = 3e-2, seed: int = 0,
                  device: str | torch.device = "cpu", progress: bool | str = False) -> dict:
    """Minimize the variational codelength KL(beta || alpha) + E_beta[sum_i -log2 p_theta(y_i | x_i)] with Adam
    (means at ``lr``, widths rho at ``lr_rho``) through training.fit, every label in training (no early
    stopping). Returns the curves of :class:`Objective`."""
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    if len(y) == 0:
        raise ValueError("no training labels given")
    objective = Objective(sigma0, len(y), batch_size)
    groups = [{"params": [p for name, p in net.named_parameters() if not name.endswith("_rho")], "lr": lr},
              {"params": [p for name, p in net.named_parameters() if name.endswith("_rho")], "lr": lr_rho}]
    options = FitOptions(epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=0.0, patience=None)
    fit(net, x, y, options, seed=seed, device=device, progress=progress, on_epoch_end=objective.end_epoch,
        loss=objective, param_groups=groups)
    return objective.curves


@torch.no_grad()
def evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, *, sigma0: float | None = None, samples: int = 8,
             seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 4096) -> dict:
    """Monte Carlo estimate of E_beta[sum_i -log2 p_theta(y_i | x_i)] with ``samples`` draws theta ~ beta.

    Each draw is one parameter vector used for all the inputs (as the paper measures test accuracy);
    returns data_bits (mean over draws), data_bits_se (standard error of that mean), the per-draw sums,
    accuracy (mean over draws), and kl_bits when ``sigma0`` is given.
    """
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
                total += float((F.cross_entropy(logits, yb, reduction="none") / LN2).sum())
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

FINAL_DRAWS = 1  # stream tag of the final re-estimate (the selection draws are seeded by the run's seed alone)


def final_draw_seed(seed: int) -> int:
    """Seed of the final re-estimate's draws: derived from (seed, FINAL_DRAWS) by numpy's SeedSequence, so that
    its stream is independent of the selection draws (seeded by ``seed``) and of the test draws (``seed + 1``)."""
    return int(np.random.SeedSequence([int(seed), FINAL_DRAWS]).generate_state(1)[0])


def train_grid(train: data.Dataset, model: str, s: Settings, *, epochs: int, seed: int, device,
               progress: bool) -> list[dict]:
    """One posterior per sigma0 of the grid, trained from the same seed, with its codelength estimated on the
    whole training set (``eval_samples`` draws): KL + E_beta[sum -log2 p]. These estimates choose sigma0."""
    out = []
    for k, s0 in enumerate(s.sigma0_grid):
        net = build(model, tuple(train.x.shape[1:]), train.K, seed=seed, bayesian=True, init_sigma=s.init_sigma)
        label = f"{train.name} {model} sigma0={s0:g} ({k + 1}/{len(s.sigma0_grid)})"
        curves = fit_posterior(net, train.x, train.y, sigma0=s0, epochs=epochs, batch_size=s.batch_size, lr=s.lr,
                               lr_rho=s.lr_rho, seed=seed, device=device, progress=label if progress else False)
        ev = evaluate(net, train.x, train.y, sigma0=s0, samples=s.eval_samples, seed=seed, device=device)
        out.append({"sigma0": s0, "net": net, "curves": curves, "eval": ev, "bits": ev["kl_bits"] + ev["data_bits"]})
    return out


def variational_code(train: data.Dataset, test: data.Dataset | None, model: str, s: Settings, *, epochs: int,
                     scale: str, seed: int = 0, device: str = "auto", progress: bool = True,
                     note: str = "") -> CodeResult:
    """The variational code of ``train``'s labels as a CodeResult (Sec. 3.3, App. C).

    For each sigma0 of the grid (agreed in advance) a posterior is trained for ``epochs`` epochs from the same
    seed; the shortest estimate chooses sigma0 and log2(len(grid)) bits pay for the choice. The reported
    L = KL + log2|grid| + E_beta[L_theta] estimates E_beta anew for the chosen posterior, with
    ``final_eval_samples`` draws independent of the selection's (the minimum of the selection estimates is
    optimistic). Test accuracy: mean over draws theta ~ beta (as the paper).
    """
    grid = [float(x) for x in s.sigma0_grid]
    if not grid or any(not x > 0 for x in grid) or len(set(grid)) != len(grid):
        raise ValueError(f"sigma0_grid must be a non-empty list of distinct positive prior widths, got {grid!r}")
    device = resolve_device(device)
    with Stopwatch() as sw, torch_threads(s.num_threads):
        used_threads = torch.get_num_threads()
        runs_ = train_grid(train, model, s, epochs=epochs, seed=seed, device=device, progress=progress)
        best = min(runs_, key=lambda r: r["bits"])
        final = evaluate(best["net"], train.x, train.y, sigma0=best["sigma0"], samples=s.final_eval_samples,
                         seed=final_draw_seed(seed), device=device)
        test_eval = (evaluate(best["net"], test.x, test.y, samples=s.eval_samples, seed=seed + 1, device=device)
                     if test is not None else None)
    return _result(train, test, model, s, runs_, best, final, test_eval, epochs=epochs, scale=scale, seed=seed,
                   threads=used_threads, device=device, sw=sw, note=note)


def _curves(runs_: list[dict], best: dict, final: dict, s: Settings, seed: int) -> dict:
    """The chosen run's training curves, the grid's selection estimates, the final re-estimate (its draws) and
    quantiles of the chosen posterior's widths."""
    choice = math.log2(len(s.sigma0_grid))
    widths = torch.cat([sig.detach().flatten().cpu() for layer in bayesian_layers(best["net"])
                        for _, sig in layer.posteriors()])
    curves = dict(best["curves"])
    curves["grid"] = [{"sigma0": r["sigma0"], "kl_bits": r["eval"]["kl_bits"], "data_bits": r["eval"]["data_bits"],
                       "data_bits_se": r["eval"]["data_bits_se"], "codelength_bits": r["bits"] + choice,
                       "train_accuracy": r["eval"]["accuracy"], "curves": r["curves"]} for r in runs_]
    curves["final_eval"] = {"sigma0": best["sigma0"], "samples": s.final_eval_samples, "seed": final_draw_seed(seed),
                            "data_bits": final["data_bits"], "data_bits_se": final["data_bits_se"],
                            "data_bits_draws": final["data_bits_draws"]}
    curves["posterior_sigma_quantiles"] = {str(q): float(torch.quantile(widths, q)) for q in (0.1, 0.5, 0.9)}
    return curves


def _result(train, test, model, s, runs_, best, final, test_eval, *, epochs, scale, seed, threads, device, sw,
            note) -> CodeResult:
    choice, kl = math.log2(len(s.sigma0_grid)), final["kl_bits"]
    selected = best["bits"] + choice
    return CodeResult(
        code="variational", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K, seed=seed,
        codelength_bits=kl + choice + final["data_bits"],
        test_accuracy=None if test_eval is None else test_eval["accuracy"],
        parts={"kl_bits": kl + choice, "kl_divergence_bits": kl, "prior_choice_bits": choice,
               "data_bits": final["data_bits"], "data_bits_se": final["data_bits_se"], "model_bits": kl + choice,
               "selection_codelength_bits": selected},
        curves=_curves(runs_, best, final, s, seed),
        params={**scales.as_params(s), "epochs": epochs, "sigma0": best["sigma0"], "seed": seed, "optimizer": "Adam",
                "n_train": train.n, "n_test": None if test is None else test.n, "num_weights": num_weights(best["net"]),
                "architecture": model, "num_threads": threads,
                "reported_estimate": f"{s.final_eval_samples} fresh draws for the chosen sigma0 (seed "
                                     f"{final_draw_seed(seed)}), independent of the {s.eval_samples} per width "
                                     f"that chose it"},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note=note or ("bits-back: KL(beta||alpha) + log2|grid| + E_beta[sum -log2 p_theta(y|x)] on the training "
                      f"labels; sigma0 chosen on {s.eval_samples} draws per width (curves.grid), the reported "
                      f"E_beta re-estimated on {s.final_eval_samples} fresh draws (curves.final_eval; the "
                      "selection's own estimate, parts.selection_codelength_bits, is biased low); test accuracy "
                      "with theta sampled from beta"),
    )
