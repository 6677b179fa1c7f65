"""Algorithm 2 of the paper (Sec. 3.4, Def. 3, App. D): the prequential code, cold or warm, block by block.

Alice and Bob agree on a model, a training routine, a seed and timesteps
t_1 < ... < t_S = n (the :class:`Recipe`). The first t_1 labels go with the
uniform code (t_1 log2 K bits). For s = 1..S-1 both train theta_hat(t_s) on
samples 1..t_s only, and Alice encodes labels t_s+1..t_{s+1} with it:

    L_preq = t_1 log2 K + sum_s sum_{t_s < i <= t_{s+1}} -log2 p_{theta_hat(t_s)}(y_i | x_i).

Algorithm 2 as the paper states it trains each theta_hat(t_s) from the seed
(a *cold* recipe, the default). A *warm* recipe (``Recipe.warm_start``)
continues from block s-1's final weights, trained again on all t_s transmitted
labels (replay), as in Bornschein, Li & Hutter (2022): Bob replays the same
chain of models, so the code stays decodable.

Causality: early stopping and the optional softmax temperature (forward
calibration, Bornschein, Li & Hutter 2022) use a held-out part of the first t_s
labels only, which Bob has already decoded.

:class:`Chain` is exactly what a decoder recomputes block after block; the file
codes (:mod:`mdl_utils.codes.files`) run it on both sides. The chapter (its
named recipes, settings and scales) is :mod:`mdl_utils.codes.prequential`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import checkpoint, data, scales
from ..bits import accuracy, per_sample_bits, total, uniform_bits
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance
from .calibration import fit_temperature, hedged_bits, label_probabilities
from ..tta import check as check_tta, mixture, predictor as tta_predictor
from ..training import (SCHEDULES, Augmentation, FitOptions, FitResult, fill_value, fit, precision, predict_logits,
                        resolve_device, validation_size)

CHAPTER = "prequential"


WARM_SEED_STRIDE = 100_003  # warm chains train block s with seed * WARM_SEED_STRIDE + s


@dataclasses.dataclass(frozen=True)
class Recipe:
    """Everything Alice and Bob agree on for one prequential code besides the data.

    Training of each block's model: training.fit with Adam at ``lr``, mini-batches of ``batch_size``, at most
    ``epochs`` (and ``max_steps`` optimizer steps when set), at least ``min_steps`` steps, the learning rate of
    ``schedule`` ("constant" or "cosine", over the block's planned steps), an evaluation on the last
    ``val_fraction`` of the transmitted labels every ``eval_every`` steps (None: every epoch), early stopping
    after ``patience`` evaluations without improvement (None: never), and with ``restore_best`` the best
    evaluated weights restored (``eval_at_start``: the block's starting weights compete too). ``augment``:
    random translations by up to ``augment_shift`` pixels (padding ``augment_fill``: "zero" or "min") and, with
    ``augment_flip``, horizontal flips (VGGb). ``warm_start``: block s starts from block s-1's final weights
    (and, with ``carry_optimizer``, Adam's state) instead of the seed's initialization, and trains again on all
    transmitted labels. ``channels_last``: images and convolutions in NHWC memory layout; ``bf16``: training
    steps under bfloat16 autocast (both faster on CPUs; other kernels, so other bits); ``tf32``: TensorFloat-32
    kernels on CUDA (no effect on the CPU). ``uniform_below``: the
    blocks after fewer than that many labels are sent with the uniform code too (no model trained: the
    timesteps stay those of the other runs, for the switch code). ``calibrate``: a softmax temperature in
    ``temperature_range`` fitted on the held-out labels (when there are at least ``min_calibration``), its
    prediction hedged with the raw one label by label (:mod:`mdl_utils.codes.calibration`).
    ``record_epochs``: also record each block's bits after every evaluation (self-switch; does not change the
    code). ``tta``: each block's predictions averaged over fixed views of the images (test-time augmentation,
    :mod:`mdl_utils.tta`: "none", "flip", "shift1", "flip_shift1"), the temperature fitted on those averages.
    ``members``: that many chains of the recipe side by side, member m from seed + m, each block predicted by
    the average of their predictions (:class:`Ensemble`). ``ema``: each block evaluated, kept and ended on an
    exponential moving average of its weights over its steps, of that decay (:class:`training.WeightAverage`;
    0: off); a warm chain continues from the averaged weights.
    The defaults are Algorithm 2 as the paper runs it: cold, per-epoch early stopping, best epoch restored,
    constant learning rate, float32.
    """

    model: str
    timesteps: tuple[int, ...]
    epochs: int | None = 50
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    patience: int | None = 5
    augment: bool = False
    calibrate: bool = True
    temperature_range: tuple[float, float] = (0.05, 20.0)
    min_calibration: int = 10
    seed: int = 0
    record_epochs: bool = True
    warm_start: bool = False
    carry_optimizer: bool = False
    min_steps: int = 0
    max_steps: int | None = None
    eval_every: int | None = None
    schedule: str = "constant"
    restore_best: bool = True
    eval_at_start: bool = False
    augment_shift: int = 4
    augment_flip: bool = True
    augment_fill: str = "zero"
    channels_last: bool = False
    bf16: bool = False
    tf32: bool = False
    uniform_below: int = 0
    tta: str = dataclasses.field(default="none", metadata={"omit_default": True})  # absent from older params
    members: int = dataclasses.field(default=1, metadata={"omit_default": True})
    ema: float = dataclasses.field(default=0.0, metadata={"omit_default": True})

    def __post_init__(self):
        for name in ("timesteps", "temperature_range"):  # JSON gives lists
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose one of {', '.join(SCHEDULES)}")
        check_tta(self.tta)
        if self.members < 1 or self.members > 1 and self.record_epochs:
            raise ValueError(f"members={self.members}: an ensemble needs at least 1 member, and records no epochs "
                             "(set record_epochs=False)")
        if self.carry_optimizer and not self.warm_start:
            raise ValueError("carry_optimizer needs warm_start=True (a cold block has no optimizer to continue)")

    def fit_options(self) -> FitOptions:
        """How training.fit trains every block (the seed, the optimizer and the hooks apart)."""
        augment = self.augment and Augmentation(self.augment_shift, self.augment_flip, self.augment_fill)
        return FitOptions(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, val_fraction=self.val_fraction,
                          patience=self.patience, augment=augment, min_steps=self.min_steps, max_steps=self.max_steps,
                          eval_every=self.eval_every, schedule=self.schedule, restore_best=self.restore_best,
                          eval_at_start=self.eval_at_start, bf16=self.bf16, tf32=self.tf32, ema=self.ema)


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


def block_seed(recipe: Recipe, s: int) -> int:
    """The training seed of block s (s = 1 trains on t_1 labels): the recipe's seed for cold recipes (every block
    from the same start), seed * WARM_SEED_STRIDE + s for warm chains (fresh mini-batch orders and dropout)."""
    return recipe.seed * WARM_SEED_STRIDE + s if recipe.warm_start else recipe.seed


def calibration_temperature(model, x_prefix: torch.Tensor, y_prefix: torch.Tensor, recipe: Recipe,
                            device: str | torch.device = "auto") -> float:
    """Softmax temperature fitted on the held-out (last val_fraction) transmitted labels; 1 without calibration."""
    if not recipe.calibrate:
        return 1.0
    t_s = len(y_prefix)
    n_val = validation_size(t_s, recipe.val_fraction)
    return fit_temperature(predict_logits(model, x_prefix[t_s - n_val:t_s], device), y_prefix[t_s - n_val:],
                           recipe.temperature_range, recipe.min_calibration)


def encoding(model, x: torch.Tensor, y_prefix: torch.Tensor, t_next: int, recipe: Recipe,
             device: str | torch.device = "auto") -> tuple[torch.Tensor, float]:
    """(raw logits of samples t_s..t_next-1, temperature) of ``model`` for the block after t_s = len(y_prefix)
    labels; the block is encoded with softmax(logits / temperature)."""
    temperature = calibration_temperature(model, x, y_prefix, recipe, device)
    return predict_logits(model, x[len(y_prefix):t_next], device), temperature


class UniformModel(torch.nn.Module):
    """Zero logits, p = 1/K for every input: the model of a block a recipe sends uniformly (``uniform_below``)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros((len(x), self.num_classes))


