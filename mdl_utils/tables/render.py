"""One table renderer for the book: :func:`show` renders a table of results (one row per result, a row saying
"not computed yet" for a missing one, the columns whose value is the same in every row moved into the caption,
which stays with its table: one Markdown output); :func:`say` prints result sentences as Markdown, so that they
wrap; the columns every chapter shows (scale, numerics, n) and the dataset labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .. import data, numerics
from ..formats import kbits, markdown
from ..results import CodeResult, results_root, stored
from ..scales import SCALE_WORDS


DATASETS = ("mnist", "cifar10")


BOOK_SCALES = ("paper", "cpu")  # preferred first; smoke runs never enter the book's tables


NOT_COMPUTED = "not computed yet"


Column = tuple  # (header, function of a CodeResult) or (header, function, "fold"): fold into the caption if constant;
#                 "caption": always in the caption, naming the rows of each value when they differ


def codelength_kbits(r: CodeResult, everything: Sequence[CodeResult] = ()) -> str:
    """A result's codelength in kbits, two decimals below 10 kbits, one above; with the mean ± standard deviation
    over seeds when ``everything`` holds the same run for more than one seed (:func:`seed_spread`)."""
    digits = 2 if r.codelength_bits < 1e4 else 1
    spread = seed_spread(r, everything, digits)
    return kbits(r.codelength_bits, digits) + (f" ({spread})" if spread else "")


def seed_spread(r: CodeResult, everything: Sequence[CodeResult], digits: int = 2) -> str:
    """"mean ± sd over k seeds" (kbits) of the codelengths in ``everything`` of ``r``'s run (code, dataset, model,
    scale) when more than one seed of it is stored (python -m mdl_utils.jobs run --seeds 0 1 2); else ""."""
    same = {x.seed: x.codelength_bits for x in everything
            if (x.code, x.dataset, x.model, x.scale) == (r.code, r.dataset, r.model, r.scale)}
    if len(same) < 2:
        return ""
    values = np.array(list(same.values()), dtype=np.float64) / 1000
    return f"{values.mean():,.{digits}f} ± {values.std(ddof=1):,.{digits}f} over {len(values)} seeds"


def label(dataset: str) -> str:
    """A dataset's name for readers: MNIST, CIFAR-10, an image folder's own name, '(random labels)'."""
    if dataset.endswith("_random"):
        return f"{label(dataset.removesuffix('_random'))} (random labels)"
    return data.label(dataset)


def scale_words(scale: str) -> str:
    """A scale with what it means: 'cpu (reduced scale for a 2-core CPU (...))'."""
    return f"{scale} ({SCALE_WORDS.get(scale, scale)})"


def display_markdown(text: str) -> None:
    """Show Markdown as a cell output (rendered by the book as MyST)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def say(*sentences: str) -> None:
    """Result sentences as one Markdown paragraph each (they wrap; printed text would run off the page); nothing
    when there is no sentence."""
    if sentences:
        display_markdown("\n\n".join(sentences))


def _fold(header: list[str], rows: list[list], foldable: list[bool | str], groups: Sequence[str] | None = None,
          row_labels: Sequence[str] | None = None) -> tuple[list[str], list[list], list[str]]:
    """Move the foldable columns whose value is the same in every row into caption phrases (cells that are None,
    a missing result's, do not count); one whose value is the same within each group (``groups``: a label per row,
    e.g. its dataset) goes there too, one value per group ("labels n: 60,000 (MNIST), 50,000 (CIFAR-10)"); one
    marked "caption" always goes there, its rows (``row_labels``) named per value when the values differ."""
    keep, notes = [], []
    for i, name in enumerate(header):
        cells = [(g, str(r[i])) for r, g in zip(rows, groups or [""] * len(rows)) if r[i] is not None]
        per_group = {g: {v for gg, v in cells if gg == g} for g, _ in cells}
        if foldable[i] and cells and len({v for _, v in cells}) == 1:
            notes += [f"{name}: {cells[0][1]}"] if cells[0][1] else []
        elif foldable[i] and len(cells) > len(per_group) and all(len(v) == 1 for v in per_group.values()):
            notes.append(f"{name}: " + ", ".join(f"{next(iter(v))} ({g})" for g, v in per_group.items()))
        elif foldable[i] == "caption" and cells:
            labels = row_labels or [str(r[0]) for r in rows]
            values: dict[str, list[str]] = {}
            for r, lab in zip(rows, labels):
                if r[i] is not None:
                    values.setdefault(str(r[i]), []).append(lab)
            notes.append(f"{name}: " + "; ".join(f"{v} for {', '.join(labs)}" for v, labs in values.items()))
        else:
            keep.append(i)
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows], notes


