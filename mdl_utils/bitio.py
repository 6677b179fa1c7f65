"""Bit streams and the entropy codes used to write parameters into bytes.

:class:`BitWriter` / :class:`BitReader`: most-significant-bit-first bit streams
with fixed-width integers, unary codes, Elias gamma codes and float32 values.
Huffman codes (Huffman 1952) are written in canonical form, so that only the
code lengths travel; Golomb-Rice codes with parameter 2^r send non-negative
integers v in (v >> r) + 1 + r bits. Used by the network-compression and
intrinsic-dimension codes (paper Sec. 3.2).
"""

from __future__ import annotations

import contextlib
import heapq

import numpy as np

class BitWriter:
    """Append-only bit stream, most significant bit first; :meth:`getvalue` pads to whole bytes with zeros."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self.nbits = 0

    def write(self, values, lengths) -> None:
        """Write each ``values[i]`` on ``lengths[i]`` bits (0 <= length <= 64)."""
        values = np.atleast_1d(np.asarray(values, dtype=np.uint64)).ravel()
        lengths = np.broadcast_to(np.asarray(lengths, dtype=np.int64), values.shape).ravel()
        if values.size == 0:
            return
        if lengths.min() < 0 or lengths.max() > 64:
            raise ValueError("bit lengths must lie in 0..64")
        width = int(lengths.max())
        if width == 0:
            return
        shifts = lengths[:, None] - 1 - np.arange(width)[None, :]
        valid = shifts >= 0
        bits = (values[:, None] >> np.where(valid, shifts, 0).astype(np.uint64)) & np.uint64(1)
        out = bits[valid].astype(np.uint8)
        self._chunks.append(out)
        self.nbits += out.size

    def write_unary(self, q) -> None:
        """q ones then a zero, for each q."""
        q = np.atleast_1d(np.asarray(q, dtype=np.int64)).ravel()
        if q.size == 0:
            return
        out = np.ones(int(q.sum() + q.size), dtype=np.uint8)
        out[np.cumsum(q + 1) - 1] = 0
        self._chunks.append(out)
        self.nbits += out.size

    def write_gamma(self, x: int) -> None:
        """Elias gamma code of an integer x >= 1: floor(log2 x) zeros, then x in binary."""
        if x < 1:
            raise ValueError(f"Elias gamma codes integers >= 1, got {x}")
        nb = int(x).bit_length()
        self.write([0, int(x)], [nb - 1, nb])

    def write_float32(self, values) -> None:
        v = np.asarray(values, dtype=np.float32).ravel().view(np.uint32).astype(np.uint64)
        self.write(v, 32)

    @contextlib.contextmanager
    def tally(self, acct: dict, part: str):
        """Add the bits written inside the block to ``acct[part]``."""
        before = self.nbits
        yield
        acct[part] = acct.get(part, 0) + self.nbits - before

    def getvalue(self) -> bytes:
        bits = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.uint8)
        return np.packbits(bits).tobytes()


class BitReader:
    """Reads what :class:`BitWriter` wrote."""

    def __init__(self, payload: bytes) -> None:
        self.bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8)).astype(np.int64)
        self.pos = 0

    def _need(self, n: int) -> None:
        if self.pos + n > self.bits.size:
            raise ValueError("bit stream ended early: the payload is truncated or was written for another model")

    def read(self, count: int, length: int) -> np.ndarray:
        """``count`` unsigned integers of ``length`` bits each."""
        if length == 0 or count == 0:
            return np.zeros(count, dtype=np.uint64)
        self._need(count * length)
        block = self.bits[self.pos:self.pos + count * length].reshape(count, length).astype(np.uint64)
        self.pos += count * length
        weights = np.uint64(1) << np.arange(length - 1, -1, -1).astype(np.uint64)
        return (block * weights[None, :]).sum(axis=1).astype(np.uint64)

    def read_int(self, length: int) -> int:
        return int(self.read(1, length)[0])

    def read_gamma(self) -> int:
        zeros = 0
        while True:
            self._need(1)
            if self.bits[self.pos]:
                break
            zeros += 1
            self.pos += 1
        return self.read_int(zeros + 1)

    def read_unary(self, count: int) -> np.ndarray:
        """``count`` unary codes (q ones then a zero), vectorized."""
        if count == 0:
            return np.zeros(0, np.int64)
        zeros = np.flatnonzero(self.bits[self.pos:] == 0)
        if zeros.size < count:
            raise ValueError("bit stream ended early in the unary codes")
        ends = zeros[:count]
        q = np.diff(np.concatenate([[-1], ends])) - 1
        self.pos += int(ends[-1]) + 1
        return q.astype(np.int64)

    def read_float32(self, count: int) -> np.ndarray:
        return self.read(count, 32).astype(np.uint32).view(np.float32)

    def read_huffman(self, count: int, lengths: np.ndarray) -> np.ndarray:
        """``count`` symbols of the canonical Huffman code with these code lengths."""
        present = np.flatnonzero(lengths > 0)
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        if present.size == 0:
            # a single symbol (code length 0) is the only possibility
            only = np.flatnonzero(lengths == 0)
            return np.full(count, int(only[0]) if only.size else 0, dtype=np.int64)
        codes = canonical_codes(lengths)
        width = int(lengths.max())
        table_sym = np.full(1 << width, -1, dtype=np.int64)
        table_len = np.zeros(1 << width, dtype=np.int64)
        for s in present:
            L = int(lengths[s])
            start = int(codes[s]) << (width - L)
            table_sym[start:start + (1 << (width - L))] = s
            table_len[start:start + (1 << (width - L))] = L
        bits = np.concatenate([self.bits[self.pos:], np.zeros(width, dtype=np.int64)])
        # integer value of the `width` bits starting at each position
        n = bits.size - width
        window = np.zeros(n, dtype=np.int64)
        for j in range(width):
            window = (window << 1) | bits[j:j + n]
        out = np.empty(count, dtype=np.int64)
        pos = 0
        ts, tl = table_sym.tolist(), table_len.tolist()
        win = window.tolist()
        for i in range(count):
            v = win[pos]
            out[i] = ts[v]
            pos += tl[v]
        if self.pos + pos > self.bits.size or (out < 0).any():
            raise ValueError("corrupt Huffman stream")
        self.pos += pos
        return out


# ------------------------------------------------------------ entropy codes


def huffman_lengths(counts, max_length: int = 31) -> np.ndarray:
    """Huffman code lengths for symbol ``counts`` (0 for absent symbols; 0 for a lone symbol)."""
    counts = np.asarray(counts, dtype=np.int64)
    lengths = np.zeros(counts.size, dtype=np.int64)
    present = [int(i) for i in np.flatnonzero(counts > 0)]
    if len(present) <= 1:
        return lengths
    heap = [(int(counts[i]), i, [i]) for i in present]
    heapq.heapify(heap)
    tie = counts.size
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1 + s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    if lengths.max() > max_length:
        raise ValueError(f"Huffman code longer than {max_length} bits; use fewer clusters")
    return lengths


def canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical Huffman codewords (as integers) for the given code lengths (sorted by length, then symbol)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev = 0, 0
    for s in sorted(np.flatnonzero(lengths > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[s]) - prev
        codes[s] = code
        prev = int(lengths[s])
        code += 1
    return codes


def rice_bits(values: np.ndarray, r: int) -> int:
    """Length of the Golomb-Rice code (parameter 2^r) of non-negative integers: sum (v >> r) + 1 + r."""
    values = np.asarray(values, dtype=np.int64)
    return int((values >> r).sum() + values.size * (1 + r))


def best_rice_parameter(values: np.ndarray, max_r: int = 30) -> int:
    if values.size == 0:
        return 0
    return min(range(max_r + 1), key=lambda r: rice_bits(values, r))


