"""The prequential code (paper Sec. 3.4, Def. 3, App. D, Algorithm 2).

Alice and Bob agree on a model, a training routine, a seed and timesteps
t_1 < ... < t_S = n. The first t_1 labels go with the uniform code
(t_1 log2 K bits). For s = 1..S-1 both train theta_hat(t_s) from the seed on
samples 1..t_s only, and Alice encodes labels t_s+1..t_{s+1} with it:

    L_preq = t_1 log2 K + sum_s sum_{t_s < i <= t_{s+1}} -log2 p_{theta_hat(t_s)}(y_i | x_i).

Causality: early stopping and the optional softmax temperature (forward
calibration, Bornschein, Li & Hutter 2022) use a held-out part of the first t_s
labels only, which Bob has already decoded. The authors' released code stopped
on the encoded block instead; that code is not decodable as stated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import Dataset
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance, write_json_atomic
from ..training import fit, predict_logits, resolve_device, validation_size
from .shannon import accuracy, per_sample_bits
from .uniform import uniform_bits

# Paper's timesteps (App. D): MNIST 8 * 2^k up to 32768, CIFAR-10 10 * 2^k up to 40960; then n.
PAPER_FIRST_STEP = {"mnist": 8, "cifar10": 10}
TEMPERATURE_RANGE = (0.05, 20.0)
MIN_CALIBRATION_SAMPLES = 10


def default_timesteps(dataset: str, n: int) -> list[int]:
    """t_1 * 2^k below n, then n (t_1 = 8 on MNIST, 10 otherwise), as the paper."""
    t = PAPER_FIRST_STEP.get(dataset, 10)
    steps = []
    while t < n:
        steps.append(t)
        t *= 2
    return steps + [n]


def check_timesteps(timesteps: list[int], n: int) -> list[int]:
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


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Softmax temperature T minimizing sum -log p(y | logits / T) on held-out labels.

    Golden-section search on log T over TEMPERATURE_RANGE (the NLL is unimodal in
    1/T); deterministic. Returns 1.0 with fewer than MIN_CALIBRATION_SAMPLES labels.
    """
    if len(labels) < MIN_CALIBRATION_SAMPLES:
        return 1.0
    logits = logits.double()

    def nll(log_t: float) -> float:
        return torch.nn.functional.cross_entropy(logits / math.exp(log_t), labels, reduction="sum").item()

    a, b = math.log(TEMPERATURE_RANGE[0]), math.log(TEMPERATURE_RANGE[1])
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


@dataclasses.dataclass
class PrequentialSettings:
    """Everything Alice and Bob agree on besides the data (and hence what a checkpoint must match)."""

    model: str
    timesteps: list[int]
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    patience: int = 3
    augment: bool = False
    calibrate: bool = True
    seed: int = 0
    record_epochs: bool = True  # bits of each block after every epoch, for the self-switch code

    def fingerprint(self, train: Dataset) -> str:
        key = json.dumps({**dataclasses.asdict(self), "dataset": train.name, "n": train.n,
                          "order_seed": train.seed}, sort_keys=True)
        return hashlib.sha1(key.encode()).hexdigest()[:16]


def _load_checkpoint(path: Path | None, fingerprint: str) -> dict:
    if path is None or not path.is_file():
        return {"fingerprint": fingerprint, "blocks": []}
    state = json.loads(path.read_text())
    if state.get("fingerprint") != fingerprint:
        return {"fingerprint": fingerprint, "blocks": []}  # other settings: start afresh
    return state


def train_block_model(x: torch.Tensor, y_prefix: torch.Tensor, num_classes: int, settings: PrequentialSettings,
                      device: str | torch.device = "auto", on_epoch_end=None):
    """theta_hat(t_s) of Algorithm 2: the model trained from the seed on the first t_s = len(y_prefix) samples.

    It sees the labels ``y_prefix`` only, which Bob has decoded when he needs
    this model: he calls the same function and gets the same weights.
    Returns (model, FitResult).
    """
    t_s = len(y_prefix)
    net = build(settings.model, tuple(x.shape[1:]), num_classes, seed=settings.seed)
    fitted = fit(net, x[:t_s], y_prefix, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                 val_fraction=settings.val_fraction, patience=settings.patience, augment=settings.augment,
                 seed=settings.seed, device=device, on_epoch_end=on_epoch_end)
    return net, fitted


def calibration_temperature(model, x_prefix: torch.Tensor, y_prefix: torch.Tensor, settings: PrequentialSettings,
                            device: str | torch.device = "auto") -> float:
    """Softmax temperature fitted on the held-out (last val_fraction) transmitted labels; 1 without calibration."""
    if not settings.calibrate:
        return 1.0
    n_val = validation_size(len(y_prefix), settings.val_fraction)
    t_s = len(y_prefix)
    return fit_temperature(predict_logits(model, x_prefix[t_s - n_val:t_s], device), y_prefix[t_s - n_val:])