class Chain:
    """The block models of one prequential :class:`Recipe` on inputs ``x``: what Alice and Bob both run.

    ``next_block(y_prefix, t_next)`` trains block s's model on the labels ``y_prefix`` = y_1..y_{t_s} only and
    returns the calibrated logits of samples t_s..t_next-1 (softmax of them encodes labels t_s+1..t_next).
    A cold recipe trains every block from the seed (any t_s). A warm recipe continues from the previous
    block's model (and optimizer state with ``carry_optimizer``), so its blocks come in the order of the
    recipe's timesteps; :meth:`state` / :meth:`load_state` save and restore the chain between blocks.
    Bob, with the labels decoded so far, gets Alice's logits bit for bit (same torch build, device, threads).
    """

    def __init__(self, x: torch.Tensor, num_classes: int, recipe: Recipe, device: str | torch.device = "auto"):
        recipe = dataclasses.replace(recipe, timesteps=tuple(check_timesteps(recipe.timesteps, len(x))))
        self.K, self.recipe, self.device = int(num_classes), recipe, resolve_device(device)
        self.x = self.inputs(x)
        self.model: torch.nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.trained = 0  # blocks trained so far
        self.temperature = 1.0

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the chain's memory layout (NHWC images with ``channels_last``)."""
        return x.contiguous(memory_format=torch.channels_last) if self.recipe.channels_last and x.dim() == 4 else x

    def new_model(self) -> torch.nn.Module:
        """Block 1's starting point (every block's, cold): the architecture initialized from the seed."""
        net = build(self.recipe.model, tuple(self.x.shape[1:]), self.K, seed=self.recipe.seed)
        return net.to(memory_format=torch.channels_last) if self.recipe.channels_last else net

    def predictor(self, model: torch.nn.Module) -> torch.nn.Module:
        """What predicts the block's labels with ``model``: the model, or its prediction averaged over the recipe's
        test-time views (:mod:`mdl_utils.tta`; the pixels a shift brings in are the training's augmentation fill)."""
        if isinstance(model, UniformModel):
            return model
        return tta_predictor(model, self.recipe.tta, fill_value(self.recipe.augment_fill, self.x))

    def block_index(self, t_s: int) -> int:
        """s of the block trained on the first t_s labels (t_s = t_s of the recipe's timesteps)."""
        steps = list(self.recipe.timesteps)
        if t_s not in steps[:-1]:
            raise ValueError(f"a warm chain trains on the recipe's timesteps {steps[:-1]}, not on {t_s} labels")
        return steps.index(t_s) + 1

    def train(self, y_prefix: torch.Tensor, on_epoch_end: Callable | None = None) -> FitResult:
        """Train the model of the block after t_s = len(y_prefix) labels on all of them (then the temperature
        on the held-out ones); ``on_epoch_end(e, model)`` as in training.fit. Returns fit's FitResult."""
        r, y_prefix = self.recipe, torch.as_tensor(y_prefix)
        s = self.block_index(len(y_prefix)) if r.warm_start else self.trained + 1
        if r.warm_start and s != self.trained + 1:
            raise ValueError(f"a warm chain trains its blocks in order: block {self.trained + 1} is next, not block "
                             f"{s} (t_s = {len(y_prefix)}); replay the blocks before it or load_state() a saved one")
        if len(y_prefix) < r.uniform_below:
            return self._uniform_block(s, on_epoch_end)
        if self.model is None or not r.warm_start or isinstance(self.model, UniformModel):
            self.model, self.optimizer = self.new_model(), None
        fitted = fit(self.model, self.x[:len(y_prefix)], y_prefix, r.fit_options(), seed=block_seed(r, s),
                     device=self.device, on_epoch_end=on_epoch_end, optimizer=self.optimizer)
        self.optimizer = fitted.optimizer if r.carry_optimizer else None
        self.trained = s
        self.temperature = calibration_temperature(self.predictor(self.model), self.x, y_prefix, r, self.device)
        return fitted

    def _uniform_block(self, s: int, on_epoch_end: Callable | None) -> FitResult:
        """Block s sent uniformly (t_s < ``uniform_below``): no training; a warm chain starts at the next block."""
        self.model, self.optimizer, self.trained, self.temperature = UniformModel(self.K), None, s, 1.0
        if on_epoch_end:
            on_epoch_end(0, self.model)
        return FitResult(best_epoch=0, epochs_run=0, history={"train_loss": [], "val_loss": [], "val_accuracy": []},
                         seconds=0.0, n_train=0, n_val=0)

    def logits(self, start: int, end: int, calibrated: bool = True) -> torch.Tensor:
        """The current model's logits of samples start..end-1 (divided by the block's temperature)."""
        z = predict_logits(self.predictor(self.model), self.x[start:end], self.device)
        return z / self.temperature if calibrated else z

    def next_block_raw(self, y_prefix: torch.Tensor, t_next: int) -> tuple[torch.Tensor, float]:
        """(raw logits of samples t_s..t_next-1, the block's temperature) from the labels ``y_prefix``: what the
        hedged code mixes (softmax(z / T) and softmax(z), :mod:`mdl_utils.codes.calibration`)."""
        self.train(torch.as_tensor(y_prefix))
        return self.logits(len(y_prefix), t_next, calibrated=False), self.temperature

    def next_block(self, y_prefix: torch.Tensor, t_next: int, per_epoch: bool = False):
        """Calibrated logits of samples t_s..t_next-1 from the labels ``y_prefix`` (t_s = len(y_prefix));
        ``per_epoch``: the list of them after each evaluation e = 0..E_s of the training (self-switch, App. E.2),
        each with its own temperature."""
        y_prefix = torch.as_tensor(y_prefix)
        if not per_epoch:
            self.train(y_prefix)
            return self.logits(len(y_prefix), t_next)
        out: list[torch.Tensor] = []

        def record(epoch: int, model) -> None:
            z, temperature = encoding(self.predictor(model), self.x, y_prefix, t_next, self.recipe, self.device)
            out.append(z / temperature)

        self.train(y_prefix, on_epoch_end=record)
        return out

    def state(self) -> dict[str, Any]:
        """What the next block needs from this chain (model and optimizer states), for :meth:`load_state`."""
        return {"trained": self.trained, "temperature": self.temperature,
                "model": None if self.model is None or isinstance(self.model, UniformModel)
                else self.model.state_dict(),
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue the chain from a :meth:`state` (a warm chain resumed from a checkpoint)."""
        r = self.recipe
        self.trained, self.temperature, self.model, self.optimizer = state["trained"], state["temperature"], None, None
        if state["model"] is not None:
            self.model = self.new_model().to(self.device)
            self.model.load_state_dict(state["model"])
        if state["optimizer"] is not None:
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=r.lr)
            self.optimizer.load_state_dict(state["optimizer"])


class Ensemble:
    """The ``members`` chains of a recipe trained side by side, member m from seed + m (its own initialization and
    mini-batch orders; member 0 is the recipe's single chain), each block predicted by the average of their
    predictions (:func:`mdl_utils.tta.mixture`), the temperature fitted on that average. Bob trains the same
    members: an ensemble, not a switch. The same interface as :class:`Chain` (no epoch records)."""

    def __init__(self, x: torch.Tensor, num_classes: int, recipe: Recipe, device: str | torch.device = "auto"):
        plain = dataclasses.replace(recipe, members=1, calibrate=False)
        self.members = [Chain(x, num_classes, dataclasses.replace(plain, seed=recipe.seed + m), device)
                        for m in range(recipe.members)]
        first = self.members[0]
        self.K, self.device, self.x, self.inputs = first.K, first.device, first.x, first.inputs
        self.recipe, self.temperature = dataclasses.replace(recipe, timesteps=first.recipe.timesteps), 1.0

    @property
    def trained(self) -> int:
        return self.members[0].trained

    @property
    def model(self) -> torch.nn.Module:
        """The members' averaged prediction (uniform while every member's block is sent uniformly)."""
        nets = [c.predictor(c.model) for c in self.members]
        return nets[0] if isinstance(nets[0], UniformModel) else mixture(nets)

    def predictor(self, model: torch.nn.Module) -> torch.nn.Module:
        return model  # the members' own views are in :attr:`model`

    def train(self, y_prefix: torch.Tensor, on_epoch_end: Callable | None = None) -> FitResult:
        """Train every member on the labels ``y_prefix``, then the temperature of their average; fit's FitResult of
        member 0 with the members' seconds, steps and samples summed."""
        if on_epoch_end is not None:
            raise ValueError("an ensemble records no epochs: its recipe needs record_epochs=False")
        fits = [c.train(y_prefix) for c in self.members]
        self.temperature = calibration_temperature(self.model, self.x, torch.as_tensor(y_prefix), self.recipe,
                                                   self.device)
        return dataclasses.replace(fits[0], seconds=sum(f.seconds for f in fits),
                                   steps_run=sum(f.steps_run for f in fits),
                                   samples_trained=sum(f.samples_trained for f in fits))

    logits, next_block_raw, next_block = Chain.logits, Chain.next_block_raw, Chain.next_block

    def state(self) -> dict[str, Any]:
        return {"trained": self.trained, "temperature": self.temperature, "members": [c.state() for c in self.members]}

    def load_state(self, state: dict[str, Any]) -> None:
        for c, member in zip(self.members, state["members"]):
            c.load_state(member)
        self.temperature = state["temperature"]


def chain_for(x: torch.Tensor, num_classes: int, recipe: Recipe, device: str | torch.device = "auto"
              ) -> Chain | Ensemble:
    """The chain a recipe trains: an :class:`Ensemble` of its ``members`` when there are several."""
    return (Ensemble if recipe.members > 1 else Chain)(x, num_classes, recipe, device)


def encode_block(train: data.Dataset, test: data.Dataset | None, t_s: int, t_next: int, recipe: Recipe,
                 device, chain: Chain | Ensemble | None = None) -> dict:
    """Train block s's model on labels 1..t_s (``chain``: continue that chain; default: a new one, which a warm
    recipe allows for its first block only) and encode labels t_s+1..t_next with it: the raw and the
    temperature-scaled bits per sample and the labels' probabilities under both (the hedge between them runs
    over all blocks: :func:`_assemble`), temperature, evaluations and steps, accuracies, seconds, and
    (``record_epochs``) the block's bits after each evaluation of training (self-switch, App. E.2)."""
    t0, c0 = time.perf_counter(), time.process_time()
    chain = chain or chain_for(train.x, train.K, recipe, device)
    y_prefix, y_block = train.y[:t_s], train.y[t_s:t_next]
    epoch_bits: dict[str, list[float]] = {"uncalibrated": [], "temperature": []}

    def record_epoch(epoch: int, model) -> None:
        z, temperature = encoding(chain.predictor(model), chain.x, y_prefix, t_next, recipe, device)
        epoch_bits["uncalibrated"].append(total(per_sample_bits(z, y_block)))
        epoch_bits["temperature"].append(total(per_sample_bits(z / temperature, y_block)))

    fitted = chain.train(y_prefix, on_epoch_end=record_epoch if recipe.record_epochs else None)
    logits = chain.logits(t_s, t_next, calibrated=False)
    raw, scaled = per_sample_bits(logits, y_block), per_sample_bits(logits / chain.temperature, y_block)
    p_temperature, p_raw = label_probabilities(logits, chain.temperature, y_block)
    return {
        "t_start": t_s, "t_end": t_next, "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run,
        "steps_run": fitted.steps_run, "best_step": fitted.best_step,
        "temperature": chain.temperature, "bits_uncalibrated": total(raw), "bits_temperature": total(scaled),
        "epoch_bits_uncalibrated": epoch_bits["uncalibrated"], "epoch_bits_temperature": epoch_bits["temperature"],
        "block_accuracy": accuracy(logits, y_block),
        "test_accuracy": (accuracy(predict_logits(chain.predictor(chain.model), chain.inputs(test.x), device), test.y)
                          if test is not None else None),
        "train_seconds": fitted.seconds, "seconds": time.perf_counter() - t0,
        "cpu_seconds": time.process_time() - c0,
        "samples_trained": fitted.samples_trained,
        "per_sample_uncalibrated": raw.tolist(), "per_sample_temperature": scaled.tolist(),
        "p_temperature": p_temperature.tolist(), "p_raw": p_raw.tolist(),
    }


def prequential_code(train: data.Dataset, test: data.Dataset | None, recipe: Recipe, *, scale: str,
                     device: str = "auto", progress: bool = True, checkpoint_path=None,
                     name: str | None = None, on_block: Callable | None = None) -> CodeResult:
    """Run Algorithm 2 (cold or warm recipe) on ``train`` (in its transmission order) as run ``name`` (default:
    the architecture); the result holds the per-sample bits.

    ``result.arrays["bits"][i]`` is the codelength of label i: log2 K for i < t_1, then
    -log2 p_{theta_hat(t_s)}(y_i | x_i) of its block's model (calibrated when ``recipe.calibrate``).
    Curves hold one entry per encoded block. A checkpoint file (JSON) is updated after every block, and for a
    warm chain the model state after it (:func:`chain_state_files`); a rerun with the same recipe and data
    resumes after the last finished block, bit for bit. ``on_block(unit, done, total)``: after each block (its
    record as :func:`encode_block` returns it, blocks finished so far, blocks in all).
    """
    device = resolve_device(device)
    recipe = dataclasses.replace(recipe, timesteps=tuple(check_timesteps(recipe.timesteps, train.n)))
    blocks = list(zip(recipe.timesteps[:-1], recipe.timesteps[1:]))
    label = f"{train.name}/{name or recipe.model}"
    ckpt = checkpoint.Checkpoint(checkpoint_path, checkpoint.fingerprint(scales.as_params(recipe), train,
                                                                           device), total=len(blocks),
                                 label=label)
    chain = chain_for(train.x, train.K, recipe, device)
    todo = _resume(chain, blocks, ckpt) if recipe.warm_start else [b for b in blocks if b[0] not in ckpt]
    with Stopwatch() as sw:
        for t_s, t_next in tqdm(todo, desc=f"prequential {label}", disable=not progress):
            unit = encode_block(train, test, t_s, t_next, recipe, device, chain=chain)
            if recipe.warm_start:
                _save_chain_state(ckpt, t_s, chain)
            ckpt.add(unit)
            for old in chain_state_files(ckpt.path, before=t_s):
                old.unlink(missing_ok=True)
            if on_block:
                on_block(unit, sum(t in ckpt for t, _ in blocks), len(blocks))
    return _assemble(train, test, recipe, [ckpt[t] for t, _ in blocks], scale, device, sw, name)


def chain_state_files(checkpoint_path, before: int | None = None) -> list[Path]:
    """The saved warm-chain states beside a checkpoint file (``<stem>.chain-<t_s>.pt``: the chain after the
    block trained on t_s labels), those of blocks before t_s = ``before`` only when given."""
    if checkpoint_path is None:
        return []
    path = Path(checkpoint_path)
    found = {int(p.name.rsplit("-", 1)[1][:-3]): p for p in path.parent.glob(f"{path.stem}.chain-*.pt")}
    return [p for t, p in sorted(found.items()) if before is None or t < before]


def _state_file(ckpt: checkpoint.Checkpoint, t_s: int) -> Path:
    return ckpt.path.with_name(f"{ckpt.path.stem}.chain-{t_s}.pt")


def _save_chain_state(ckpt: checkpoint.Checkpoint, t_s: int, chain: Chain) -> None:
    """Write the chain's state after block t_s beside the checkpoint (atomically, with its fingerprint)."""
    if ckpt.path is None:
        return
    path = _state_file(ckpt, t_s)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"fingerprint": ckpt.fingerprint, "t_start": t_s, **chain.state()}, tmp)
    os.replace(tmp, path)


