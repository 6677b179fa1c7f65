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

import numpy as np
import torch
from torch import nn

BITS_PER_FLOAT32 = 32


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


def float32_two_part(train, test, *, model: str, scale: str, epochs: int = 10, lr: float = 1e-3,
                     batch_size: int = 128, patience: int | None = 3, val_fraction: float = 0.1, seed: int = 0,
                     device: str = "auto", progress: bool = True):
    """Train ``model`` on all of ``train`` (early stopping on its last ``val_fraction``), then
    L = 32 dim(theta) + sum over the training labels of -log2 p_theta(y|x) (Sec. 3.1).

    The float32 weights are sent exactly as trained, so the data term uses the
    very model Bob decodes. ``test`` gives the test accuracy only.
    """
    from ..models import build, num_parameters
    from ..results import CodeResult, Stopwatch, provenance
    from ..training import fit, predict_logits, resolve_device
    from . import shannon

    device = resolve_device(device)
    with Stopwatch() as sw:
        net = build(model, tuple(train.x.shape[1:]), train.K, seed=seed)
        fr = fit(net, train.x, train.y, epochs=epochs, batch_size=batch_size, lr=lr, val_fraction=val_fraction,
                 patience=patience, augment=False, seed=seed, device=device,
                 progress=f"{train.name}/{model}" if progress else False)
        net = net.cpu().eval()
        payload = serialize_float32(net)
        model_bits = float32_model_bits(net)
        if model_bits != 8 * len(payload):
            raise AssertionError("float32 model bits differ from the serialized size")
        logits = predict_logits(net, train.x, "cpu")
        data_bits = shannon.codelength_bits(logits, train.y)
        test_acc = shannon.accuracy(predict_logits(net, test.x, "cpu"), test.y) if test is not None else None
        train_acc = shannon.accuracy(logits, train.y)
    return CodeResult(
        code="two_part", dataset=train.name, model=model, scale=scale, n=train.n, K=train.K,
        codelength_bits=two_part_bits(model_bits, data_bits), test_accuracy=test_acc,
        parts={"model_bits": float(model_bits), "data_bits": data_bits},
        curves={"train_loss": fr.history["train_loss"], "val_loss": fr.history["val_loss"]},
        params={"bits_per_parameter": BITS_PER_FLOAT32, "num_parameters": num_parameters(net),
                "num_sent_floats": num_sent_floats(net), "epochs": epochs, "epochs_run": fr.epochs_run,
                "best_epoch": fr.best_epoch, "lr": lr, "batch_size": batch_size, "patience": patience,
                "val_fraction": val_fraction, "seed": seed, "n_train": train.n,
                "n_test": None if test is None else test.n, "train_accuracy": train_acc},
        provenance=provenance(device=device, stopwatch=sw, data_source=train.source),
        note="float32 two-part code: 32 bits per parameter + Shannon code of the training labels (Sec. 3.1)",
    )
