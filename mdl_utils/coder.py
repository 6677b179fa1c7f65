"""The coder: probabilities -> bits -> a labels file, and back.

Every codelength of the book is a bound, sum_i -log2 p(y_i | x_i) (Prop. 1,
Sec. 2.2). A range coder (Witten, Neal & Cleary 1987; the ``constriction``
package) turns the per-sample categorical distributions of a code into bits
and back; arithmetic/range coding spends at most a few dozen bits over the
bound for the whole message (here: whole 32-bit words). Which distributions a
code uses, and how Bob recomputes them, is :mod:`mdl_utils.codes.bytes`.

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

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .checkpoint import digest

MAGIC = b"MDLB"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sBQ")  # magic, version, total length
_U32 = struct.Struct("<I")


class CodingError(ValueError):
    """A labels file cannot be decoded: corrupted, truncated, or meant for other inputs."""


# ---------------------------------------------------------------- helpers


def labels_fingerprint(labels) -> str:
    """SHA-256 (16 hex digits) of the labels as int64."""
    return digest(np.asarray(labels, dtype=np.int64))


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """The coder's input: softmax(logits) computed in float64, cast to float32 (same rule on both sides)."""
    return torch.softmax(torch.as_tensor(logits).detach().to(torch.float64), dim=1).numpy().astype(np.float32)


def uniform_probabilities(n: int, num_classes: int) -> np.ndarray:
    return np.full((n, num_classes), 1.0 / num_classes, dtype=np.float32)


class RangeCoder:
    """One side of a range-coded stream: ``RangeCoder()`` encodes (Alice), ``RangeCoder(words)`` decodes (Bob).

    Both sides pass the same float32 probabilities, quantized identically by
    ``constriction.stream.model.Categorical(perfect=False)`` (24-bit, every class >= 2^-24).
    """

    def __init__(self, words: np.ndarray | None = None):
        import constriction  # the coder's one dependency beyond torch and numpy

        self._family = constriction.stream.model.Categorical(perfect=False)
        q = constriction.stream.queue
        self._stream = q.RangeEncoder() if words is None else q.RangeDecoder(np.asarray(words, dtype=np.uint32))

    def encode(self, labels: np.ndarray, probs: np.ndarray) -> None:
        if len(labels):
            self._stream.encode(np.asarray(labels, dtype=np.int32), self._family, np.ascontiguousarray(probs, np.float32))

    def decode(self, probs: np.ndarray) -> np.ndarray:
        if not len(probs):
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self._stream.decode(self._family, np.ascontiguousarray(probs, np.float32)), dtype=np.int64)

    def words(self) -> np.ndarray:
        """The encoded payload (32-bit words)."""
        return self._stream.get_compressed()


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
    """Write a labels file through a temp file and an atomic rename (no temp file left on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(data)}.tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise CodingError(f"{path}: no such labels file")
    return path.read_bytes()


