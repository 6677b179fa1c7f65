"""Your model, your data: the book's codes as functions of any PyTorch network and any arrays.

    import mdl_utils
    r = mdl_utils.prequential(MyNet, x, y)                   # MyNet(input_shape, num_classes) -> nn.Module
    print(r.codelength_bits, mdl_utils.uniform(y).codelength_bits)
    mdl_utils.compress_labels(MyNet, x, y, "labels.mdl")     # the labels as a file ...
    labels = mdl_utils.decompress_labels("labels.mdl", MyNet, x)  # ... and back, from the inputs alone

A model is a function ``(input_shape, num_classes) -> nn.Module`` (a class works) or the name of one
(:func:`mdl_utils.models.register`; the built-in architectures too); data are arrays or tensors ``x`` (n, ...) and
``y`` (n,) with labels 0..K-1, or a :class:`mdl_utils.data.Dataset`. Every function returns the
:class:`~mdl_utils.results.CodeResult` of the book's chapters (per-sample bits in ``arrays["bits"]``, curves,
provenance), computed with the same code and numerics. Bad input is a one-line error that names the fix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import arrays, coder, data, models, scales
from .arrays import register as register_dataset  # noqa: F401 (the API)
from .codes import algorithm2, files, switch as switch_code, uniform as uniform_code
from .models import register as register_model  # noqa: F401 (the API)
from .results import CodeResult

SCALE = "custom"  # the scale recorded in results of this API (not a named scale of the book)
Model = Callable[[tuple, int], torch.nn.Module] | str


def dataset(x, y=None, *, name: str = "arrays", num_classes: int | None = None, seed: int | None = 0) -> data.Dataset:
    """``x`` and ``y`` as a Dataset in the transmission order drawn from ``seed`` (None: as given); ``x`` may already
    be a Dataset (returned as is), or a ``torch.utils.data.Dataset`` of (input, label) pairs (read once, in order)."""
    if isinstance(x, data.Dataset):
        return x
    if isinstance(x, torch.utils.data.Dataset) and y is None:
        x, y = _pairs(x)
    if y is None:
        raise ValueError("give the labels y with the inputs x (or a mdl_utils.data.Dataset)")
    xs, ys, k = arrays.checked(x, y, f"dataset {name!r}", num_classes)
    order = data.transmission_order(len(ys), seed)
    idx = torch.from_numpy(order)
    return data.Dataset(name=name, split="train", x=xs[idx], y=ys[idx], K=k, classes=[str(c) for c in range(k)],
                        source=f"arrays given to mdl_utils ({name})", seed=seed, indices=order)


def _pairs(ds: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs and labels of a torch Dataset of (input, label) pairs, stacked."""
    try:
        xs, ys = zip(*((torch.as_tensor(a), int(b)) for a, b in (ds[i] for i in range(len(ds)))))
    except (TypeError, ValueError) as e:
        raise ValueError(f"a torch Dataset must give (input, integer label) pairs and have a length ({e})") from None
    return torch.stack(xs), torch.tensor(ys)


def model_name(model: Model, name: str | None = None) -> str:
    """The registered name of ``model``: a name as given; a function registered under ``name`` (default: its own
    ``__name__``), which the receiver of a file must register the same way."""
    if isinstance(model, str):
        if not models.known(model):
            raise ValueError(f"unknown model {model!r}; give a function (input_shape, num_classes) -> nn.Module, or "
                             f"one of {', '.join(models.names())}")
        return model
    if not callable(model):
        raise ValueError(f"model must be a function (input_shape, num_classes) -> nn.Module, got "
                         f"{type(model).__name__}")
    key = name or getattr(model, "__name__", None) or type(model).__name__
    if models.CUSTOM.get(key) is not model:
        models.register(key, model)
    return key


def recipe(model: Model, n: int, *, timesteps: Sequence[int] | None = None, first_step: int = 10, seed: int = 0,
           name: str | None = None, **fields) -> algorithm2.Recipe:
    """A prequential Recipe for ``model`` on ``n`` labels: Algorithm 2 with the paper's defaults (cold, early
    stopping, calibration), timesteps ``first_step`` 2^k then n unless given, any Recipe field overridden by
    ``fields`` (e.g. ``epochs=10``, ``warm_start=True``)."""
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(algorithm2.Recipe)})
    if unknown:
        raise ValueError(f"unknown Recipe fields {unknown}; see mdl_utils.codes.algorithm2.Recipe")
    steps = algorithm2.check_timesteps(timesteps or algorithm2.default_timesteps(n, first_step), n)
    return algorithm2.Recipe(model=model_name(model, name), timesteps=tuple(steps), seed=seed, **fields)


