"""Chapter 9: from bounds to bytes. The book's codes as actual files (the coder is :mod:`mdl_utils.coder`).

Alice writes the training labels into a file with a range coder under the
per-sample distributions of a code; Bob, who has the inputs x and the file,
recovers every label. Each code is one object with the same five methods, so
that one loop encodes and one loop decodes every code, block by block:

* ``prepare(dataset)`` (Alice): whatever the file carries besides the labels (two_part: the float32 weights);
* ``load(model_bytes, x)`` (Bob): read it back;
* ``blocks()``: the stretches [start, end) of labels coded with one set of distributions;
* ``logits(x, y_prefix, start, end)``: the logits of labels start..end-1, from the labels before ``start``
  only (the prequential code retrains its block model from the seed, Algorithm 2);
* ``bits(logits, y, start)``: the code's computed codelength of a block (what the chapters report).

Codes: ``uniform`` (p = 1/K, Sec. 2.3), ``prequential`` (Sec. 3.4) and
``two_part`` (Sec. 3.1), with the settings of their chapters at a scale.
Determinism: Bob's models equal Alice's bit for bit only with the same torch
build, device (CPU) and thread count; encode and decode set the thread count
(default 1) and record it in the header.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import chapters, coder, data, scales
from ..bits import per_sample_bits, uniform_bits
from ..checkpoint import digest
from ..coder import CodingError
from ..models import build
from ..results import CodeResult, Stopwatch, provenance
from ..training import predict_logits, torch_threads
from . import prequential, two_part

CHAPTER = "bytes"
CODES = ("uniform", "prequential", "two_part")


# ---------------------------------------------------------------- the codes


class UniformCode:
    """p(y) = 1/K for every label (Sec. 2.3)."""

    name = "uniform"

    def __init__(self, n: int, num_classes: int, settings: dict | None = None):
        self.n, self.K, self.settings = n, num_classes, None

    def prepare(self, dataset) -> bytes:
        return b""

    def load(self, model_bytes: bytes, x: torch.Tensor) -> None:
        pass

    def blocks(self) -> list[tuple[int, int]]:
        return [(0, self.n)]

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        return torch.zeros(end - start, self.K)

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> float:
        return uniform_bits(len(y), self.K)


class PrequentialCode(UniformCode):
    """Algorithm 2: the first block uniform, then each block with the model trained on the labels before it."""

    name = "prequential"

    def __init__(self, n: int, num_classes: int, settings: dict):
        super().__init__(n, num_classes)
        d = dict(settings)
        d.update(timesteps=tuple(prequential.check_timesteps(d["timesteps"], n)),
                 temperature_range=tuple(d["temperature_range"]))
        self.recipe = prequential.Recipe(**d)
        self.settings = scales.as_params(self.recipe)

    def blocks(self) -> list[tuple[int, int]]:
        steps = self.recipe.timesteps
        return [(0, steps[0]), *zip(steps[:-1], steps[1:])]

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        if start == 0:
            return super().logits(x, y_prefix, start, end)
        return prequential.block_logits(x, y_prefix, end, self.K, self.recipe, "cpu")

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> float:
        return uniform_bits(len(y), self.K) if start == 0 else float(per_sample_bits(logits, y).sum())


class TwoPartCode(UniformCode):
    """Sec. 3.1: the float32 weights travel in the file, then every label with that model."""

    name = "two_part"

    def __init__(self, n: int, num_classes: int, settings: dict):
        super().__init__(n, num_classes)
        self.settings, self.net = dict(settings), None

    def _model(self, x) -> torch.nn.Module:
        return build(self.settings["model"], tuple(x.shape[1:]), self.K, seed=self.settings["seed"])

    def prepare(self, dataset) -> bytes:
        s = self.settings
        fields = {f.name for f in dataclasses.fields(two_part.Settings)}
        chapter = dataclasses.replace(two_part.Settings(), **{k: v for k, v in s.items() if k in fields})
        net, _ = two_part.train_model(dataset, s["model"], chapter, seed=s["seed"], device="cpu", progress=False)
        model_bytes = two_part.serialize_float32(net)
        self.load(model_bytes, dataset.x)  # Alice codes with the weights as Bob reads them back
        return model_bytes

    def load(self, model_bytes: bytes, x: torch.Tensor) -> None:
        try:
            self.net = two_part.deserialize_float32(model_bytes, self._model(x))
        except ValueError as e:
            raise CodingError(f"model section does not fit {self.settings['model']}: {e}") from None

    def logits(self, x, y_prefix, start: int, end: int) -> torch.Tensor:
        return predict_logits(self.net, x[start:end], "cpu")

    def bits(self, logits: torch.Tensor, y: torch.Tensor, start: int) -> float:
        return float(per_sample_bits(logits, y).sum())


CODE_CLASSES = {c.name: c for c in (UniformCode, PrequentialCode, TwoPartCode)}


def code_for(code: str, dataset: str, n: int, num_classes: int, network: str | None, scale: str, seed: int = 0):
    """The code object Alice uses at ``scale``: the prequential/two_part chapters' settings."""
    if code not in CODE_CLASSES:
        raise ValueError(f"unknown code {code!r}; choose one of {', '.join(CODES)}")
    if code == "uniform":
        return UniformCode(n, num_classes)
    if network is None:
        raise ValueError(f"the {code} code needs a model (--model), e.g. mlp")
    if code == "prequential":
        recipe = dataclasses.replace(prequential.settings(scale).recipe(dataset, network, n, seed), record_epochs=False)
        return PrequentialCode(n, num_classes, scales.as_params(recipe))
    s = two_part.settings(scale)
    return TwoPartCode(n, num_classes, {"model": network, "seed": seed, "epochs": s.epochs, "lr": s.lr,
                                        "batch_size": s.batch_size, "patience": s.patience,
                                        "val_fraction": s.val_fraction})