def _resume(chain: Chain, blocks: list[tuple[int, int]], ckpt: checkpoint.Checkpoint) -> list[tuple[int, int]]:
    """The blocks a warm chain still has to encode: those after the last finished one when the chain's state
    after it is saved with the same fingerprint (loaded into ``chain``), else all of them (a replay)."""
    first = next((i for i, (t_s, _) in enumerate(blocks) if t_s not in ckpt), len(blocks))
    if first == 0 or first == len(blocks):
        return blocks[first:]
    path = _state_file(ckpt, blocks[first - 1][0]) if ckpt.path is not None else None
    state = torch.load(path, weights_only=False) if path is not None and path.is_file() else None
    if state is None or state.get("fingerprint") != ckpt.fingerprint:
        print(f"no saved model state after block {first} of {ckpt.label}; replaying the chain from its first block")
        return blocks
    chain.load_state(state)
    return blocks[first:]


EPOCH_BITS = {"calibrated": "temperature", "uncalibrated": "uncalibrated"}  # self-switch: no hedge per epoch


def _curves(blocks: list[dict], per_sample: dict[str, np.ndarray], key: str, weights: np.ndarray, t1: int,
            k: int) -> dict:
    """One entry per encoded block (its bits under the headline code ``key``, those per sample raw and with the
    temperature alone, the calibrated prediction's weight at its first label, ...), and the cumulative curves."""
    sizes = [b["t_end"] - b["t_start"] for b in blocks]
    bits = {m: [total(a[b["t_start"]:b["t_end"]]) for b in blocks] for m, a in per_sample.items()}
    ends = np.array([t1] + [b["t_end"] for b in blocks])
    cum_bits = np.cumsum([uniform_bits(t1, k)] + bits[key])
    per_block = {name: [b[field] for b in blocks] for name, field in (
        ("t_start", "t_start"), ("t_end", "t_end"), ("block_accuracy", "block_accuracy"),
        ("test_accuracy", "test_accuracy"), ("temperature", "temperature"), ("best_epoch", "best_epoch"),
        ("epochs_run", "epochs_run"), ("epoch_bits", f"epoch_bits_{EPOCH_BITS[key]}"), ("block_seconds", "seconds"),
        ("samples_trained", "samples_trained"), ("steps_run", "steps_run"), ("block_cpu_seconds", "cpu_seconds"))}
    return {**per_block, "bits": bits[key],
            "bits_per_sample": [b / m for b, m in zip(bits[key], sizes)],
            "bits_per_sample_uncalibrated": [b / m for b, m in zip(bits["uncalibrated"], sizes)],
            "bits_per_sample_temperature": [b / m for b, m in zip(bits["temperature"], sizes)],
            "calibration_weight": [float(weights[b["t_start"]]) for b in blocks],
            # cumulative over samples 1..t_end (first point: the uniform block)
            "cum_t": ends.tolist(), "cum_bits": cum_bits.tolist(),
            "cum_minus_uniform": (cum_bits - ends * math.log2(k)).tolist(),
            "cum_ratio": (cum_bits / (ends * math.log2(k))).tolist()}