def block_logits(x: torch.Tensor, y_prefix: torch.Tensor, t_next: int, num_classes: int,
                 settings: PrequentialSettings, device: str | torch.device = "auto") -> torch.Tensor:
    """The (calibrated) logits with which labels t_s..t_next-1 are encoded, from the first t_s labels only."""
    net, _ = train_block_model(x, y_prefix, num_classes, settings, device)
    temperature = calibration_temperature(net, x, y_prefix, settings, device)
    return predict_logits(net, x[len(y_prefix):t_next], device) / temperature


def prequential_code(train: Dataset, test: Dataset | None, settings: PrequentialSettings, *, scale: str,
                     device: str = "auto", progress: bool = True, checkpoint: str | Path | None = None,
                     ) -> tuple[CodeResult, np.ndarray]:
    """Run Algorithm 2 on ``train`` (in its transmission order); returns the result and per-sample bits.

    ``per_sample[i]`` is the codelength of label i: log2 K for i < t_1, then
    -log2 p_{theta_hat(t_s)}(y_i | x_i) of its block's model (calibrated when
    ``settings.calibrate``). Curves hold one entry per encoded block.
    A ``checkpoint`` file (JSON) is updated after every block; a rerun with the
    same settings resumes after the last finished block.
    """
    from tqdm import tqdm

    device = resolve_device(device)
    steps = check_timesteps(settings.timesteps, train.n)
    settings = dataclasses.replace(settings, timesteps=steps)
    fingerprint = settings.fingerprint(train)
    ckpt = Path(checkpoint) if checkpoint else None
    state = _load_checkpoint(ckpt, fingerprint)
    done = {b["t_start"]: b for b in state["blocks"]}
    k = train.K
    blocks = list(zip(steps[:-1], steps[1:]))
    with Stopwatch() as sw:
        for t_s, t_next in tqdm(blocks, desc=f"prequential {train.name}/{settings.model}", disable=not progress):
            if t_s in done:
                continue
            t0 = time.perf_counter()
            x_block, y_block = train.x[t_s:t_next], train.y[t_s:t_next]

            def encode(model):
                """Block logits and bits under ``model``, raw and calibrated on held-out transmitted labels."""
                temperature = calibration_temperature(model, train.x[:t_s], train.y[:t_s], settings, device)
                logits = predict_logits(model, x_block, device)
                raw_bits, cal_bits = per_sample_bits(logits, y_block), per_sample_bits(logits / temperature, y_block)
                return logits, raw_bits, cal_bits, temperature

            epoch_bits: dict[str, list[float]] = {"uncalibrated": [], "calibrated": []}

            def record_epoch(epoch: int, model) -> None:  # self-switch (App. E.2): the block's bits after each epoch
                _, raw_e, cal_e, _ = encode(model)
                epoch_bits["uncalibrated"].append(float(raw_e.sum()))
                epoch_bits["calibrated"].append(float(cal_e.sum()))

            net, fitted = train_block_model(train.x, train.y[:t_s], k, settings, device,
                                            on_epoch_end=record_epoch if settings.record_epochs else None)
            logits, raw, cal, temperature = encode(net)
            block = {
                "t_start": t_s, "t_end": t_next, "best_epoch": fitted.best_epoch, "epochs_run": fitted.epochs_run,
                "temperature": temperature, "bits_uncalibrated": float(raw.sum()), "bits_calibrated": float(cal.sum()),
                "epoch_bits_uncalibrated": epoch_bits["uncalibrated"], "epoch_bits_calibrated": epoch_bits["calibrated"],
                "block_accuracy": accuracy(logits, y_block),
                "test_accuracy": accuracy(predict_logits(net, test.x, device), test.y) if test is not None else None,
                "train_seconds": fitted.seconds, "seconds": time.perf_counter() - t0,
                "samples_trained": fitted.n_train * fitted.epochs_run,
                "per_sample_uncalibrated": raw.tolist(), "per_sample_calibrated": cal.tolist(),
            }
            done[t_s] = block
            state["blocks"] = [done[t] for t in sorted(done)]
            if ckpt is not None:
                write_json_atomic(ckpt, state)
    return _assemble(train, test, settings, [done[t] for t, _ in blocks], scale, device, sw)


