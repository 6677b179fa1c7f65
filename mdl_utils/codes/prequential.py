"""Chapter 6: the prequential code (paper Sec. 3.4, Def. 3, App. D, Algorithm 2).

Alice and Bob agree on a model, a training routine, a seed and timesteps
t_1 < ... < t_S = n (the :class:`Recipe`). The first t_1 labels go with the
uniform code (t_1 log2 K bits). For s = 1..S-1 both train theta_hat(t_s) from
the seed on samples 1..t_s only, and Alice encodes labels t_s+1..t_{s+1} with it:

    L_preq = t_1 log2 K + sum_s sum_{t_s < i <= t_{s+1}} -log2 p_{theta_hat(t_s)}(y_i | x_i).

Causality: early stopping and the optional softmax temperature (forward
calibration, Bornschein, Li & Hutter 2022) use a held-out part of the first t_s
labels only, which Bob has already decoded. The authors' released code stopped
on the encoded block instead; that code is not decodable as stated.

:func:`block_logits` is exactly what a decoder recomputes for a block; the
coder (:mod:`mdl_utils.codes.bytes`) calls it on both sides.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import chapters, checkpoint, data, scales
from ..bits import accuracy, per_sample_bits, uniform_bits
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance, result_path
from ..training import fit, predict_logits, resolve_device, torch_threads, validation_size

CHAPTER = "prequential"
CODE_VERSION = 1  # bump when a change of this module changes the numbers (invalidates checkpoints)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything Alice and Bob agree on for one prequential code besides the data.

    Training of each block's model: training.fit with Adam at ``lr``, mini-batches of ``batch_size``, at most
    ``epochs``, early stopping with ``patience`` on the last ``val_fraction`` of the transmitted labels,
    ``augment`` (random translations and flips, VGGb). ``calibrate``: a softmax temperature in
    ``temperature_range`` fitted on the same held-out labels (when there are at least ``min_calibration``).
    ``record_epochs``: also record each block's bits after every epoch (self-switch; does not change the code).
    """

    model: str
    timesteps: tuple[int, ...]
    epochs: int = 50
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    patience: int = 5
    augment: bool = False
    calibrate: bool = True
    temperature_range: tuple[float, float] = (0.05, 20.0)
    min_calibration: int = 10
    seed: int = 0
    record_epochs: bool = True


@dataclasses.dataclass(frozen=True)
class Settings:
    """The chapter's settings at a scale: samples loaded (n_train, n_test; None = the whole split), ``models`` per
    dataset, and what every :class:`Recipe` gets: max ``epochs`` (``epochs_by_model`` overrides it per model),
    ``patience``, ``batch_size``, ``lr``, ``val_fraction``, ``calibrate``, augmentation for ``augment_models``,
    and the first timestep t_1 (``first_step`` per dataset, else ``first_step_default``; then t_1 2^k, then n).
    ``num_threads``: torch CPU threads during a run (None: unchanged); the bits depend on it."""

    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 50
    patience: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    calibrate: bool = True
    record_epochs: bool = True
    epochs_by_model: dict[str, int] = dataclasses.field(default_factory=dict)
    augment_models: tuple[str, ...] = ("vgg_cifar_bn",)
    first_step: dict[str, int] = dataclasses.field(default_factory=lambda: {"mnist": 8, "cifar10": 10})
    first_step_default: int = 10
    num_threads: int | None = None
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("mlp", "vgg_mnist"), "cifar10": ("mlp", "shallow", "tinycnn", "vgg_cifar", "vgg_cifar_bn"),
        "synthetic": ("logistic", "mlp")})

    def recipe(self, dataset: str, model: str, n: int, seed: int = 0) -> Recipe:
        """The agreed recipe of ``model`` on the first ``n`` samples of ``dataset``."""
        t1 = self.first_step.get(dataset, self.first_step_default)
        return Recipe(model=model, timesteps=tuple(default_timesteps(n, t1)),
                      epochs=self.epochs_by_model.get(model, self.epochs), batch_size=self.batch_size, lr=self.lr,
                      val_fraction=self.val_fraction, patience=self.patience, augment=model in self.augment_models,
                      calibrate=self.calibrate, seed=seed, record_epochs=self.record_epochs)