def per_sample_codes(blocks: list[dict], t1: int, k: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Every label's bits under the three codes of a chain's blocks (labels 1..t_1 uniform): ``uncalibrated``
    (softmax(z)), ``temperature`` (softmax(z / T)) and ``calibrated`` (the hedge between them,
    :mod:`mdl_utils.codes.calibration`), and the calibrated prediction's weight before each label."""
    def joined(field, first):
        return np.concatenate([np.full(t1, first)] + [np.asarray(b[field], dtype=np.float64) for b in blocks])

    on = np.concatenate([np.zeros(t1, bool)] + [np.full(b["t_end"] - b["t_start"], b["temperature"] != 1.0)
                                                for b in blocks])
    hedged, weights = hedged_bits(joined("p_temperature", 1.0 / k), joined("p_raw", 1.0 / k), on)
    hedged[:t1] = math.log2(k)
    return ({"calibrated": hedged, "temperature": joined("per_sample_temperature", math.log2(k)),
             "uncalibrated": joined("per_sample_uncalibrated", math.log2(k))}, weights)


def _assemble(train, test, recipe: Recipe, blocks, scale, device, sw, name: str | None = None) -> CodeResult:
    t1, k = recipe.timesteps[0], train.K
    key = "calibrated" if recipe.calibrate else "uncalibrated"
    per_sample, weights = per_sample_codes(blocks, t1, k)
    first = uniform_bits(t1, k)
    totals = {m: total(bits) for m, bits in per_sample.items()}  # exactly rounded: the coder's total is the same
    net = build(recipe.model, tuple(train.x.shape[1:]), k, seed=recipe.seed)
    return CodeResult(
        code="prequential", dataset=train.name, model=name or recipe.model, scale=scale, n=train.n, K=k,
        seed=recipe.seed,
        codelength_bits=totals[key], test_accuracy=blocks[-1]["test_accuracy"] if blocks else None,
        parts={"first_block_bits": first, "model_blocks_bits": totals[key] - first,
               **{f"bits_{m}": totals[m] for m in ("calibrated", "temperature", "uncalibrated")}},
        curves=_curves(blocks, per_sample, key, weights, t1, k),
        params={**scales.as_params(recipe), "num_parameters": num_parameters(net),
                "n_test": test.n if test is not None else 0, "order_seed": train.seed},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source,
                              precision=precision(recipe.bf16, recipe.tf32, device),
                              compute_seconds=round(sum(b["seconds"] for b in blocks), 3),
                              cpu_seconds=round(sum(b["cpu_seconds"] for b in blocks), 3)),
        note=("labels sent in a seeded random order; early stopping and temperature use transmitted labels only; "
              + ("each block continues the previous block's model (warm start, replay of all transmitted labels); "
                 if recipe.warm_start else "each block's model trained from the seed (Algorithm 2); ")
              + ("each label sent with the calibrated and the raw prediction mixed by their Bayesian weights "
                 "(hedged calibration); " if recipe.calibrate else "")
              + f"headline is the {key} code, chosen before seeing the data"),
        arrays={"bits": per_sample[key]},
    )