def _checked_model(name: str, train: data.Dataset) -> None:
    """A one-line error when the network does not map the dataset's inputs to (batch, K) logits."""
    why = models.output_misfit(models.build(name, tuple(train.x.shape[1:]), train.K, seed=0), tuple(train.x.shape[1:]),
                               train.K)
    if why:
        raise ValueError(f"model {name!r} does not fit the data ({train.n} inputs of shape {tuple(train.x.shape[1:])}, "
                         f"K = {train.K}): {why}")


def uniform(y, num_classes: int | None = None) -> CodeResult:
    """The uniform code of labels ``y`` (K = ``num_classes``, else max(y) + 1): n log2 K bits."""
    labels = y.y if isinstance(y, data.Dataset) else y
    ys = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    return uniform_code.uniform_code(dataset(np.zeros((len(ys), 1)), ys, num_classes=num_classes), scale=SCALE)


def prequential(model: Model, x, y=None, *, test=None, name: str | None = None, seed: int = 0, device: str = "auto",
                progress: bool = False, **recipe_fields) -> CodeResult:
    """The prequential code (Sec. 3.4, Algorithm 2) of labels ``y`` given inputs ``x`` with ``model``, trained block
    by block on the labels already sent; ``recipe_fields`` as :func:`recipe` takes them (timesteps, epochs,
    warm_start, ...); ``test``: a (x_test, y_test) pair or Dataset for the test accuracy of each block's model."""
    train = dataset(x, y, seed=seed)
    r = recipe(model, train.n, seed=seed, name=name, **recipe_fields)
    _checked_model(r.model, train)
    held_out = None if test is None else (test if isinstance(test, data.Dataset) else
                                          dataset(*test, name="arrays test", num_classes=train.K, seed=None))
    return algorithm2.prequential_code(train, held_out, r, scale=SCALE, device=device, progress=progress)


def switch(*runs: CodeResult) -> CodeResult:
    """The switch mixture (App. E.1) over prequential codes of the same labels in the same order (results of
    :func:`prequential`) and the uniform code, label by label."""
    if not runs or any(r.code != "prequential" or "bits" not in r.arrays for r in runs):
        raise ValueError("switch() takes results of mdl_utils.prequential(...) on the same labels, at least one")
    return switch_code.mixture_result(list(runs), [r.arrays["bits"] for r in runs], switch_code.Settings())


def compress_labels(model: Model, x, y, path: str | Path, *, name: str | None = None, seed: int = 0,
             **recipe_fields) -> files.Encoded:
    """Write labels ``y`` into the file ``path`` with the prequential code of ``model`` (a self-describing file:
    the recipe travels in it; the receiver needs the inputs ``x`` and the same model function), on the CPU with the
    book's numerics (portable by default: the file decodes on any x86-64 CPU with AVX2 of the encoder's vendor)."""
    train = dataset(x, y, seed=seed)
    r = recipe(model, train.n, seed=seed, name=name, **recipe_fields)
    _checked_model(r.model, train)
    enc = files.encode(train, files.PrequentialCode(train.n, train.K, scales.as_params(r)), describe=True,
                       progress=False)
    coder.write(path, enc.data)
    return enc


def decompress_labels(path: str | Path, model: Model, x, *, name: str | None = None) -> np.ndarray:
    """The labels in the file ``path``, decoded from the inputs ``x`` alone (in the order given to
    :func:`compress_labels`) with the same model function (registered under the same name)."""
    raw = coder.read(path)
    header = coder.unpack(raw).header
    if header.description is None:
        raise coder.CodingError(f"{path} is not self-describing; decode it with python -m mdl_utils.decompress")
    model_name(model, name)
    inputs = header.description["inputs"]
    xs = arrays.checked_inputs(x, "x")
    order = data.transmission_order(len(xs), header.seed)
    bob = data.Dataset(name=inputs["name"], split="train", x=xs[torch.from_numpy(order)], y=torch.full((len(xs),), -1),
                       K=inputs["K"], classes=inputs.get("classes") or [str(c) for c in range(inputs["K"])],
                       source="arrays given to mdl_utils", seed=header.seed, indices=order)
    labels = files.decode(raw, bob.head(header.n), progress=False).labels
    out = np.empty_like(labels)
    out[order[:header.n]] = labels  # back to the order of x
    return out