def code_from_header(header: dict):
    """Bob's code object, from what the file's header says."""
    name, ds = header["code"], header["dataset"]
    if name not in CODE_CLASSES:
        raise CodingError(f"the file uses code {name!r}, which this mdl_utils cannot decode ({', '.join(CODES)})")
    return CODE_CLASSES[name](ds["n"], ds["K"], header.get("settings"))


# ------------------------------------------------------------ encode, decode


@dataclasses.dataclass
class Encoded:
    """What Alice wrote: the file's bytes, its header, the probabilities used, sizes and time."""

    data: bytes
    header: dict
    probs: np.ndarray              # (n, K) float32, the coder's input for every label
    codelength_bits: float         # the code's computed codelength sum -log2 p (float64), model bits included
    model_bits: int                # bits of the model section (two_part)
    payload_bits: int              # 32 * range-coder words
    seconds: float

    @property
    def file_bits(self) -> int:
        return 8 * len(self.data)

    @property
    def header_bits(self) -> int:
        """Everything in the file besides model and payload: prefix, header, lengths, CRC."""
        return self.file_bits - self.payload_bits - self.model_bits


@dataclasses.dataclass
class Decoded:
    labels: np.ndarray             # int64
    probs: np.ndarray              # (n, K) float32, as recomputed by Bob
    header: dict
    seconds: float


def _header(dataset, code, num_threads: int) -> dict:
    header = {"code": code.name, "labels_sha256": coder.labels_fingerprint(dataset.y.numpy()),
              "dataset": {"name": dataset.name, "split": dataset.split, "n": dataset.n, "K": dataset.K,
                          "order_seed": dataset.seed, "inputs_sha256": digest(dataset.x)},
              "num_threads": num_threads, "device": "cpu", "torch": torch.__version__,
              "constriction": version("constriction"),
              "quantization": "softmax float64 -> float32, constriction Categorical(perfect=False), 24-bit"}
    if code.settings is not None:
        header["settings"] = code.settings
    return header


def encode(dataset: data.Dataset, code, *, num_threads: int | None = 1, progress: bool = True) -> Encoded:
    """Alice: write ``dataset.y`` with ``code`` (an object of :data:`CODE_CLASSES`) into the bytes of a file."""
    y = dataset.y.numpy().astype(np.int64)
    header = _header(dataset, code, num_threads or torch.get_num_threads())
    rc, probs, t0 = coder.RangeCoder(), np.empty((dataset.n, dataset.K), dtype=np.float32), time.perf_counter()
    with torch_threads(num_threads):
        model_bytes = code.prepare(dataset)
        computed = 8.0 * len(model_bytes)
        for start, end in tqdm(code.blocks(), desc=f"encode {dataset.name}/{code.name}", disable=not progress):
            logits = code.logits(dataset.x, dataset.y[:start].clone(), start, end)
            probs[start:end] = coder.probabilities(logits)
            computed += code.bits(logits, dataset.y[start:end], start)
            rc.encode(y[start:end], probs[start:end])
    payload = rc.words()
    return Encoded(data=coder.pack(header, payload, model_bytes), header=header, probs=probs,
                   codelength_bits=computed, model_bits=8 * len(model_bytes), payload_bits=32 * len(payload),
                   seconds=time.perf_counter() - t0)