SCALES = {
    "smoke": dict(n_train=600, n_test=200, epochs=3, patience=2, num_threads=1,
                  models={"mnist": ("mlp",), "cifar10": ("mlp",), "synthetic": ("mlp",)}),
    # epochs_by_model: a smaller cap for the models that are slow on a CPU (stated in each result's params).
    "cpu": dict(epochs=20, patience=3, epochs_by_model={"shallow": 5, "tinycnn": 5}, num_threads=1,
                models={"mnist": ("mlp", "small_cnn"), "cifar10": ("mlp", "shallow", "tinycnn"),
                        "synthetic": ("logistic", "mlp")}),
}


def settings(scale: str) -> Settings:
    return scales.resolve(Settings, SCALES, scale)


def runs(dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    return [(dataset, m) for m in (models or chapters.models_for(dataset, settings(scale).models))]


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None, progress: bool = True) -> CodeResult:
    """The prequential code of ``model`` on ``dataset`` at ``scale``; per-sample bits in ``result.arrays["bits"]``.

    Resumable: an interrupted run restarts after its last finished block (same settings and data only).
    """
    s = settings(scale)
    train = data.load(dataset, "train", root=data_root, n=s.n_train, seed=seed)
    test = data.load(dataset, "test", root=data_root, n=s.n_test, seed=seed)
    ckpt = result_path(CHAPTER, dataset, model, scale, seed=seed)
    ckpt = ckpt.parent / ".partial" / ckpt.name
    with torch_threads(s.num_threads):
        result = prequential_code(train, test, s.recipe(dataset, model, train.n, seed), scale=scale, device=device,
                                  progress=progress, checkpoint_path=ckpt)
    ckpt.unlink(missing_ok=True)
    return result


# ------------------------------------------------------------ Algorithm 2


def default_timesteps(n: int, first: int = 10) -> list[int]:
    """t_1 2^k below n, then n (the paper: t_1 = 8 on MNIST, 10 on CIFAR-10)."""
    steps, t = [], int(first)
    while t < n:
        steps.append(t)
        t *= 2
    return steps + [n]


def check_timesteps(timesteps: Sequence[int], n: int) -> list[int]:
    """Validate t_1 < ... < t_S <= n (integers >= 1); n is appended when t_S < n."""
    try:
        steps = [int(t) for t in timesteps]
    except (TypeError, ValueError):
        raise ValueError(f"timesteps must be a list of integers, got {timesteps!r}") from None
    if not steps or any(int(a) != a for a in timesteps):
        raise ValueError(f"timesteps must be a non-empty list of integers, got {timesteps!r}")
    if steps[0] < 1:
        raise ValueError(f"the first timestep must be >= 1, got {steps[0]}")
    if any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"timesteps must be strictly increasing, got {steps}")
    if steps[-1] > n:
        raise ValueError(f"timesteps go beyond the {n} samples of the dataset (last is {steps[-1]}); "
                         f"drop the ones above n or load more samples")
    return steps if steps[-1] == n else steps + [n]


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, temperature_range=(0.05, 20.0),
                    min_samples: int = 10) -> float:
    """Softmax temperature T minimizing sum -log p(y | logits / T) on held-out labels.

    Golden-section search on log T over ``temperature_range`` (the NLL is unimodal in 1/T); deterministic.
    Returns 1.0 with fewer than ``min_samples`` labels.
    """
    if len(labels) < min_samples:
        return 1.0
    logits = logits.double()

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels, reduction="sum").item()

    a, b = math.log(temperature_range[0]), math.log(temperature_range[1])
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = nll(d)
    return math.exp((a + b) / 2)


def train_block_model(x: torch.Tensor, y_prefix: torch.Tensor, num_classes: int, recipe: Recipe,
                      device: str | torch.device = "auto", on_epoch_end=None):
    """theta_hat(t_s) of Algorithm 2: the model trained from the seed on the first t_s = len(y_prefix) samples.

    It sees the labels ``y_prefix`` only, which Bob has decoded when he needs
    this model: he calls the same function and gets the same weights.
    Returns (model, FitResult).
    """
    t_s = len(y_prefix)
    net = build(recipe.model, tuple(x.shape[1:]), num_classes, seed=recipe.seed)
    fitted = fit(net, x[:t_s], y_prefix, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                 val_fraction=recipe.val_fraction, patience=recipe.patience, augment=recipe.augment,
                 seed=recipe.seed, device=device, on_epoch_end=on_epoch_end)
    return net, fitted