def _assemble(train, test, settings, blocks, scale, device, sw) -> tuple[CodeResult, np.ndarray]:
    t1, k = settings.timesteps[0], train.K
    key = "calibrated" if settings.calibrate else "uncalibrated"
    per_sample = np.concatenate([np.full(t1, math.log2(k))] + [np.asarray(b[f"per_sample_{key}"]) for b in blocks])
    first = uniform_bits(t1, k)
    totals = {m: first + sum(b[f"bits_{m}"] for b in blocks) for m in ("calibrated", "uncalibrated")}
    ends = np.array([t1] + [b["t_end"] for b in blocks])
    cum_bits = np.cumsum([first] + [b[f"bits_{key}"] for b in blocks])
    curves = {
        "t_start": [b["t_start"] for b in blocks],
        "t_end": [b["t_end"] for b in blocks],
        "bits": [b[f"bits_{key}"] for b in blocks],
        "bits_per_sample": [b[f"bits_{key}"] / (b["t_end"] - b["t_start"]) for b in blocks],
        "bits_per_sample_uncalibrated": [b["bits_uncalibrated"] / (b["t_end"] - b["t_start"]) for b in blocks],
        "block_accuracy": [b["block_accuracy"] for b in blocks],
        "test_accuracy": [b["test_accuracy"] for b in blocks],
        "temperature": [b["temperature"] for b in blocks],
        "best_epoch": [b["best_epoch"] for b in blocks],
        "epochs_run": [b["epochs_run"] for b in blocks],
        "epoch_bits": [b[f"epoch_bits_{key}"] for b in blocks],
        "block_seconds": [b["seconds"] for b in blocks],
        "samples_trained": [b["samples_trained"] for b in blocks],
        # cumulative over samples 1..t_end (first point: the uniform block)
        "cum_t": ends.tolist(),
        "cum_bits": cum_bits.tolist(),
        "cum_minus_uniform": (cum_bits - ends * math.log2(k)).tolist(),
        "cum_ratio": (cum_bits / (ends * math.log2(k))).tolist(),
    }
    seconds = sum(b["seconds"] for b in blocks)
    net = build(settings.model, tuple(train.x.shape[1:]), k, seed=settings.seed)
    result = CodeResult(
        code="prequential", dataset=train.name, model=settings.model, scale=scale, n=train.n, K=k,
        codelength_bits=totals[key], test_accuracy=blocks[-1]["test_accuracy"] if blocks else None,
        parts={"first_block_bits": first, "model_blocks_bits": totals[key] - first,
               "bits_calibrated": totals["calibrated"], "bits_uncalibrated": totals["uncalibrated"]},
        curves=curves,
        params={**dataclasses.asdict(settings), "num_parameters": num_parameters(net),
                "n_test": test.n if test is not None else 0, "order_seed": train.seed},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source, compute_seconds=round(seconds, 3)),
        note=("labels sent in a seeded random order; early stopping and temperature use transmitted labels only; "
              f"headline is the {key} code, chosen before seeing the data"),
    )
    return result, per_sample


def save_per_sample(path: str | Path, per_sample: np.ndarray) -> Path:
    """Per-sample codelengths beside a result JSON (``.bits.npy``, float32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npy")
    np.save(tmp, per_sample.astype(np.float32))
    tmp.replace(path)
    return path


# ------------------------------------------------------------ chapter runs

CHAPTER = "prequential"


def per_sample_path(dataset: str, model: str, scale: str, root: Path | None = None) -> Path:
    from ..results import result_path

    return result_path(CHAPTER, dataset, model, scale, root).with_suffix(".bits.npy")


def checkpoint_path(dataset: str, model: str, scale: str, root: Path | None = None) -> Path:
    from ..results import result_path

    p = result_path(CHAPTER, dataset, model, scale, root)
    return p.parent / ".partial" / p.name


def settings_for(dataset: str, model: str, n: int, scale: str, *, seed: int = 0, calibrate: bool = True,
                 record_epochs: bool = True) -> PrequentialSettings:
    """The agreed settings of the prequential code of ``model`` on ``n`` samples of ``dataset`` at ``scale``."""
    from ..models import AUGMENTED
    from ..scales import settings as scale_settings

    cfg = scale_settings(CHAPTER, scale)
    epochs = cfg.get("epochs_by_model", {}).get(model, cfg["epochs"])
    return PrequentialSettings(model=model, timesteps=default_timesteps(dataset, n), epochs=epochs,
                               patience=cfg["patience"], augment=model in AUGMENTED, calibrate=calibrate, seed=seed,
                               record_epochs=record_epochs)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, calibrate: bool = True, device: str = "auto",
            data_root: str | None = None, root: Path | None = None, progress: bool = True) -> CodeResult:
    """Run the prequential code of ``model`` on ``dataset`` with the settings of ``scale`` (mdl_utils.scales).

    Resumable: an interrupted run restarts after its last finished block. The
    per-sample codelengths are stored beside the result (``.bits.npy``).
    """
    from .. import data
    from ..scales import settings as scale_settings

    cfg = scale_settings(CHAPTER, scale)
    train = data.load(dataset, "train", root=data_root, n=cfg["n_train"], seed=seed)
    test = data.load(dataset, "test", root=data_root, n=cfg["n_test"], seed=seed)
    settings = settings_for(dataset, model, train.n, scale, seed=seed, calibrate=calibrate)
    ckpt = checkpoint_path(dataset, model, scale, root)
    result, per_sample = prequential_code(train, test, settings, scale=scale, device=device, progress=progress,
                                          checkpoint=ckpt)
    save_per_sample(per_sample_path(dataset, model, scale, root), per_sample)
    ckpt.unlink(missing_ok=True)
    return result


def load_per_sample(dataset: str, model: str, scale: str, root: Path | None = None) -> np.ndarray:
    """The stored per-sample codelengths (bits, float32) of a prequential run."""
    path = per_sample_path(dataset, model, scale, root)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no per-sample codelengths; recompute with "
                                f"python -m mdl_utils.run notebooks/06_prequential.md --scale {scale}")
    return np.load(path)