def show(results: Mapping[Any, CodeResult | None] | Sequence[CodeResult | None], columns: Sequence[Column], *,
         caption: str = "", keys: Sequence[Column] = (), render: bool = True) -> str:
    """One table of ``results`` (a list, or a dict keyed by (dataset, model)); ``keys`` are the columns that
    identify a row, also shown for a missing result (None), whose row then says "not computed yet". Columns (keys
    included) marked "fold" go into the caption when every computed row has the same value, or one value per
    dataset (the first key); the default keys are the dataset and the model (folded when there is one model)."""
    items = list(results.items()) if isinstance(results, Mapping) else [(None, r) for r in results]
    columns = [*columns, *_seeds_column([r for _, r in items if r is not None])]
    keys = keys or ((("dataset", lambda k: label(k[0])), ("model", lambda k: k[1], "fold"))
                    if isinstance(results, Mapping) else ())
    header = [c[0] for c in (*keys, *columns)]
    foldable = [len(c) > 2 and c[2] for c in (*keys, *columns)]
    rows = [[k[1](key if r is None else (r.dataset, r.model)) for k in keys]
            + ([c[1](r) for c in columns] if r is not None else [None] * len(columns)) for key, r in items]
    labels = [" / ".join(str(v) for v in row[:len(keys)]) for row in rows] if keys else None
    header, rows, notes = _fold(header, rows, foldable, [row[0] for row in rows] if keys else None, labels)
    rows = _fill_missing(rows)
    text = markdown(header, rows, with_notes(caption, notes))
    if render:
        display_markdown(text)
    return text


def _seeds_column(found: Sequence[CodeResult]) -> list[Column]:
    """The column "over seeds (kbits)" (:func:`seed_spread`) when a run of ``found`` is stored for several seeds
    (the store is read only then); folded away when every cell is empty."""
    root = results_root()
    if not found or not root.is_dir() or not any(root.glob("**/*-seed*.json")):
        return []
    everything = _everything(root)
    return [("over seeds (kbits)", lambda r: seed_spread(r, everything), "fold")]


def with_notes(caption: str, notes: Sequence[str]) -> str:
    """A caption followed by the folded columns' phrases ("scale: cpu (...)")."""
    return " ".join(filter(None, [caption, "; ".join(notes) + "." if notes else ""]))


def _fill_missing(rows: list[list]) -> list[list]:
    """A missing result's cells (None): the first says "not computed yet", the others are empty."""
    return [[NOT_COMPUTED if v is None and None not in row[:i] else "" if v is None else v for i, v in enumerate(row)]
            for row in rows]


def done(results: Mapping[Any, CodeResult | None] | Sequence[CodeResult | None]) -> list[CodeResult]:
    """The computed results (not None) of a dict or a list."""
    return [r for r in (results.values() if isinstance(results, Mapping) else results) if r is not None]


def of_dataset(results: Mapping[tuple[str, str], CodeResult | None], dataset: str) -> list[CodeResult]:
    """The computed results of ``dataset`` in a dict keyed by (dataset, model), in its order."""
    return [r for (d, _), r in results.items() if d == dataset and r is not None]


def say_each(results: Mapping | Sequence, sentence: Callable[[CodeResult], str]) -> None:
    """One Markdown paragraph per computed result."""
    say(*[sentence(r) for r in done(results)])


def scale_column() -> Column:
    """The scale of a result in words, folded into the caption when it is the same for every row."""
    return ("scale", lambda r: scale_words(r.scale), "fold")


def numerics_words(r: CodeResult) -> str:
    """Where a result's bits hold, in a few words (its provenance's numerics, mdl_utils.numerics; docs/NUMERICS.md):
    "portable (Intel x86-64 with AVX2)" (the vendor: mdl_utils.numerics.portable_environment), this CPU kind or this GPU
    kind only; a result from before portable numerics says so."""
    env = r.provenance.get("numerics")
    if not env:
        return "this CPU only (before portable numerics)"
    if env.get("numerics") == "portable":
        return f"portable ({numerics.vendor_words(env)} x86-64 with AVX2)"
    if env.get("numerics") == "mixed":
        return "mixed (from runs of different numerics)"
    return f"this {'GPU' if env.get('numerics') == 'cuda' else 'CPU'} kind only"


def numerics_column() -> Column:
    """A result's numerics in words (:func:`numerics_words`), in the caption: once when the same for all, else
    naming the rows of each kind."""
    return ("numerics", numerics_words, "caption")


def n_column(name: str = "labels n") -> Column:
    """The number of labels coded, folded into the caption when constant (or constant per dataset)."""
    return (name, lambda r: f"{r.n:,}", "fold")


def _everything(root: Path | None = None) -> list[CodeResult]:
    """Every stored result under ``root`` (the project's results/ by default); none when there is no store."""
    return stored(root=root) if (Path(root) if root else results_root()).is_dir() else []


def best_per(records: Mapping[str, Sequence], group: str, score: str = "total_bits") -> list[int]:
    """Indices of the best record (least ``score``) for each distinct value of ``group`` in curve records."""
    g, s = np.asarray(records[group]), np.asarray(records[score])
    return [int(np.flatnonzero(g == v)[np.argmin(s[g == v])]) for v in sorted(set(g.tolist()))]


def where(curve: Mapping[str, Sequence], **conditions) -> list[int]:
    """Indices of the curve records matching every ``name=value`` condition."""
    n = len(next(iter(curve.values())))
    return [i for i in range(n) if all(curve[k][i] == v for k, v in conditions.items())]




def _of(results: Mapping, code: str) -> dict:
    """The entries of ``results`` that are missing or of ``code``."""
    return {k: r for k, r in results.items() if r is None or r.code == code}


def _seconds(r: CodeResult) -> float:
    """Seconds of computation of a result: its compute_seconds (blocks only), else its wall seconds."""
    return r.provenance.get("compute_seconds", r.provenance["wall_seconds"])