def calibration_temperature(model, x_prefix: torch.Tensor, y_prefix: torch.Tensor, recipe: Recipe,
                            device: str | torch.device = "auto") -> float:
    """Softmax temperature fitted on the held-out (last val_fraction) transmitted labels; 1 without calibration."""
    if not recipe.calibrate:
        return 1.0
    t_s = len(y_prefix)
    n_val = validation_size(t_s, recipe.val_fraction)
    return fit_temperature(predict_logits(model, x_prefix[t_s - n_val:t_s], device), y_prefix[t_s - n_val:],
                           recipe.temperature_range, recipe.min_calibration)


def block_logits(x: torch.Tensor, y_prefix: torch.Tensor, t_next: int, num_classes: int, recipe: Recipe,
                 device: str | torch.device = "auto") -> torch.Tensor:
    """The (calibrated) logits with which labels t_s..t_next-1 are encoded, from the first t_s labels only."""
    net, _ = train_block_model(x, y_prefix, num_classes, recipe, device)
    temperature = calibration_temperature(net, x, y_prefix, recipe, device)
    return predict_logits(net, x[len(y_prefix):t_next], device) / temperature


def encode_block(train: data.Dataset, test: data.Dataset | None, t_s: int, t_next: int, recipe: Recipe,
                 device) -> dict:
    """Train block s's model on labels 1..t_s and encode labels t_s+1..t_next with it: raw and calibrated bits
    per sample, temperature, epochs, accuracies, seconds, and (``record_epochs``) the block's bits after each
    epoch of training (self-switch, App. E.2)."""
    t0 = time.perf_counter()
    x_block, y_block = train.x[t_s:t_next], train.y[t_s:t_next]

    def encode(model):
        temperature = calibration_temperature(model, train.x[:t_s], train.y[:t_s], recipe, device)
        logits = predict_logits(model, x_block, device)
        return logits, per_sample_bits(logits, y_block), per_sample_bits(logits / temperature, y_block), temperature

    epoch_bits: dict[str, list[float]] = {"uncalibrated": [], "calibrated": []}

    def record_epoch(epoch: int, model) -> None:
        _, raw_e, cal_e, _ = encode(model)
        epoch_bits["uncalibrated"].append(float(raw_e.sum()))
        epoch_bits["calibrated"].append(float(cal_e.sum()))

    net, fitted = train_block_model(train.x, train.y[:t_s], train.K, recipe, device,
                                    on_epoch_end=record_epoch if recipe.record_epochs else None)
    logits, raw, cal, temperature = encode(net)
    return {
        "t_start": t_s, "t_end": t_next, "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run,
        "temperature": temperature, "bits_uncalibrated": float(raw.sum()), "bits_calibrated": float(cal.sum()),
        "epoch_bits_uncalibrated": epoch_bits["uncalibrated"], "epoch_bits_calibrated": epoch_bits["calibrated"],
        "block_accuracy": accuracy(logits, y_block),
        "test_accuracy": accuracy(predict_logits(net, test.x, device), test.y) if test is not None else None,
        "train_seconds": fitted.seconds, "seconds": time.perf_counter() - t0,
        "samples_trained": fitted.n_train * fitted.epochs_run,
        "per_sample_uncalibrated": raw.tolist(), "per_sample_calibrated": cal.tolist(),
    }


