"""Training shared by every code: device choice, determinism, fitting, prediction.

Determinism is what lets Bob decode: given the seed, the same data and the
same machine, fitting gives the same weights bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import time
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from . import numerics


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU; any other value is passed to torch.device."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available; use device='auto' or 'cpu'")
    return device


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the block with ``torch.set_num_threads(n)`` (None: unchanged), then restore the previous count.

    The thread count is part of what a decoder must reproduce: CPU kernels may sum in another order.
    """
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_deterministic(tf32: bool = False, device: str | torch.device = "cpu") -> None:
    """Deterministic kernels (bit-identical reruns on one machine), so that Bob retrains Alice's weights.

    On CUDA strictly: an operation without a deterministic kernel raises instead of warning (the models avoid
    them: global average pooling is a mean, see models.GlobalAvgPool), cuDNN deterministic and not benchmarking,
    cuBLAS with a fixed workspace (CUBLAS_WORKSPACE_CONFIG, set by numerics.configure). ``tf32``: TensorFloat-32 matrix
    products and convolutions on CUDA (deterministic too, but other numbers than float32; off unless a recipe
    asks for it, and then recorded: :func:`precision`). On the CPU, torch's kernels are deterministic for a fixed
    thread count; a missing deterministic kernel only warns there. Training on the CPU raises
    numerics.NumericsError when the numerics asked for (portable by default: the same bits on any x86-64 CPU of one vendor) are
    not in effect."""
    if torch.device(device).type == "cpu":
        numerics.check()
    torch.use_deterministic_algorithms(True, warn_only=not torch.cuda.is_available())
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def precision(bf16: bool = False, tf32: bool = False, device: str | torch.device = "cpu") -> str:
    """The precision words recorded in a result's provenance: "fp32"; "tf32" when TensorFloat-32 was allowed on a
    CUDA ``device``; bfloat16 autocast for the training steps with ``bf16`` (evaluation and encoding stay in the
    float32 or TF32 kernels)."""
    base = "tf32" if tf32 and torch.device(device).type == "cuda" else "fp32"
    return f"bf16 autocast (training steps), {base} evaluation" if bf16 else base


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
    make_deterministic(device=device)
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


# ------------------------------------------------------------- minibatches


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Random translations by up to ``shift`` pixels, padding with 0 (``fill="zero"``) or with the smallest input
    value (``"min"``: the background of normalized digits), and, with ``flip``, horizontal flips. The default is
    VGGb's (App. D): shifts of up to 4 pixels and flips."""

    shift: int = 4
    flip: bool = True
    fill: str = "zero"