def check_dataset(header: dict, dataset) -> None:
    """Refuse to decode with inputs other than Alice's (name, split, size, order, SHA-256 of x)."""
    want = header["dataset"]
    if dataset.name != want["name"]:
        raise CodingError(f"wrong dataset: the file holds labels of {want['name']!r}, not {dataset.name!r}; "
                          f"decode with --dataset {want['name']}")
    for key, have in (("split", dataset.split), ("n", dataset.n), ("K", dataset.K), ("order_seed", dataset.seed)):
        if want[key] != have:
            raise CodingError(f"wrong inputs: the file was encoded with {key}={want[key]!r}, the inputs given have "
                              f"{key}={have!r}; load the dataset as the header says")
    if digest(dataset.x) != want["inputs_sha256"]:
        raise CodingError(f"wrong inputs: SHA-256 of the inputs differs from the encoder's ({want['inputs_sha256']}); "
                          f"use the same {want['name']} files and order seed")


def decode(data_: bytes, dataset: data.Dataset, *, progress: bool = True) -> Decoded:
    """Bob: recover the labels from the file's bytes and the inputs ``dataset.x`` (never reads ``dataset.y``).

    Checks the file (magic, version, length, CRC32), that ``dataset`` holds Alice's inputs, and after decoding
    the SHA-256 of the labels.
    """
    header, model_bytes, payload = coder.unpack(data_)
    check_dataset(header, dataset)
    code, (n, k) = code_from_header(header), (header["dataset"]["n"], header["dataset"]["K"])
    rc, t0 = coder.RangeCoder(payload), time.perf_counter()
    probs, labels = np.empty((n, k), dtype=np.float32), np.empty(n, dtype=np.int64)
    with torch_threads(header["num_threads"]):
        code.load(model_bytes, dataset.x)
        for start, end in tqdm(code.blocks(), desc=f"decode {header['dataset']['name']}/{code.name}",
                               disable=not progress):
            logits = code.logits(dataset.x, torch.from_numpy(labels[:start].copy()), start, end)
            probs[start:end] = coder.probabilities(logits)
            labels[start:end] = rc.decode(probs[start:end])
    if coder.labels_fingerprint(labels) != header["labels_sha256"]:
        raise CodingError("decoded labels fail the SHA-256 check: Bob's model differs from Alice's (other torch "
                          f"version or thread count? the file was written with torch {header['torch']}, "
                          f"{header['num_threads']} thread(s), on the CPU)")
    return Decoded(labels=labels, probs=probs, header=header, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- the chapter


@dataclasses.dataclass(frozen=True)
class Settings:
    """Per dataset, the codes written to a file and read back (``uniform``, ``<code>_<model>``), with the
    settings of their chapters at the same scale; ``num_threads``: torch CPU threads of encoder and decoder
    (recorded in the file; both must use the same)."""

    num_threads: int = 1
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("uniform", "prequential_mlp", "prequential_vgg_mnist", "two_part_mlp"),
        "cifar10": ("uniform", "prequential_mlp", "prequential_vgg_cifar"),
        "synthetic": ("uniform", "prequential_mlp")})


SCALES = {
    "smoke": dict(models={"mnist": ("uniform", "prequential_mlp", "two_part_mlp"),
                          "cifar10": ("uniform", "prequential_mlp"),
                          "synthetic": ("uniform", "prequential_mlp", "two_part_mlp")}),
    "cpu": dict(models={"mnist": ("uniform", "prequential_mlp", "two_part_mlp"), "cifar10": ("uniform",),
                        "synthetic": ("uniform", "prequential_mlp")}),
}


def settings(scale: str) -> Settings:
    return scales.resolve(Settings, SCALES, scale)


