"""The coder: probabilities -> bits -> a labels file, and back.

Every codelength of the book is a bound, sum_i -log2 p(y_i | x_i) (Prop. 1,
Sec. 2.2). A range coder (Witten, Neal & Cleary 1987; the ``constriction``
package) turns the per-sample categorical distributions of a code into bits
and back; it spends a few dozen bits over the bound for the whole message
(whole 32-bit words, the final flush, the 24-bit rounding). Which
distributions a code uses, and how Bob recomputes them, is
:mod:`mdl_utils.codes.bytes`.

Quantization, identical on both sides: p = softmax(logits) in float64 (a
mixture: sum_m w_m p_m in float64), cast once to float32, passed to
``constriction.stream.model.Categorical(perfect=False)``, which rounds to 24-bit
fixed point and gives every class at least 2^-24 (a label the model deems
impossible still costs at most 24 bits).

File layout, format version 3 (integers little-endian; varint: LEB128, 7 bits
per byte)::

    bits  field
    16    magic "Ml"
     8    format version (3)
     8    code (3 bits) | scale (2: custom, smoke, cpu, paper) | dataset (2: other, mnist, cifar10,
          synthetic) | self-describing flag (1)
    8k    n, varint (24 bits for 60,000)
    8k    order seed + 1, varint (0: no shuffle; 8 bits below 127)
    24    recipe hash: SHA-256 of the code's settings JSON (recipe, model names, timesteps)
    16    environment: numerics (2 bits: portable CPU, native CPU, CUDA) | 14 bits of the SHA-256 of what else
          changes the bits (torch and constriction versions, the code version, thread count, format; with native
          numerics the CPU's capability and model, on CUDA the GPU and its CUDA/cuDNN versions)
    32    inputs hash: dataset name, split, order seed, n, K and the SHA-256 of x
    32    CRC-32 of the labels (int64), checked after decoding
          [self-describing flag: varint length + zlib JSON of the full settings, environment and inputs]
          [two_part: varint length + model bytes (float32 weights)]
          payload: range-coder words (u32 each), up to the last 4 bytes
    32    CRC-32 of everything above

The fixed part is 192 bits for n < 16,384 and 200 bits up to n = 2,097,151
(seed < 127). Both sides know the recipe (a named scale of a named code):
Bob checks the three hashes before decoding any label, so a wrong recipe,
wrong inputs, other numerics (another CPU's native kernels, another GPU),
another torch version or thread count stop him at once, with the difference
named (:mod:`mdl_utils.codes.bytes`).

**Per-block checks.** Before the labels of every block whose probabilities
come from a trained model, the payload holds a check symbol of
:data:`CHECK_BITS` bits, uniform over 2^CHECK_BITS values: the first bits of
the SHA-256 of the block's probabilities as Alice computed them
(:func:`check_value`). Bob computes his own before decoding the block and stops
at a mismatch: a divergence that no header field foresaw stops him at the
first wrong block with probability 15/16 (at one of the first two with
probability 255/256), instead of after a full decode at the labels' CRC.
The cost: 4 bits per block, 52 bits for MNIST's 13 trained blocks, 1.6% of the
best MNIST file (:mod:`mdl_utils.codes.bytes` reports it as ``check_bits``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

MAGIC = b"Ml"
FORMAT_VERSION = 3
CODE_IDS = ("uniform", "prequential", "two_part", "switch", "self_switch")  # 3 bits: up to 8 codes
SCALE_IDS = (None, "smoke", "cpu", "paper")  # None: a custom recipe (Bob needs Alice's code object or the JSON)
DATASET_IDS = (None, "mnist", "cifar10", "synthetic")  # None: another dataset (an image folder)
MODEL_SECTION_CODES = ("two_part",)  # codes whose file carries a model section
HASH_BYTES = {"recipe": 3, "environment": 2, "inputs": 4}
NUMERICS_IDS = ("portable", "native", "cuda")  # the top 2 bits of the environment field
CHECK_BITS = 4  # per-block check symbol
_U32 = struct.Struct("<I")


class CodingError(ValueError):
    """A labels file cannot be decoded: corrupted, truncated, or meant for other inputs or another recipe."""


# ---------------------------------------------------------------- helpers


def short_hash(obj: Any, nbytes: int) -> bytes:
    """The first ``nbytes`` of the SHA-256 of ``obj`` as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).digest()[:nbytes]


def environment_field(environment: dict) -> bytes:
    """The header's 16-bit environment field: the numerics (``environment["numerics"]``: portable, native or cuda)
    in the top 2 bits, then 14 bits of the SHA-256 of the whole ``environment``."""
    kind = NUMERICS_IDS.index(environment["numerics"])
    low = int.from_bytes(short_hash(environment, 2), "big") & 0x3FFF
    return (kind << 14 | low).to_bytes(2, "big")


