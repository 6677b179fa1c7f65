"""Tables of the book: number formats, Markdown tables, and Tables 1 and 2 of
the paper side by side with the results store."""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

from .results import CodeResult, stored

DATASETS = ("mnist", "cifar10")
DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "synthetic": "synthetic"}
BOOK_SCALES = ("paper", "cpu")  # preferred first; smoke runs never enter the book's tables
NOT_COMPUTED = "not computed yet"


def kbits(bits: float | None, digits: int = 1) -> str:
    """Bits as kbits (1 kbit = 1000 bits) with thousands separators: 199315.7 -> '199.3'."""
    return "" if bits is None or math.isnan(bits) else f"{bits / 1000:,.{digits}f}"


def bits(value: float | None, digits: int = 1) -> str:
    return "" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def percent(p: float | None, digits: int = 1) -> str:
    return "" if p is None or math.isnan(p) else f"{100 * p:.{digits}f}%"


def ratio(r: float | None) -> str:
    if r is None or math.isnan(r):
        return ""
    return f"{r:.3g}" if r < 10 else f"{r:,.0f}"


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub/MyST Markdown table."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return "\n".join(lines)


def show(header: Sequence[str], rows: Sequence[Sequence[Any]]):
    """Display a Markdown table in a notebook (rendered as a table by the book)."""
    from IPython.display import Markdown, display

    display(Markdown(markdown(header, rows)))


def paper_tables() -> dict:
    """The paper's Tables 1 and 2 (reference values only; see paper_tables.json)."""
    return json.loads(resources.files("mdl_utils").joinpath("paper_tables.json").read_text())


def best_result(code: str, dataset: str, results: list[CodeResult]) -> CodeResult | None:
    """Shortest stored codelength of ``code`` on ``dataset`` at the most complete scale available."""
    for scale in BOOK_SCALES:
        found = [r for r in results if r.code == code and r.dataset == dataset and r.scale == scale]
        if found:
            return min(found, key=lambda r: r.codelength_bits)
    return None


def _paper_cell(ref: dict) -> tuple[str, str, str]:
    b = ref.get("bound", "")
    b = f"{b} " if b else ""
    return f"{b}{ref['kbits']:,}", f"{b}{ref['ratio']:,}", percent(ref['test_accuracy'])


def comparison_rows(table: str, root: Path | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of paper Table ``table`` ("1" or "2") beside our stored results."""
    spec = paper_tables()["tables"][table]
    cache: dict[str, list[CodeResult]] = {}
    header = ["code", "dataset", "ours: kbits", "ratio", "test acc.", "model", "scale",
              "paper: kbits", "ratio", "test acc."]
    rows = []
    for row in spec["rows"]:
        chapter = row["chapter"]
        if chapter not in cache:
            cache[chapter] = stored(chapter, root) if ((root or _root()) / chapter).is_dir() else []
        for ds in DATASETS:
            r = best_result(row["code"], ds, cache[chapter])
            ours = ([kbits(r.codelength_bits, 2 if r.codelength_bits < 1e4 else 1), ratio(r.ratio),
                     percent(r.test_accuracy), r.model, r.scale] if r else [NOT_COMPUTED, "", "", "", ""])
            rows.append([row["label"], DATASET_LABELS[ds], *ours, *_paper_cell(row[ds])])
    return header, rows


def _root() -> Path:
    from .results import results_root

    return results_root()
