"""Number formats and the Markdown table: what the book's tables and the job runner's tables print with.

Plain functions of numbers and strings (no results, no chapters), at the bottom of the layers
(docs/ARCHITECTURE.md), so that the runner and the tables share them without importing each other.
"""

from __future__ import annotations

import math
from typing import Any, Sequence


def kbits(bits: float | None, digits: int = 1) -> str:
    """Bits as kbits (1 kbit = 1000 bits) with thousands separators: 199315.7 -> '199.3'."""
    return "" if bits is None or math.isnan(bits) else f"{bits / 1000:,.{digits}f}"


def bits(value: float | None, digits: int = 1) -> str:
    """Bits with thousands separators: 199315.68 -> '199,315.7'; '' for a missing value."""
    return "" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def percent(p: float | None, digits: int = 1) -> str:
    """A fraction as a percentage: 0.9821 -> '98.2%'; '' for a missing value."""
    return "" if p is None or math.isnan(p) else f"{100 * p:.{digits}f}%"


def ratio(r: float | None) -> str:
    """A compression ratio: three significant digits below 10, whole numbers above."""
    if r is None or math.isnan(r):
        return ""
    return f"{r:.3g}" if r < 10 else f"{r:,.0f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    """A GitHub/MyST Markdown table, with its caption above it."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines)