def numerics_of(field: bytes) -> str:
    """The numerics named by an environment field ("portable", "native", "cuda"; "unknown" for the spare value)."""
    kind = field[0] >> 6
    return NUMERICS_IDS[kind] if kind < len(NUMERICS_IDS) else "unknown"


def check_value(*arrays) -> int:
    """A block's check symbol: the first :data:`CHECK_BITS` bits of the SHA-256 of the arrays' bytes (C order)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()[0] >> (8 - CHECK_BITS)


def labels_crc(labels) -> int:
    """CRC-32 of the labels as little-endian int64."""
    return zlib.crc32(np.asarray(labels, dtype="<i8").tobytes())


def softmax64(logits) -> np.ndarray:
    """softmax(logits) in float64 (the one rule for a model's probabilities, on both sides)."""
    return torch.softmax(torch.as_tensor(logits).detach().to(torch.float64), dim=1).numpy()


def probabilities(logits) -> np.ndarray:
    """The coder's input for one model: softmax(logits) computed in float64, cast to float32."""
    return softmax64(logits).astype(np.float32)


def mixture_probabilities(weights: Sequence[float], probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """q = sum_m w_m p_m (float64, added in the order m = 0..M-1) and its float32 cast, the coder's input.

    ``probs``: (M, K) float64, one predictive distribution per strategy. Elementwise float64 operations in a
    fixed order give the same q on both sides.
    """
    q = weights[0] * probs[0]
    for w, p in zip(weights[1:], probs[1:]):
        q = q + w * p
    return q, q.astype(np.float32)


def uniform_probabilities(n: int, num_classes: int) -> np.ndarray:
    """n rows of 1/K in float32 (the uniform code; the self-switch code's choice of an epoch)."""
    return np.full((n, num_classes), 1.0 / num_classes, dtype=np.float32)


def varint(value: int) -> bytes:
    """LEB128: 7 bits per byte, least significant first, high bit set on every byte but the last."""
    if value < 0:
        raise ValueError(f"a varint holds non-negative integers, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def read_varint(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it) of the varint at ``pos``; CodingError when it runs past ``end``."""
    value, shift = 0, 0
    while pos < end:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if not byte & 0x80:
            return value, pos
        if shift > 63:
            break
    raise CodingError("corrupted file: a length or count field runs past the end of the header")


class RangeCoder:
    """One side of a range-coded stream: ``RangeCoder()`` encodes (Alice), ``RangeCoder(words)`` decodes (Bob).

    Both sides pass the same float32 probabilities, quantized identically by
    ``constriction.stream.model.Categorical(perfect=False)`` (24-bit, every class >= 2^-24). The number of
    classes may change from one call to the next (e.g. a choice among E + 1 epochs, then labels among K).
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


@dataclasses.dataclass(frozen=True)
class Header:
    """What a labels file says about itself (layout in the module docstring)."""

    code: str
    scale: str | None
    dataset: str | None
    n: int
    seed: int | None
    recipe_hash: bytes
    environment_hash: bytes
    inputs_hash: bytes
    labels_crc: int
    description: dict | None = None  # the self-describing section (full settings, environment, inputs)

    def flags(self) -> int:
        """The code/scale/dataset/description byte."""
        dataset = self.dataset if self.dataset in DATASET_IDS else None
        return (CODE_IDS.index(self.code) << 5 | SCALE_IDS.index(self.scale) << 3
                | DATASET_IDS.index(dataset) << 1 | (self.description is not None))

    def to_bytes(self) -> bytes:
        """Magic to labels CRC, then the self-describing section when there is one."""
        for name, size in HASH_BYTES.items():
            if len(getattr(self, f"{name}_hash")) != size:
                raise ValueError(f"the {name} hash must be {size} bytes")
        out = (MAGIC + bytes([FORMAT_VERSION, self.flags()]) + varint(self.n)
               + varint(0 if self.seed is None else self.seed + 1) + self.recipe_hash + self.environment_hash
               + self.inputs_hash + _U32.pack(self.labels_crc))
        return out + (b"" if self.description is None else section(describe(self.description)))


@dataclasses.dataclass
class File:
    """A parsed labels file: header, model bytes, payload words, and the size of each part in bits."""

    header: Header
    model_bytes: bytes
    payload: np.ndarray
    sections: dict[str, int]  # header (fixed part and file CRC), description, model_length, model, payload


def section(blob: bytes) -> bytes:
    """A variable-length section: its length as a varint, then its bytes."""
    return varint(len(blob)) + blob


def describe(description: dict) -> bytes:
    """The self-describing section's bytes: zlib-compressed UTF-8 JSON with sorted keys."""
    return zlib.compress(json.dumps(description, sort_keys=True, separators=(",", ":")).encode(), 9)


def pack(header: Header, payload: np.ndarray, model_bytes: bytes = b"") -> bytes:
    """The bytes of a labels file (layout in the module docstring)."""
    if bool(model_bytes) and header.code not in MODEL_SECTION_CODES:
        raise ValueError(f"the {header.code} code has no model section")
    body = header.to_bytes()
    if header.code in MODEL_SECTION_CODES:
        body += section(model_bytes)
    body += np.asarray(payload, dtype="<u4").tobytes()
    return body + _U32.pack(zlib.crc32(body))


def _check_frame(data: bytes) -> None:
    """Magic, format version and the file's CRC-32; each defect a one-line CodingError."""
    if data[:4] == b"MDLB":
        raise CodingError("labels file format version 1 (zlib JSON header); this mdl_utils reads version "
                          f"{FORMAT_VERSION}: encode the labels again with python -m mdl_utils.compress")
    if len(data) < 2 or data[:2] != MAGIC:
        raise CodingError("not an mdl_utils labels file (bad magic bytes); give a file written by mdl_utils.compress")
    if len(data) < 3 or data[2] != FORMAT_VERSION:
        version = data[2] if len(data) > 2 else "?"
        hint = (" (written before portable numerics and per-block checks): encode the labels again with python -m "
                "mdl_utils.compress" if version == 2 else "")
        raise CodingError(f"labels file format version {version}, this mdl_utils reads version {FORMAT_VERSION}{hint}")
    if len(data) < 8 or zlib.crc32(data[:-4]) != _U32.unpack_from(data, len(data) - 4)[0]:
        raise CodingError("corrupted or truncated file: CRC-32 mismatch (a byte was changed, cut off or appended); "
                          "copy the whole file again")


def _section(data: bytes, pos: int, end: int, what: str) -> tuple[bytes, int]:
    """(bytes, position after) of the length-prefixed section at ``pos``."""
    size, pos = read_varint(data, pos, end)
    if pos + size > end:
        raise CodingError(f"corrupted file: the {what} section runs past the end of the file")
    return data[pos:pos + size], pos + size


def unpack(data: bytes) -> File:
    """The parsed file; any defect (magic, version, CRC, lengths) raises a one-line CodingError."""
    _check_frame(data)
    end, flags = len(data) - 4, data[3]
    code_id, scale_id, dataset_id, described = flags >> 5, (flags >> 3) & 3, (flags >> 1) & 3, flags & 1
    if code_id >= len(CODE_IDS):
        raise CodingError(f"the file uses code number {code_id}, which this mdl_utils cannot decode "
                          f"({', '.join(CODE_IDS)}); decode with the mdl_utils version that wrote it")
    n, pos = read_varint(data, 4, end)
    seed, pos = read_varint(data, pos, end)
    if pos + sum(HASH_BYTES.values()) + 4 > end:
        raise CodingError("corrupted file: shorter than its header")
    hashes = []
    for size in HASH_BYTES.values():
        hashes, pos = [*hashes, data[pos:pos + size]], pos + size
    (crc,), pos = _U32.unpack_from(data, pos), pos + 4
    sections = {"header": 8 * (pos + 4)}
    description = None
    if described:
        blob, new = _section(data, pos, end, "description")
        try:
            description = json.loads(zlib.decompress(blob).decode())
        except (zlib.error, UnicodeDecodeError, json.JSONDecodeError):
            raise CodingError("corrupted file: the self-describing section is not zlib-compressed JSON") from None
        sections["description"], pos = 8 * (new - pos), new
    model = b""
    if CODE_IDS[code_id] in MODEL_SECTION_CODES:
        model, new = _section(data, pos, end, "model")
        sections["model_length"], sections["model"], pos = 8 * (new - pos - len(model)), 8 * len(model), new
    if (end - pos) % 4:
        raise CodingError("corrupted file: the payload is not a whole number of 32-bit words")
    sections["payload"] = 8 * (end - pos)
    header = Header(CODE_IDS[code_id], SCALE_IDS[scale_id], DATASET_IDS[dataset_id], n, seed - 1 if seed else None,
                    *hashes, crc, description)
    return File(header, model, np.frombuffer(data[pos:end], dtype="<u4").astype(np.uint32), sections)


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
    """The bytes of a labels file; CodingError when there is none."""
    path = Path(path)
    if not path.is_file():
        raise CodingError(f"{path}: no such labels file")
    return path.read_bytes()