def runs(dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    return [(dataset, m) for m in (models or chapters.models_for(dataset, settings(scale).models))]


def split_name(model: str) -> tuple[str, str | None]:
    """"prequential_mlp" -> ("prequential", "mlp"); "uniform" -> ("uniform", None)."""
    for code in CODES:
        if model == code or model.startswith(code + "_"):
            return code, (model[len(code) + 1:] or None)
    raise ValueError(f"unknown code in {model!r}; write uniform, prequential_<model> or two_part_<model>")


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None) -> CodeResult:
    """Encode, write, read, decode and check the training labels of ``dataset`` with the code ``model``
    (e.g. "prequential_mlp") on the CPU, as many labels as that code's chapter sends at ``scale``."""
    if device not in ("auto", "cpu"):
        raise ValueError("the coder runs on the CPU only (device='cpu'): GPU kernels are not bit-for-bit "
                         "reproducible for Bob")
    code_name, network = split_name(model)
    n = (two_part.settings(scale) if code_name == "two_part" else prequential.settings(scale)).n_train
    train = data.load(dataset, "train", root=data_root, n=n, seed=seed)
    code = code_for(code_name, train.name, train.n, train.K, network, scale, seed)
    with tempfile.TemporaryDirectory() as tmp:
        return round_trip(train, code, scale=scale, path=Path(tmp) / "labels.mdl",
                          num_threads=settings(scale).num_threads, progress=False)


def round_trip(dataset: data.Dataset, code, *, scale: str, path: str | Path | None = None,
               num_threads: int | None = 1, progress: bool = True) -> CodeResult:
    """Encode, (write, read,) decode, check; the CodeResult of chapter ``bytes``.

    Raises CodingError when the decoded labels or probabilities differ from Alice's.
    """
    network = None if code.name == "uniform" else code.settings["model"]
    with Stopwatch() as sw:
        enc = encode(dataset, code, num_threads=num_threads, progress=progress)
        data_ = enc.data
        if path is not None:
            data_ = coder.read(coder.write(path, data_))
        dec = decode(data_, dataclasses.replace(dataset, y=torch.full_like(dataset.y, -1)), progress=progress)
    labels_ok = bool(np.array_equal(dec.labels, dataset.y.numpy()))
    probs_ok = bool(np.array_equal(dec.probs, enc.probs))
    if not (labels_ok and probs_ok):
        raise CodingError(f"round trip failed: labels equal {labels_ok}, probabilities equal {probs_ok}")
    return CodeResult(
        code="bytes", dataset=dataset.name, model="uniform" if network is None else f"{code.name}_{network}",
        scale=scale, n=dataset.n, K=dataset.K, seed=dataset.seed or 0, codelength_bits=float(enc.file_bits),
        parts={"computed_codelength_bits": enc.codelength_bits, "model_bits": float(enc.model_bits),
               "payload_bits": float(enc.payload_bits), "header_bits": float(enc.header_bits),
               "file_bytes": float(len(enc.data)), "file_bits": float(enc.file_bits),
               "overhead_bits": enc.file_bits - enc.codelength_bits,
               "payload_overhead_bits": enc.payload_bits + enc.model_bits - enc.codelength_bits},
        params={"code": code.name, "network": network, "encode_seconds": enc.seconds, "decode_seconds": dec.seconds,
                "round_trip_labels_equal": labels_ok, "round_trip_probabilities_equal": probs_ok,
                "num_threads": enc.header["num_threads"], "format_version": coder.FORMAT_VERSION,
                "header": enc.header},
        provenance=provenance(device="cpu", stopwatch=sw, data_source=dataset.source),
        note=("codelength_bits is the actual file size (header included); parts.computed_codelength_bits is the "
              "code's bound sum -log2 p; labels and Bob's probabilities checked equal to Alice's"),
    )


def summary(enc: Encoded) -> str:
    """One line per quantity, for the command line."""
    n = enc.header["dataset"]["n"]
    return "\n".join([
        f"code {enc.header['code']} on {enc.header['dataset']['name']} ({n:,} labels, K={enc.header['dataset']['K']})",
        f"computed codelength: {enc.codelength_bits:,.1f} bits ({enc.codelength_bits / n:.4f} bits/label)",
        f"file: {len(enc.data):,} bytes = {enc.file_bits:,} bits ({enc.file_bits / n:.4f} bits/label): payload "
        f"{enc.payload_bits:,}, model {enc.model_bits:,}, header {enc.header_bits:,} bits",
        f"overhead: {enc.file_bits - enc.codelength_bits:+,.1f} bits (payload alone "
        f"{enc.payload_bits + enc.model_bits - enc.codelength_bits:+,.1f})",
        f"encode time: {enc.seconds:.2f} s ({enc.header['num_threads']} torch thread(s))",
    ])
