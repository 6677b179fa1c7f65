"""Two-part codes (paper Sec. 3.1, Definition 1) with float32 parameters.

Alice trains a model, sends its parameters theta, then the labels with the
model's Shannon code:

    L_2part(y | x) = L_param(theta) + sum_i -log2 p_theta(y_i | x_i).

With float32 parameters L_param(theta) = 32 dim(theta) bits (floating-point
buffers such as batch-norm running statistics are sent too, at 32 bits each).
The paper's Table 1 quotes only the weight term as a lower bound
(8.6 Mbits on MNIST, 428 Mbits on CIFAR-10); here the data term is added.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from .. import data, scales
from ..bits import accuracy, codelength_bits
from ..models import build, num_parameters
from ..results import CodeResult, Stopwatch, provenance
from ..training import FitOptions, fit, predict_logits, resolve_device

CHAPTER = "two_part"
BITS_PER_FLOAT32 = 32


@dataclasses.dataclass(frozen=True)
class Settings:
    """n_train/n_test: samples loaded (None = the whole split). Training (training.fit): Adam at ``lr``,
    mini-batches of ``batch_size``, at most ``epochs``, early stopping with ``patience`` on the last
    ``val_fraction`` of the training labels (all of which are encoded and paid for). ``models`` per dataset."""

    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 100
    lr: float = 1e-3
    batch_size: int = 128
    patience: int = 5
    val_fraction: float = 0.1
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("lenet", "mlp"), "cifar10": ("lenet", "mlp"), "synthetic": ("mlp",)})

    def fit_options(self) -> FitOptions:
        """How the network is trained (training.fit)."""
        return FitOptions(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, val_fraction=self.val_fraction,
                          patience=self.patience)


SCALES = {
    "smoke": dict(n_train=1000, n_test=500, epochs=2, patience=3),
    "cpu": dict(epochs=8, patience=2),
}


settings = scales.settings_of(Settings, SCALES)


def planned_work(dataset: str, model: str, scale: str, *, data_root=None) -> int:
    """Samples x epochs this run trains at most (the job runner's hook, mdl_utils.codes.planned_work)."""
    s = settings(scale)
    n = data.train_size(dataset, s.n_train, data_root)
    return n * s.epochs


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """The float32 two-part code of ``model`` on ``dataset``'s training labels, with the settings of ``scale``:
    L = 32 x (number of parameters) + sum_i -log2 p_theta(y_i | x_i) (paper Sec. 3.1)."""
    s = settings(scale)
    train, test = data.splits(dataset, s, seed=seed, root=data_root)
    return float32_two_part(train, test, model, s, scale=scale, seed=seed, device=device)


def float_tensors(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The floating-point tensors of ``model``'s state (parameters and float buffers), in state-dict order."""
    return [(k, v) for k, v in model.state_dict().items() if torch.is_floating_point(v)]


def num_sent_floats(model: nn.Module) -> int:
    """Number of float32 numbers Alice sends: every parameter plus floating buffers (batch-norm statistics)."""
    return sum(v.numel() for _, v in float_tensors(model))


def float32_model_bits(model: nn.Module) -> int:
    """L_param = 32 bits per sent float (Sec. 3.1): 32 dim(theta) for models without buffers."""
    return BITS_PER_FLOAT32 * num_sent_floats(model)


def serialize_float32(model: nn.Module) -> bytes:
    """The float tensors of ``model`` as little-endian float32 bytes, in state-dict order."""
    return b"".join(v.detach().cpu().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
                    for _, v in float_tensors(model))


def deserialize_float32(payload: bytes, model: nn.Module) -> nn.Module:
    """Load bytes written by :func:`serialize_float32` into ``model`` (same architecture); returns it."""
    expected = 4 * num_sent_floats(model)
    if len(payload) != expected:
        raise ValueError(f"payload has {len(payload)} bytes but this architecture needs {expected}; "
                         "decode with the model the bytes were written for")
    arr = np.frombuffer(payload, dtype="<f4")
    state, pos = model.state_dict(), 0
    for k, v in float_tensors(model):
        state[k] = torch.from_numpy(arr[pos:pos + v.numel()].copy()).reshape(v.shape).to(v.dtype)
        pos += v.numel()
    model.load_state_dict(state)
    return model


def two_part_bits(model_bits: float, data_bits: float) -> float:
    """L = L_param + L_data (Definition 1)."""
    if model_bits < 0 or data_bits < 0:
        raise ValueError(f"bit counts must be non-negative, got model_bits={model_bits}, data_bits={data_bits}")
    return float(model_bits) + float(data_bits)


def train_model(train: data.Dataset, model: str, s: Settings, *, seed: int = 0, device: str = "auto",
                progress: bool = True):
    """``model`` trained on all of ``train`` (early stopping on its last ``s.val_fraction``), on the CPU in eval
    mode after training: the network whose float32 weights are sent. Returns (network, FitResult)."""
    net = build(model, tuple(train.x.shape[1:]), train.K, seed=seed)
    fr = fit(net, train.x, train.y, s.fit_options(), seed=seed, device=device,
             progress=f"{train.name}/{model}" if progress else False)
    return net.cpu().eval(), fr


def float32_two_part(train: data.Dataset, test: data.Dataset | None, model: str, s: Settings, *, scale: str,
                     seed: int = 0, device: str = "auto", progress: bool = True) -> CodeResult:
    """Train ``model`` on all of ``train`` (early stopping on its last ``val_fraction``), then
    L = 32 dim(theta) + sum over the training labels of -log2 p_theta(y|x) (Sec. 3.1).

    The float32 weights are sent exactly as trained, so the data term uses the
    very model Bob decodes. ``test`` gives the test accuracy only.
    """
    device = resolve_device(device)
    with Stopwatch() as sw:
        net, fr = train_model(train, model, s, seed=seed, device=device, progress=progress)
        model_bits = float32_model_bits(net)
        logits = predict_logits(net, train.x, "cpu")
        data_bits = codelength_bits(logits, train.y)
        test_acc = accuracy(predict_logits(net, test.x, "cpu"), test.y) if test is not None else None
    return CodeResult(
        code="two_part", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K, seed=seed,
        codelength_bits=two_part_bits(model_bits, data_bits), test_accuracy=test_acc,
        parts={"model_bits": float(model_bits), "data_bits": data_bits},
        curves={"train_loss": fr.history["train_loss"], "val_loss": fr.history["val_loss"]},
        params={**scales.as_params(s), "bits_per_parameter": BITS_PER_FLOAT32, "num_parameters": num_parameters(net),
                "num_sent_floats": num_sent_floats(net), "epochs_run": fr.epochs_run, "best_epoch": fr.best_epoch,
                "seed": seed, "n_train": train.n, "n_test": None if test is None else test.n,
                "train_accuracy": accuracy(logits, train.y)},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="float32 two-part code: 32 bits per parameter + Shannon code of the training labels (Sec. 3.1)",
    )
