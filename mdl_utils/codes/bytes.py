"""Chapter 9: from bounds to bytes. The book's codes written into files and read back (the codes as files:
:mod:`mdl_utils.codes.files`; the coder: :mod:`mdl_utils.coder`).

For each code of the chapter's settings (``uniform``, ``prequential_<run>``, ``two_part_<model>``,
``switch-<run>-...-uniform``, ``self_switch_<run>``), :func:`compute` encodes the training labels, writes the file,
reads it back, decodes it as Bob would (from the header and the model's name) and checks that the labels and
Bob's probabilities are Alice's; the result's codelength is the file's size, its parts the computed codelength,
the header, the payload and the per-block checks.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch

from .. import codes, coder, data, scales
from ..coder import CodingError
from ..results import CodeResult, Stopwatch, provenance
from . import prequential, switch, two_part
from .files import Decoded, Encoded, code_for, decode, encode, switch_models

CHAPTER = "bytes"



# ---------------------------------------------------------------- the codes






























# ------------------------------------------------------------ the header




























# ------------------------------------------------------------ encode, decode














# ---------------------------------------------------------------- the chapter


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per dataset, the codes written to a file and read back (``uniform``, ``<code>_<model>``,
    ``switch-<model>-...-uniform``), with the settings of their chapters at the same scale; ``num_threads``:
    torch CPU threads of encoder and decoder (both must use the same); ``parallel_chains``: one process per
    prequential chain of the switch code."""

    num_threads: int = 1
    parallel_chains: bool = True
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("uniform", "prequential_mlp", "prequential_vgg_mnist", "two_part_mlp",
                  "switch-mlp-vgg_mnist-uniform", "self_switch_vgg_mnist"),
        "cifar10": ("uniform", "prequential_mlp", "prequential_vgg_cifar", "switch-mlp-vgg_cifar-uniform",
                    "self_switch_vgg_cifar"),
        "synthetic": ("uniform", "prequential_mlp")})


_SMOKE = ("uniform", "prequential_mlp", "two_part_mlp", "switch-mlp-uniform", "self_switch_mlp")
SCALES = {
    "smoke": dict(parallel_chains=False, models={"mnist": _SMOKE, "cifar10": ("uniform", "prequential_mlp"),
                                                 "synthetic": _SMOKE}),
    # cpu: the MNIST codes whose chains take minutes on 2 cores (a switch between the paper's MLP recipe and ours);
    # CIFAR-10: uniform, the MLP's prequential code and a switch between it and our best run, vgg6_warm (its chain
    # takes half an hour, twice per round trip).
    "cpu": dict(models={"mnist": ("uniform", "prequential_mlp", "prequential_mlp_warm", "two_part_mlp",
                                  "switch-mlp-mlp_warm-uniform", "self_switch_mlp"),
                        "cifar10": ("uniform", "prequential_mlp", "switch-mlp-vgg6_warm-uniform"),
                        "synthetic": ("uniform", "prequential_mlp")}),
}


settings = scales.settings_of(Settings, SCALES)


def split_name(model: str) -> tuple[str, str | None]:
    """"prequential_mlp" -> ("prequential", "mlp"); "switch-mlp-uniform" -> ("switch", "mlp");
    "uniform" -> ("uniform", None)."""
    if model.split("-")[0] == switch.MIXTURE:
        return "switch", "-".join(switch_models(model)) or None
    for code in ("uniform", "prequential", "two_part", "self_switch"):
        if model == code or model.startswith(code + "_"):
            return code, (model[len(code) + 1:] or None)
    raise ValueError(f"unknown code in {model!r}; write uniform, prequential_<model>, two_part_<model>, "
                     "self_switch_<model> or switch-<model>-...-uniform")


def networks(model: str, dataset: str, scale: str) -> list[str]:
    """The architectures a file code trains (the registry's hook): a two-part code's network, the prequential
    runs' recipes of the other codes, none for the uniform code."""
    code, network = split_name(model)
    if code == "uniform" or not network:
        return []
    if code == "two_part":
        return [network]
    return [n for m in switch_models(network) for n in codes.networks("prequential", m, dataset, scale)]


def result_model(code) -> str:
    """The chapter's model name of a code: uniform, <code>_<model>, switch-<model>-...-uniform."""
    if code.name == "switch":
        return switch.mixture_name(switch_models(code.model_arg))
    return "uniform" if code.model_arg is None else f"{code.name}_{code.model_arg}"