def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A small tensor drawn on the CPU (random draws from the seeded CPU generator), on ``device``; on CUDA through
    pinned memory and a non-blocking copy, so that the training loop does not wait for the GPU at every step."""
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)

def augment_batch(x: torch.Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True,
                  fill: float = 0.0) -> torch.Tensor:
    """Random translations by up to ``pad`` pixels (padding with ``fill``) and horizontal flips (VGGb, App. D).

    Draws from ``generator`` the shifts (2 x batch), then the flips (batch) when ``flip``."""
    b, c, h, w = x.shape
    dev = x.device
    shift = to_device(torch.randint(0, 2 * pad + 1, (2, b), generator=generator), dev)
    cols = torch.arange(w, device=dev)[None, :].expand(b, w)
    if flip:
        flips = to_device(torch.rand(b, generator=generator) < 0.5, dev)
        cols = torch.where(flips[:, None], w - 1 - cols, cols)
    padded = nn.functional.pad(x, (pad, pad, pad, pad), value=fill)
    rows = torch.arange(h, device=dev)[None, :] + shift[0][:, None]
    cols = cols + shift[1][:, None]
    out = padded[torch.arange(b, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                 rows[:, None, :, None], cols[:, None, None, :]]
    nhwc = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(memory_format=torch.channels_last) if nhwc else out


def augmenter(augment: bool | Augmentation, x: torch.Tensor) -> Callable[[torch.Tensor, torch.Generator],
                                                                          torch.Tensor] | None:
    """The mini-batch transform of ``augment`` (True: VGGb's :class:`Augmentation`; False: none) for inputs
    ``x`` (a "min" fill is their smallest value)."""
    if not augment:
        return None
    a = augment if isinstance(augment, Augmentation) else Augmentation()
    fill = fill_value(a.fill, x)
    return lambda xb, g: augment_batch(xb, g, a.shift, a.flip, fill)


def fill_value(fill: str, x: torch.Tensor) -> float:
    """The value of the pixels a shift brings in: 0 for "zero", the smallest input value for "min" (the background
    of normalized digits); the same rule for training's augmentation and for test-time views."""
    if fill not in ("zero", "min"):
        raise ValueError(f"unknown augmentation fill {fill!r}; choose 'zero' or 'min'")
    return float(x.min()) if fill == "min" and len(x) else 0.0


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` did: per-evaluation history, the evaluation whose weights were kept, steps, time.

    ``epochs_run``: evaluations after training began (epochs when evaluating once per epoch, the default);
    ``best_epoch``: the evaluation whose weights the model has at the end (0: the initial weights);
    ``optimizer``: the optimizer at the end of training (with its state), to continue from it."""

    best_epoch: int
    epochs_run: int
    history: dict[str, list[float]]
    seconds: float
    n_train: int
    n_val: int
    steps_run: int = 0
    best_step: int = 0
    samples_trained: int = 0
    optimizer: torch.optim.Optimizer | None = dataclasses.field(default=None, repr=False, compare=False)


SCHEDULES = ("constant", "cosine")


def validation_size(n: int, val_fraction: float) -> int:
    """Samples held out for early stopping: round(val_fraction * n), at least 1 when n >= 2, 0 when off."""
    if val_fraction <= 0 or n < 2:
        return 0
    return min(n - 1, max(1, round(val_fraction * n)))


def step_budget(n_train: int, batch_size: int, epochs: int | None, min_steps: int = 0,
                max_steps: int | None = None) -> int:
    """Optimizer steps a fit may take: epochs * ceil(n_train / batch_size), capped at ``max_steps``, raised to
    ``min_steps`` (so that small training sets still get enough steps); 0 without training samples."""
    if n_train <= 0:
        return 0
    if epochs is None and max_steps is None:
        raise ValueError("fit needs a maximum: pass epochs or max_steps")
    caps = [c for c in (None if epochs is None else epochs * math.ceil(n_train / batch_size), max_steps)
            if c is not None]
    return max(min(caps), int(min_steps))


def lr_factor(schedule: str, step: int, total: int) -> float:
    """Learning-rate multiplier of optimizer step ``step`` (1-based) of ``total``: 1 (constant) or the cosine
    0.5 (1 + cos(pi (step - 1) / total)), from 1 down towards 0 over the planned steps (Loshchilov & Hutter 2017)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * (step - 1) / max(total, 1)))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")


def cross_entropy_loss(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """The default loss of :func:`fit`: mean cross-entropy (nats) of ``model`` on a mini-batch."""
    return nn.functional.cross_entropy(model(xb), yb)


class WeightAverage:
    """An exponential moving average of a model's parameters over the optimizer steps of one fit (Polyak
    averaging; Izmailov et al. 2018, Sec. 2, for why averaged weights predict better): after step t,

        a_t = d_t a_{t-1} + (1 - d_t) theta_t,   d_t = min(decay, (1 + t) / (10 + t)),   a_0 = theta_0,

    the decay warmed up so that a fit of a few steps still moves the average (Tarvainen & Valpola 2017).
    ``decay`` 0: no average (every method does nothing). Buffers (batch-norm statistics) stay the model's own.
    Elementwise float32 arithmetic, in a fixed order: Bob recomputes the same average bit for bit."""

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema={decay}: the average's decay must be in [0, 1) (0: no average)")
        self.decay, self.steps = float(decay), 0
        self.params = [p.detach().clone() for p in model.parameters()] if decay else []

    def update(self, model: nn.Module) -> None:
        """Fold the model's parameters after one more optimizer step into the average."""
        if not self.decay:
            return
        self.steps += 1
        weight = 1.0 - min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))
        with torch.no_grad():
            for a, p in zip(self.params, model.parameters()):
                a.lerp_(p.detach(), weight)

    @contextlib.contextmanager
    def swapped(self, model: nn.Module):
        """Inside the block the model holds the averaged parameters, after it its own again."""
        if not self.decay:
            yield model
            return
        own = [p.detach().clone() for p in model.parameters()]
        _assign(model, self.params)
        try:
            yield model
        finally:
            _assign(model, own)

    def copy_to(self, model: nn.Module) -> None:
        """Put the averaged parameters into the model (the end of a fit: the block keeps the average)."""
        _assign(model, self.params)


def _assign(model: nn.Module, values: list[torch.Tensor]) -> None:
    """Copy ``values`` into the model's parameters, in order (nothing for an empty list)."""
    with torch.no_grad():
        for p, v in zip(model.parameters(), values):
            p.copy_(v)


class _Best:
    """The best evaluation so far: (validation loss, evaluation index, step) and, when it will be restored, a
    copy of the weights. Starts at the initial weights with loss +inf (or their measured loss)."""

    def __init__(self, model: nn.Module, keep: bool, loss: float = math.inf):
        self.model, self.keep = model, keep
        self.loss, self.index, self.step = loss, 0, 0
        self.state = copy.deepcopy(model.state_dict()) if keep else None

    def update(self, loss: float, index: int, step: int) -> None:
        """Keep evaluation ``index`` (after ``step`` steps) when its validation ``loss`` is the lowest so far."""
        if loss < self.loss:
            self.loss, self.index, self.step = loss, index, step
            if self.keep:
                self.state = copy.deepcopy(self.model.state_dict())


@dataclasses.dataclass(frozen=True)
class FitOptions:
    """How :func:`fit` trains, everything but the model, the data, the seed, the device and the hooks: at most
    ``epochs`` passes (and ``max_steps`` optimizer steps when set), at least ``min_steps``, mini-batches of
    ``batch_size``, Adam at ``lr`` with ``weight_decay``, the last ``val_fraction`` of the samples held out and
    evaluated every ``eval_every`` steps (None: every epoch), early stopping after ``patience`` evaluations without
    improvement (None: never), the learning rate of ``schedule`` (:func:`lr_factor`), the best evaluated weights
    restored with ``restore_best`` (``eval_at_start``: the initial weights compete too), ``augment`` of the
    training mini-batches (:func:`augmenter`), ``bf16`` autocast of the training steps, ``tf32`` kernels on CUDA,
    ``ema``: evaluations, the weights kept and the fit's end use the :class:`WeightAverage` of that decay (0: off).
    The defaults are the paper's routine: epochs with early stopping per epoch, best epoch restored, constant
    learning rate, float32. Each chapter's Settings (a prequential Recipe) gives its own (``fit_options()``)."""

    epochs: int | None = 20
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int | None = 3
    augment: bool | Augmentation = False
    min_steps: int = 0
    max_steps: int | None = None
    eval_every: int | None = None
    schedule: str = "constant"
    restore_best: bool = True
    eval_at_start: bool = False
    bf16: bool = False
    tf32: bool = False
    ema: float = 0.0


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, options: FitOptions = FitOptions(), *, seed: int = 0,
        device: str | torch.device = "auto", progress: bool | str = False,
        on_epoch_end: Callable[[int, nn.Module], None] | None = None,
        loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] = cross_entropy_loss,
        param_groups: list[dict] | None = None, optimizer: torch.optim.Optimizer | None = None) -> FitResult:
    """Train ``model`` on (x, y) with Adam and mini-batches as ``options`` say; deterministic given ``seed``. The one
    training loop.

    The last ``val_fraction`` of the samples (in the order given) is held out. Training runs :func:`step_budget`
    steps at the learning rate of the schedule; at every evaluation the validation loss is measured, and training
    stops when it has not improved for ``patience`` evaluations (never before ``min_steps``). Everything the routine
    looks at is in (x, y): for a prequential block, transmitted labels only (the causality rule).
    ``on_epoch_end(e, model)`` is called with e = 0 before training and after every evaluation e = 1..epochs_run
    (self-switch codes). ``loss(model, xb, yb)`` is the mini-batch objective (the variational code passes KL/n +
    data bits); ``param_groups`` Adam's parameter groups (default: all of ``model``'s, at ``lr``); ``optimizer``:
    continue with this optimizer and its state instead (``lr``, ``weight_decay``, ``param_groups`` unused; its
    groups' learning rates restart from their first values).
    """
    o = options
    device = resolve_device(device)
    make_deterministic(o.tf32, device)
    n_val = validation_size(len(y), o.val_fraction)
    n_train = len(y) - n_val
    train, val = (x[:n_train].to(device), y[:n_train].to(device)), (x[n_train:].to(device), y[n_train:].to(device))
    model.to(device)
    opt = optimizer or torch.optim.Adam(param_groups or model.parameters(), lr=o.lr, weight_decay=o.weight_decay)
    lr_factor(o.schedule, 1, 1)  # an unknown schedule fails here, before any training
    plan = _Plan(total=step_budget(n_train, o.batch_size, o.epochs, o.min_steps, o.max_steps),
                 period=o.eval_every or max(1, math.ceil(n_train / o.batch_size)), min_steps=o.min_steps,
                 patience=o.patience if n_val else None, schedule=o.schedule,
                 base_lrs=_base_lrs(opt, optimizer is not None),
                 set_lr=o.schedule != "constant" or optimizer is not None, augment=augmenter(o.augment, train[0]),
                 batch_size=o.batch_size, bf16=o.bf16, average=WeightAverage(model, o.ema))
    t0 = time.perf_counter()
    with tqdm(total=plan.total, desc=progress if isinstance(progress, str) else "fit", leave=False,
              disable=not progress) as bar, torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        g = torch.Generator().manual_seed(seed)
        best = _Best(model, n_val > 0 and o.restore_best,
                     _validate(model, *val, device)[0] if o.eval_at_start and n_val else math.inf)
        if on_epoch_end:
            on_epoch_end(0, model)
        history, evals, step, seen = _loop(model, opt, loss, train, val, plan, best, on_epoch_end, g, bar)
    if best.keep:
        model.load_state_dict(best.state)
    else:
        plan.average.copy_to(model)  # the block ends on the average (nothing without one)
    model.eval()
    kept = (best.index, best.step) if best.keep else (evals, step)
    return FitResult(best_epoch=kept[0], epochs_run=evals, history=history, seconds=time.perf_counter() - t0,
                     n_train=n_train, n_val=n_val, steps_run=step, best_step=kept[1], samples_trained=seen,
                     optimizer=opt)


@dataclasses.dataclass
class _Plan:
    """How :func:`fit` trains: ``total`` steps, an evaluation every ``period`` steps, stopping rule, schedule,
    the weight average (:class:`WeightAverage`; decay 0: none)."""

    total: int
    period: int
    min_steps: int
    patience: int | None
    schedule: str
    base_lrs: list[float]
    set_lr: bool
    augment: Callable | None
    batch_size: int
    average: WeightAverage
    bf16: bool = False


def _loop(model, opt, loss_fn, train, val, plan: _Plan, best: _Best, on_epoch_end, g,
          bar) -> tuple[dict[str, list[float]], int, int, int]:
    """The steps of :func:`fit`: mini-batch updates (each folded into ``plan.average``), an evaluation at the end of
    every period (validation loss, best weights, ``on_epoch_end``, on the averaged weights; early stopping).
    Returns (history, evaluations, steps, samples trained)."""
    (x_tr, y_tr), (x_val, y_val) = train, val
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    device = x_tr.device
    batches = _batches(len(y_tr), plan.batch_size, g, device)
    evals = step = seen = period_seen = 0
    total_loss = torch.zeros((), dtype=torch.float64, device=device)
    model.train()
    while step < plan.total:
        step += 1
        if plan.set_lr:
            for group, base in zip(opt.param_groups, plan.base_lrs):
                group["lr"] = base * lr_factor(plan.schedule, step, plan.total)
        idx = next(batches)
        total_loss += _train_step(model, opt, loss_fn, x_tr, y_tr, idx, plan.augment, g, plan.bf16)
        plan.average.update(model)
        seen, period_seen = seen + len(idx), period_seen + len(idx)
        if step % plan.period and step < plan.total:
            continue
        evals += 1
        history["train_loss"].append(total_loss.item() / max(period_seen, 1))
        total_loss, period_seen = torch.zeros((), dtype=torch.float64, device=device), 0
        with plan.average.swapped(model):  # evaluations see the weights the fit would end on
            if len(y_val):
                val_loss, val_acc = _validate(model, x_val, y_val, device)
                history["val_loss"].append(val_loss)
                history["val_accuracy"].append(val_acc)
                best.update(val_loss, evals, step)
            if on_epoch_end:
                on_epoch_end(evals, model)
        bar.update(step - bar.n)
        if plan.patience is not None and step >= plan.min_steps and evals - best.index >= plan.patience:
            break
        model.train()
    return history, evals, step, seen


def _base_lrs(opt: torch.optim.Optimizer, restart: bool) -> list[float]:
    """Each parameter group's first learning rate (kept as "initial_lr"); ``restart``: set the groups back to it."""
    bases = []
    for group in opt.param_groups:
        group.setdefault("initial_lr", group["lr"])
        bases.append(group["initial_lr"])
        if restart:
            group["lr"] = group["initial_lr"]
    return bases


def _batches(n: int, batch_size: int, g: torch.Generator, device: torch.device):
    """Mini-batch indices, epoch after epoch: each epoch a fresh permutation drawn from ``g`` (when it starts)."""
    while True:
        order = to_device(torch.randperm(n, generator=g), device)
        for i in range(0, n, batch_size):
            yield order[i:i + batch_size]


def _train_step(model, opt, loss_fn, x, y, idx, augment, g: torch.Generator, bf16: bool = False) -> torch.Tensor:
    """One optimizer step on the mini-batch ``idx`` (transformed by ``augment`` when given; the loss under
    bfloat16 autocast with ``bf16``); returns its summed loss (a tensor: no sync per step)."""
    xb = augment(x[idx], g) if augment else x[idx]
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = loss_fn(model, xb, y[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach().double() * len(idx)


def _validate(model, x_val, y_val, device) -> tuple[float, float]:
    """(mean cross-entropy in nats, accuracy) on the held-out samples."""
    logits = predict_logits(model, x_val, device)
    val_loss = nn.functional.cross_entropy(logits, y_val.cpu()).item()
    return val_loss, (logits.argmax(1) == y_val.cpu()).double().mean().item()
