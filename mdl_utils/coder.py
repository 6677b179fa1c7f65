"""From bounds to bytes: an actual entropy coder for the labels, and its file format.

Every codelength of the book is a bound, sum_i -log2 p(y_i | x_i) (Prop. 1,
Sec. 2.2). Here Alice writes the labels into a file with a range coder
(Witten, Neal & Cleary 1987; the ``constriction`` package) under the
per-sample categorical distributions of a code, and Bob, who has the inputs x
and the file, recovers every label. Arithmetic/range coding spends at most a
few dozen bits over the bound for the whole message (here: whole 32-bit words).

Codes: ``uniform`` (p = 1/K, Sec. 2.3), ``prequential`` (Algorithm 2, Sec. 3.4:
Bob retrains each block's model from the seed on the labels he has decoded so
far) and ``two_part`` (Sec. 3.1: the float32 weights travel in the file).

Quantization, identical on both sides: p = softmax(logits) in float64, cast to
float32, passed to ``constriction.stream.model.Categorical(perfect=False)``,
which rounds to 24-bit fixed point and gives every class at least 2^-24 (a
label the model deems impossible still costs at most 24 bits).

File layout (all integers little-endian)::

    "MDLB"  format version (u8)  total file length (u64)
    header length (u32)  header (zlib-compressed UTF-8 JSON, sorted keys)
    model length (u32)   model bytes (two_part: float32 weights; else empty)
    payload words (u32)  payload (range-coder words, u32 each)
    CRC32 of everything above (u32)

The header holds the code, the dataset (name, split, n, K, order seed, a
SHA-256 of the inputs), the settings and timesteps, the torch thread count and
versions, and a SHA-256 of the labels, which Bob checks after decoding.
Determinism: Bob's models equal Alice's bit for bit only with the same torch
build, device (CPU) and thread count; encode/decode set the thread count
(default 1) and record it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

MAGIC = b"MDLB"
FORMAT_VERSION = 1
CODES = ("uniform", "prequential", "two_part")
_PREFIX = struct.Struct("<4sBQ")  # magic, version, total length
_U32 = struct.Struct("<I")


class CodingError(ValueError):
    """A labels file cannot be decoded: corrupted, truncated, or meant for other inputs."""


# ---------------------------------------------------------------- helpers


def fingerprint(array: torch.Tensor | np.ndarray) -> str:
    """First 16 hex digits of the SHA-256 of an array's bytes (dtype and shape included)."""
    a = np.ascontiguousarray(array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def labels_fingerprint(labels) -> str:
    """SHA-256 (16 hex digits) of the labels as int64."""
    return fingerprint(np.asarray(labels, dtype=np.int64))


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """The coder's input: softmax(logits) computed in float64, cast to float32 (same rule on both sides)."""
    return torch.softmax(torch.as_tensor(logits).detach().to(torch.float64), dim=1).numpy().astype(np.float32)


def uniform_probabilities(n: int, num_classes: int) -> np.ndarray:
    return np.full((n, num_classes), 1.0 / num_classes, dtype=np.float32)


def _family():
    import constriction

    return constriction.stream.model.Categorical(perfect=False)


def _encode_block(encoder, labels: np.ndarray, probs: np.ndarray) -> None:
    if len(labels):
        encoder.encode(np.asarray(labels, dtype=np.int32), _family(), np.ascontiguousarray(probs, np.float32))


def _decode_block(decoder, probs: np.ndarray) -> np.ndarray:
    if not len(probs):
        return np.zeros(0, dtype=np.int64)
    return np.asarray(decoder.decode(_family(), np.ascontiguousarray(probs, np.float32)), dtype=np.int64)


# ---------------------------------------------------------------- the file


def pack(header: dict, payload: np.ndarray, model_bytes: bytes = b"") -> bytes:
    """The bytes of a labels file (layout in the module docstring)."""
    h = zlib.compress(json.dumps(header, sort_keys=True, separators=(",", ":")).encode(), 9)
    words = np.asarray(payload, dtype="<u4").tobytes()
    body = _U32.pack(len(h)) + h + _U32.pack(len(model_bytes)) + model_bytes + _U32.pack(len(words) // 4) + words
    total = _PREFIX.size + len(body) + _U32.size
    data = _PREFIX.pack(MAGIC, FORMAT_VERSION, total) + body
    return data + _U32.pack(zlib.crc32(data))


def unpack(data: bytes) -> tuple[dict, bytes, np.ndarray]:
    """(header, model bytes, payload words) of a labels file; any defect raises CodingError."""
    if len(data) < _PREFIX.size or data[:4] != MAGIC:
        raise CodingError("not an mdl_utils labels file (bad magic bytes); give a file written by mdl_utils.compress")
    _, version, total = _PREFIX.unpack_from(data)
    if version != FORMAT_VERSION:
        raise CodingError(f"labels file format version {version}, this mdl_utils reads version {FORMAT_VERSION}")
    if len(data) < total:
        raise CodingError(f"truncated file: {len(data)} bytes, its header says {total}; copy the whole file again")
    if len(data) > total:
        raise CodingError(f"file has {len(data) - total} bytes after its end ({total} bytes declared); "
                          "corrupted or concatenated")
    (crc,) = _U32.unpack_from(data, total - 4)
    if zlib.crc32(data[:total - 4]) != crc:
        raise CodingError("corrupted file: CRC32 checksum mismatch (a byte was changed); copy the file again")
    pos = _PREFIX.size
    parts = []
    for _ in range(3):
        (size,) = _U32.unpack_from(data, pos)
        size = size * 4 if len(parts) == 2 else size
        parts.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    if pos != total - 4:
        raise CodingError("corrupted file: section lengths do not add up to the file length")
    header = json.loads(zlib.decompress(parts[0]).decode())
    return header, parts[1], np.frombuffer(parts[2], dtype="<u4").astype(np.uint32)


def write(path: str | Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise CodingError(f"{path}: no such labels file")
    return path.read_bytes()


# ---------------------------------------------------------------- codes


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
        """Everything in the file besides model and payload: prefix, header JSON, lengths, CRC."""
        return self.file_bits - self.payload_bits - self.model_bits


@dataclasses.dataclass
class Decoded:
    labels: np.ndarray             # int64
    probs: np.ndarray              # (n, K) float32, as recomputed by Bob
    header: dict
    seconds: float


def _dataset_header(dataset) -> dict:
    return {"name": dataset.name, "split": dataset.split, "n": dataset.n, "K": dataset.K,
            "order_seed": dataset.seed, "inputs_sha256": fingerprint(dataset.x)}


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
    if fingerprint(dataset.x) != want["inputs_sha256"]:
        raise CodingError(f"wrong inputs: SHA-256 of the inputs differs from the encoder's ({want['inputs_sha256']}); "
                          f"use the same {want['name']} files and order seed")


def _prequential_settings(header: dict):
    from .codes.prequential import PrequentialSettings

    return PrequentialSettings(**header["settings"])


def _two_part_model(header: dict, input_shape):
    from .models import build

    s = header["settings"]
    return build(s["model"], tuple(input_shape), header["dataset"]["K"], seed=s["seed"])


def encode(dataset, code: str, settings: Any = None, *, device: str = "cpu", num_threads: int | None = 1,
           progress: bool = True) -> Encoded:
    """Alice: write ``dataset.y`` with ``code`` into the bytes of a labels file.

    ``settings``: a PrequentialSettings for ``prequential``; for ``two_part`` a
    dict with model, epochs, lr, batch_size, patience, val_fraction, seed
    (mdl_utils.training.fit). ``num_threads`` torch threads during the run
    (recorded; Bob uses the same).
    """
    import constriction
    from tqdm import tqdm

    from .codes.shannon import per_sample_bits
    from .codes.uniform import uniform_bits
    from .training import fit, predict_logits, torch_threads

    if code not in CODES:
        raise ValueError(f"unknown code {code!r}; choose one of {', '.join(CODES)}")
    if torch.device(device).type != "cpu":
        raise ValueError("encode on the CPU (device='cpu'): GPU kernels are not bit-for-bit reproducible for Bob")
    y = dataset.y.numpy().astype(np.int64)
    n, k = dataset.n, dataset.K
    encoder = constriction.stream.queue.RangeEncoder()
    model_bytes = b""
    header = {"code": code, "dataset": _dataset_header(dataset), "labels_sha256": labels_fingerprint(y),
              "num_threads": num_threads or torch.get_num_threads(), "device": "cpu",
              "torch": torch.__version__, "constriction": "0.5.0", "quantization": "softmax float64 -> float32, "
              "constriction Categorical(perfect=False), 24-bit"}
    t0 = time.perf_counter()
    with torch_threads(num_threads):
        if code == "uniform":
            probs = uniform_probabilities(n, k)
            _encode_block(encoder, y, probs)
            computed = uniform_bits(n, k)
        elif code == "prequential":
            from .codes.prequential import block_logits, check_timesteps

            steps = check_timesteps(settings.timesteps, n)
            settings = dataclasses.replace(settings, timesteps=steps)
            header["settings"] = dataclasses.asdict(settings)
            probs = np.empty((n, k), dtype=np.float32)
            probs[:steps[0]] = 1.0 / k
            _encode_block(encoder, y[:steps[0]], probs[:steps[0]])
            computed = uniform_bits(steps[0], k)
            for t_s, t_next in tqdm(list(zip(steps[:-1], steps[1:])), desc=f"encode {dataset.name}/{settings.model}",
                                    disable=not progress):
                logits = block_logits(dataset.x, dataset.y[:t_s].clone(), t_next, k, settings, "cpu")
                probs[t_s:t_next] = probabilities(logits)
                computed += float(per_sample_bits(logits, dataset.y[t_s:t_next]).sum())
                _encode_block(encoder, y[t_s:t_next], probs[t_s:t_next])
        else:  # two_part
            from .codes.two_part import serialize_float32

            s = dict(settings)
            header["settings"] = s
            net = _two_part_model(header, dataset.x.shape[1:])
            fit(net, dataset.x, dataset.y, epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"],
                val_fraction=s["val_fraction"], patience=s["patience"], seed=s["seed"], device="cpu",
                progress=f"encode {dataset.name}/{s['model']}" if progress else False)
            model_bytes = serialize_float32(net)
            net = _two_part_model(header, dataset.x.shape[1:])  # Bob's view: the weights as read back
            from .codes.two_part import deserialize_float32

            deserialize_float32(model_bytes, net)
            logits = predict_logits(net, dataset.x, "cpu")
            probs = probabilities(logits)
            computed = 8 * len(model_bytes) + float(per_sample_bits(logits, dataset.y).sum())
            _encode_block(encoder, y, probs)
    payload = encoder.get_compressed()
    data = pack(header, payload, model_bytes)
    return Encoded(data=data, header=header, probs=probs, codelength_bits=computed, model_bits=8 * len(model_bytes),
                   payload_bits=32 * len(payload), seconds=time.perf_counter() - t0)


def decode(data: bytes, dataset, *, progress: bool = True) -> Decoded:
    """Bob: recover the labels from the file's bytes and the inputs ``dataset.x`` (never reads ``dataset.y``).

    Checks the file (magic, version, length, CRC32), that ``dataset`` holds
    Alice's inputs, and after decoding the SHA-256 of the labels.
    """
    import constriction
    from tqdm import tqdm

    from .training import predict_logits, torch_threads

    header, model_bytes, payload = unpack(data)
    check_dataset(header, dataset)
    code, n, k = header["code"], header["dataset"]["n"], header["dataset"]["K"]
    x = dataset.x
    decoder = constriction.stream.queue.RangeDecoder(payload)
    t0 = time.perf_counter()
    with torch_threads(header["num_threads"]):
        if code == "uniform":
            probs = uniform_probabilities(n, k)
            labels = _decode_block(decoder, probs)
        elif code == "prequential":
            from .codes.prequential import block_logits

            settings = _prequential_settings(header)
            steps = settings.timesteps
            probs = np.empty((n, k), dtype=np.float32)
            labels = np.empty(n, dtype=np.int64)
            probs[:steps[0]] = 1.0 / k
            labels[:steps[0]] = _decode_block(decoder, probs[:steps[0]])
            for t_s, t_next in tqdm(list(zip(steps[:-1], steps[1:])), desc=f"decode {header['dataset']['name']}/"
                                    f"{settings.model}", disable=not progress):
                logits = block_logits(x, torch.from_numpy(labels[:t_s].copy()), t_next, k, settings, "cpu")
                probs[t_s:t_next] = probabilities(logits)
                labels[t_s:t_next] = _decode_block(decoder, probs[t_s:t_next])
        elif code == "two_part":
            from .codes.two_part import deserialize_float32

            net = _two_part_model(header, x.shape[1:])
            try:
                deserialize_float32(model_bytes, net)
            except ValueError as e:
                raise CodingError(f"model section does not fit {header['settings']['model']}: {e}") from None
            probs = probabilities(predict_logits(net, x, "cpu"))
            labels = _decode_block(decoder, probs)
        else:
            raise CodingError(f"the file uses code {code!r}, which this mdl_utils cannot decode ({', '.join(CODES)})")
    if labels_fingerprint(labels) != header["labels_sha256"]:
        raise CodingError("decoded labels fail the SHA-256 check: Bob's model differs from Alice's (other torch "
                          f"version or thread count? the file was written with torch {header['torch']}, "
                          f"{header['num_threads']} thread(s), on the CPU)")
    return Decoded(labels=labels, probs=probs, header=header, seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------- settings by scale


def n_train_for(code: str, scale: str) -> int | None:
    """Training labels sent at ``scale`` (None: the whole split): the prequential chapter's n_train (two_part: its own)."""
    from .scales import settings as scale_settings

    return scale_settings("two_part" if code == "two_part" else "prequential", scale)["n_train"]


def settings_for(code: str, dataset: str, n: int, model: str | None, scale: str, seed: int = 0):
    """The settings Alice uses at ``scale``: the prequential/two_part chapters' (mdl_utils.scales)."""
    from .scales import settings as scale_settings

    if code == "uniform":
        return None
    if model is None:
        raise ValueError(f"the {code} code needs a model (--model), e.g. mlp")
    if code == "prequential":
        from .codes import prequential

        return prequential.settings_for(dataset, model, n, scale, seed=seed, record_epochs=False)
    if code == "two_part":
        cfg = scale_settings("two_part", scale)
        return {"model": model, "epochs": cfg["epochs"], "lr": cfg["lr"], "batch_size": 128,
                "patience": cfg["patience"], "val_fraction": 0.1, "seed": seed}
    raise ValueError(f"unknown code {code!r}; choose one of {', '.join(CODES)}")


def round_trip(dataset, code: str, settings: Any = None, *, scale: str, path: str | Path | None = None,
               num_threads: int | None = 1, progress: bool = True):
    """Encode, (write, read,) decode, check; the CodeResult of chapter ``bytes`` (code ``bytes_<code>``).

    Raises CodingError when the decoded labels or probabilities differ from Alice's.
    """
    from .results import CodeResult, Stopwatch, provenance

    network = None if code == "uniform" else (settings.model if code == "prequential" else settings["model"])
    model = "uniform" if network is None else f"{code}_{network}"  # one results file per (code, network)
    with Stopwatch() as sw:
        enc = encode(dataset, code, settings, num_threads=num_threads, progress=progress)
        data = enc.data
        if path is not None:
            write(path, data)
            data = read(path)
        bob = dataclasses.replace(dataset, y=torch.full_like(dataset.y, -1))  # Bob has no labels
        dec = decode(data, bob, progress=progress)
    labels_ok = bool(np.array_equal(dec.labels, dataset.y.numpy()))
    probs_ok = bool(np.array_equal(dec.probs, enc.probs))
    if not (labels_ok and probs_ok):
        raise CodingError(f"round trip failed: labels equal {labels_ok}, probabilities equal {probs_ok}")
    overhead = enc.file_bits - enc.codelength_bits
    return CodeResult(
        code=f"bytes_{code}", dataset=dataset.name, model=model, scale=scale, n=dataset.n, K=dataset.K,
        codelength_bits=float(enc.file_bits),
        parts={"computed_codelength_bits": enc.codelength_bits, "model_bits": float(enc.model_bits),
               "payload_bits": float(enc.payload_bits), "header_bits": float(enc.header_bits),
               "file_bytes": float(len(enc.data)), "file_bits": float(enc.file_bits),
               "overhead_bits": overhead,
               "payload_overhead_bits": enc.payload_bits + enc.model_bits - enc.codelength_bits},
        params={"network": network, "encode_seconds": enc.seconds, "decode_seconds": dec.seconds, "round_trip_labels_equal": labels_ok,
                "round_trip_probabilities_equal": probs_ok, "num_threads": enc.header["num_threads"],
                "format_version": FORMAT_VERSION, "header": enc.header},
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