def chapter_counterpart(result: CodeResult) -> tuple[str, str] | None:
    """(chapter, model) of the stored result whose codelength this file's computed codelength reproduces."""
    code, network = result.params["code"], result.params["network"]
    return {"prequential": ("prequential", network), "switch": ("switch", result.model),
            "self_switch": ("switch", network)}.get(code)


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """Encode, write, read, decode and check the training labels of ``dataset`` with the code ``model``
    (e.g. "prequential_mlp", "switch-mlp-uniform") on the CPU, as many labels as that code's chapter sends."""
    if device not in ("auto", "cpu"):
        raise ValueError("the coder runs on the CPU only (device='cpu'): GPU kernels are not bit-for-bit "
                         "reproducible for Bob")
    code_name, network = split_name(model)
    n = (two_part.settings(scale) if code_name == "two_part" else prequential.settings(scale)).n_train
    train = data.load(dataset, "train", root=data_root, n=n, seed=seed)
    code = code_for(code_name, train.name, train.n, train.K, network, scale, seed)
    s = settings(scale)
    with tempfile.TemporaryDirectory() as tmp:
        return round_trip(train, code, scale=scale, path=Path(tmp) / "labels.mdl", num_threads=s.num_threads,
                          parallel=s.parallel_chains, progress=False)


def round_trip(dataset: data.Dataset, code, *, scale: str, path: str | Path | None = None, num_threads: int = 1,
               parallel: bool = False, progress: bool = True) -> CodeResult:
    """Encode, (write, read,) decode, check; the CodeResult of chapter ``bytes``. Bob rebuilds the code from the
    header and the model name when it has a named scale. Raises CodingError when the decoded labels or
    probabilities differ from Alice's."""
    with Stopwatch() as sw:
        enc = encode(dataset, code, num_threads=num_threads, parallel=parallel, progress=progress)
        data_ = coder.read(coder.write(path, enc.data)) if path is not None else enc.data
        bob = dataclasses.replace(dataset, y=torch.full_like(dataset.y, -1))
        dec = decode(data_, bob, None if code.scale else code, model=code.model_arg, num_threads=num_threads,
                     parallel=parallel, progress=progress)
    labels_ok = bool(np.array_equal(dec.labels, dataset.y.numpy()))
    probs_ok = bool(np.array_equal(dec.probs, enc.probs))
    if not (labels_ok and probs_ok):
        raise CodingError(f"round trip failed: labels equal {labels_ok}, probabilities equal {probs_ok}")
    return _result(dataset, code, enc, dec, scale, parallel, sw)


def _result(dataset, code, enc: Encoded, dec: Decoded, scale: str, parallel: bool, sw) -> CodeResult:
    """The chapter's CodeResult of a checked round trip: the file size is the codelength; parts split it."""
    payload_overhead = enc.payload_bits + enc.model_bits - enc.codelength_bits
    described = enc.header.description is not None
    reference = enc.codelength_bits if enc.reference_bits is None else enc.reference_bits
    return CodeResult(
        code="bytes", dataset=dataset.name, model=result_model(code), scale=scale, n=dataset.n, K=dataset.K,
        seed=dataset.seed or 0, codelength_bits=float(enc.file_bits),
        parts={"computed_codelength_bits": enc.codelength_bits, "reference_codelength_bits": float(reference),
               "model_bits": float(enc.model_bits), "payload_bits": float(enc.payload_bits),
               "header_bits": float(enc.header_bits), "fixed_header_bits": float(enc.sections["header"]),
               "self_describing_header_bits": float(enc.header_bits + (0 if described else enc.description_bits)),
               "file_bytes": float(len(enc.data)), "file_bits": float(enc.file_bits),
               "check_bits": float(enc.check_bits),
               "overhead_bits": enc.file_bits - enc.codelength_bits, "payload_overhead_bits": payload_overhead},
        params={"code": code.name, "network": code.model_arg, "encode_seconds": enc.seconds,
                "decode_seconds": dec.seconds, "round_trip_labels_equal": True,
                "round_trip_probabilities_equal": True, "num_threads": enc.description["environment"]["num_threads"],
                "parallel_chains": parallel, "format_version": coder.FORMAT_VERSION, "header": enc.description},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=dataset.source),
        note=("codelength_bits is the actual file size (compact header included); parts.computed_codelength_bits "
              "is the code's bound sum -log2 p; labels and Bob's probabilities checked equal to Alice's"),
    )