def prequential_code(train: data.Dataset, test: data.Dataset | None, recipe: Recipe, *, scale: str,
                     device: str = "auto", progress: bool = True, checkpoint_path=None) -> CodeResult:
    """Run Algorithm 2 on ``train`` (in its transmission order); the result holds the per-sample bits.

    ``result.arrays["bits"][i]`` is the codelength of label i: log2 K for i < t_1, then
    -log2 p_{theta_hat(t_s)}(y_i | x_i) of its block's model (calibrated when ``recipe.calibrate``).
    Curves hold one entry per encoded block. A checkpoint file (JSON) is updated after every block; a rerun
    with the same recipe and data resumes after the last finished block.
    """
    device = resolve_device(device)
    recipe = dataclasses.replace(recipe, timesteps=tuple(check_timesteps(recipe.timesteps, train.n)))
    blocks = list(zip(recipe.timesteps[:-1], recipe.timesteps[1:]))
    ckpt = checkpoint.Checkpoint(checkpoint_path, checkpoint.fingerprint(scales.as_params(recipe), train,
                                                                           CODE_VERSION), total=len(blocks))
    with Stopwatch() as sw:
        for t_s, t_next in tqdm(blocks, desc=f"prequential {train.name}/{recipe.model}", disable=not progress):
            if t_s not in ckpt:
                ckpt.add(encode_block(train, test, t_s, t_next, recipe, device))
    return _assemble(train, test, recipe, [ckpt[t] for t, _ in blocks], scale, device, sw)


def _curves(blocks: list[dict], key: str, t1: int, k: int) -> dict:
    first = uniform_bits(t1, k)
    ends = np.array([t1] + [b["t_end"] for b in blocks])
    cum_bits = np.cumsum([first] + [b[f"bits_{key}"] for b in blocks])
    per_block = {name: [b[field] for b in blocks] for name, field in (
        ("t_start", "t_start"), ("t_end", "t_end"), ("bits", f"bits_{key}"), ("block_accuracy", "block_accuracy"),
        ("test_accuracy", "test_accuracy"), ("temperature", "temperature"), ("best_epoch", "best_epoch"),
        ("epochs_run", "epochs_run"), ("epoch_bits", f"epoch_bits_{key}"), ("block_seconds", "seconds"),
        ("samples_trained", "samples_trained"))}
    sizes = [b["t_end"] - b["t_start"] for b in blocks]
    return {**per_block,
            "bits_per_sample": [b[f"bits_{key}"] / m for b, m in zip(blocks, sizes)],
            "bits_per_sample_uncalibrated": [b["bits_uncalibrated"] / m for b, m in zip(blocks, sizes)],
            # cumulative over samples 1..t_end (first point: the uniform block)
            "cum_t": ends.tolist(), "cum_bits": cum_bits.tolist(),
            "cum_minus_uniform": (cum_bits - ends * math.log2(k)).tolist(),
            "cum_ratio": (cum_bits / (ends * math.log2(k))).tolist()}


def _assemble(train, test, recipe: Recipe, blocks, scale, device, sw) -> CodeResult:
    t1, k = recipe.timesteps[0], train.K
    key = "calibrated" if recipe.calibrate else "uncalibrated"
    per_sample = np.concatenate([np.full(t1, math.log2(k))] + [np.asarray(b[f"per_sample_{key}"]) for b in blocks])
    first = uniform_bits(t1, k)
    totals = {m: first + sum(b[f"bits_{m}"] for b in blocks) for m in ("calibrated", "uncalibrated")}
    net = build(recipe.model, tuple(train.x.shape[1:]), k, seed=recipe.seed)
    return CodeResult(
        code="prequential", dataset=train.name, model=recipe.model, scale=scale, n=train.n, K=k, seed=recipe.seed,
        codelength_bits=totals[key], test_accuracy=blocks[-1]["test_accuracy"] if blocks else None,
        parts={"first_block_bits": first, "model_blocks_bits": totals[key] - first,
               "bits_calibrated": totals["calibrated"], "bits_uncalibrated": totals["uncalibrated"]},
        curves=_curves(blocks, key, t1, k),
        params={**scales.as_params(recipe), "num_parameters": num_parameters(net),
                "n_test": test.n if test is not None else 0, "order_seed": train.seed},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source,
                              compute_seconds=round(sum(b["seconds"] for b in blocks), 3)),
        note=("labels sent in a seeded random order; early stopping and temperature use transmitted labels only; "
              f"headline is the {key} code, chosen before seeing the data"),
        arrays={"bits": per_sample},
    )
