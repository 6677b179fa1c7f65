"""The book's tables: number formats, one table renderer, each chapter's tables, and Tables 1 and 2 of the
paper beside the results store.

:func:`show` renders a table of results: one row per result, a row saying
"not computed yet" for a missing one, and the columns whose value is the same in
every row (the scale, n) moved into the caption, which stays with its table (one
Markdown output). :func:`say` prints result sentences as Markdown, so that they wrap.
"""

from __future__ import annotations

import dataclasses
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from . import codes, data, numerics
from .formats import bits, kbits, markdown, percent, ratio  # noqa: F401  (the notebooks' tables.kbits, ...)
from .results import CodeResult, results_root, stored
from .scales import SCALE_WORDS

DATASETS = ("mnist", "cifar10")
BOOK_SCALES = ("paper", "cpu")  # preferred first; smoke runs never enter the book's tables
NOT_COMPUTED = "not computed yet"

Column = tuple  # (header, function of a CodeResult) or (header, function, "fold"): fold into the caption if constant


# ------------------------------------------------------------------ formats


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


# ------------------------------------------------------------------ rendering


def display_markdown(text: str) -> None:
    """Show Markdown as a cell output (rendered by the book as MyST)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


def say(*sentences: str) -> None:
    """Result sentences as one Markdown paragraph each (they wrap; printed text would run off the page); nothing
    when there is no sentence."""
    if sentences:
        display_markdown("\n\n".join(sentences))


def _fold(header: list[str], rows: list[list], foldable: list[bool], groups: Sequence[str] | None = None
          ) -> tuple[list[str], list[list], list[str]]:
    """Move the foldable columns whose value is the same in every row into caption phrases (cells that are None,
    a missing result's, do not count); one whose value is the same within each group (``groups``: a label per row,
    e.g. its dataset) goes there too, one value per group ("labels n: 60,000 (MNIST), 50,000 (CIFAR-10)")."""
    keep, notes = [], []
    for i, name in enumerate(header):
        cells = [(g, str(r[i])) for r, g in zip(rows, groups or [""] * len(rows)) if r[i] is not None]
        per_group = {g: {v for gg, v in cells if gg == g} for g, _ in cells}
        if foldable[i] and cells and len({v for _, v in cells}) == 1:
            notes += [f"{name}: {cells[0][1]}"] if cells[0][1] else []
        elif foldable[i] and len(cells) > len(per_group) and all(len(v) == 1 for v in per_group.values()):
            notes.append(f"{name}: " + ", ".join(f"{next(iter(v))} ({g})" for g, v in per_group.items()))
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
    foldable = [len(c) > 2 and c[2] == "fold" for c in (*keys, *columns)]
    rows = [[k[1](key if r is None else (r.dataset, r.model)) for k in keys]
            + ([c[1](r) for c in columns] if r is not None else [None] * len(columns)) for key, r in items]
    header, rows, notes = _fold(header, rows, foldable, [row[0] for row in rows] if keys else None)
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
    """Where a result's bits hold (its provenance's numerics, mdl_utils.numerics): "portable (the same bits on any
    x86-64 CPU with AVX2)", the native CPU, or the GPU; a result from before portable numerics says so."""
    env = r.provenance.get("numerics")
    if not env:
        return "native, recorded before portable numerics (this CPU's bits only)"
    if env.get("numerics") == "portable":
        return "portable (the same bits on any x86-64 CPU with AVX2)"
    return f"{numerics.describe(env)} (this kind of {'GPU' if env.get('numerics') == 'cuda' else 'CPU'} only)"


def numerics_column() -> Column:
    """A result's numerics in words (:func:`numerics_words`), folded into the caption when the same for all."""
    return ("numerics", numerics_words, "fold")


def n_column(name: str = "labels n") -> Column:
    """The number of labels coded, folded into the caption when constant (or constant per dataset)."""
    return (name, lambda r: f"{r.n:,}", "fold")


# ---------------------------------------------------------------- the paper


def paper_tables() -> dict:
    """The paper's Tables 1 and 2 (reference values only; see paper_tables.json)."""
    return json.loads(resources.files("mdl_utils").joinpath("paper_tables.json").read_text())


def paper_reference(code: str, dataset: str, table: str = "1") -> dict | None:
    """The paper's cell of ``code`` on ``dataset`` in Table ``table`` (kbits, ratio, test_accuracy, bound)."""
    for row in paper_tables()["tables"][table]["rows"]:
        if row["code"] == code:
            return row.get(dataset)
    return None


def paper_kbits(code: str, dataset: str, table: str = "1") -> str:
    """The paper's codelength as text, with its bound sign: '> 8,600'; '' where the paper has none."""
    ref = paper_reference(code, dataset, table)
    return "" if ref is None else f"{ref.get('bound', '')} {ref['kbits']:,}".strip()


def best_result(code: str, dataset: str, results: list[CodeResult]) -> CodeResult | None:
    """Shortest stored codelength of ``code`` on ``dataset`` at the most complete scale available."""
    for scale in BOOK_SCALES:
        found = [r for r in results if r.code == code and r.dataset == dataset and r.scale == scale]
        if found:
            return min(found, key=lambda r: r.codelength_bits)
    return None


def _everything(root: Path | None = None) -> list[CodeResult]:
    """Every stored result under ``root`` (the project's results/ by default); none when there is no store."""
    return stored(root=root) if (Path(root) if root else results_root()).is_dir() else []


def paper_rows() -> list[dict]:
    """The rows of the paper's Tables 1 and 2, each code once (its first row), in the order of the tables."""
    rows = {}
    for t in paper_tables()["tables"].values():
        for row in t["rows"]:
            rows.setdefault(row["code"], row)
    return list(rows.values())


def paper_values(code: str, dataset: str) -> list[dict]:
    """The paper's distinct values for ``code`` on ``dataset`` over both tables (kbits, bound, table)."""
    found = {}
    for name, t in paper_tables()["tables"].items():
        for row in t["rows"]:
            if row["code"] == code and dataset in row:
                found.setdefault((row[dataset]["kbits"], row[dataset].get("bound", "")), name)
    return [{"kbits": k, "bound": b, "table": t} for (k, b), t in found.items()]


def best_results(root: Path | None = None) -> dict[tuple[str, str], CodeResult | None]:
    """Our shortest stored codelength of every code of the paper's tables on each dataset (see best_result),
    keyed by (code, dataset): whatever the results store holds now."""
    everything = _everything(root)
    return {(row["code"], ds): best_result(row["code"], ds, everything) for row in paper_rows() for ds in DATASETS}


def comparison_rows(table: str, root: Path | None = None) -> tuple[list[str], list[list]]:
    """Header and rows of paper Table ``table`` ("1" or "2") beside our best stored results (a missing one: None
    cells); the scale of each of ours in words."""
    best, everything = best_results(root), _everything(root)
    header = ["code", "dataset", "ours: kbits", "ratio", "test acc.", "our model", "scale", "paper: kbits", "ratio",
              "test acc."]
    rows = []
    for row in paper_tables()["tables"][table]["rows"]:
        for ds in DATASETS:
            r, ref = best[(row["code"], ds)], row[ds]
            ours = ([codelength_kbits(r, everything), ratio(r.ratio),
                     percent(r.test_accuracy), r.model, scale_words(r.scale)] if r else [None] * 5)
            b = f"{ref['bound']} " if ref.get("bound") else ""
            rows.append([row["label"], label(ds), *ours, f"{b}{ref['kbits']:,}", f"{b}{ref['ratio']:,}",
                         percent(ref["test_accuracy"])])
    return header, rows


def show_comparison(table: str, root: Path | None = None) -> None:
    """Paper Table ``table`` beside our best stored results, the scale in the caption when it is the same for all."""
    header, rows = comparison_rows(table, root)
    header, rows, notes = _fold(header, rows, [h == "scale" for h in header])
    display_markdown(markdown(header, _fill_missing(rows), with_notes(
        "Codelengths of the training labels in kbits; ratio: codelength / uniform code n log2 K. Ours: the "
        "shortest code stored for each row; paper: Blier & Ollivier (2018), where > marks a lower bound (weights "
        "only).", notes)))


# ---------------------------------------------------------------- our scale against the paper's


def _for_dataset(value: Any, dataset: str) -> Any:
    """A setting that may be given per dataset (a dict keyed by dataset)."""
    return value.get(dataset) if isinstance(value, dict) else value


def _trains(code: str) -> str:
    """The chapter that trains the networks of ``code`` (the switch codes read the prequential runs)."""
    chapter = next(row["chapter"] for row in paper_rows() if row["code"] == code)
    return "prequential" if chapter == "switch" else chapter


def _run_words(r: CodeResult, everything: Sequence[CodeResult]) -> tuple[str, float]:
    """What one of our results trained, from its params (models; epochs), and its minutes of computation (for a
    switch code: those of the prequential runs it reads)."""
    p = r.params
    if r.code in ("switch", "self_switch"):
        nets = p.get("strategies", [r.model])
        runs = {x.model: x for x in everything if x.code == "prequential" and x.dataset == r.dataset
                and x.scale == p.get("from_scale", r.scale) and x.model in nets}
        what = (f"switch among {', '.join(nets)}" if r.code == "switch"
                else f"{r.model}, switching among its epochs")
        epochs = ", ".join(f"{x.params['epochs']}" + (f" ({m})" if len(runs) > 1 else "") for m, x in runs.items()
                           if "epochs" in x.params)
        return f"{what}; epochs {epochs}", sum(_seconds(x) for x in runs.values()) / 60
    return "; ".join(filter(None, [r.model, "epochs " + str(p["epochs"]) if "epochs" in p else ""])), _seconds(r) / 60


def _paper_scale_words(code: str, dataset: str) -> str:
    """What the paper scale of the chapter that trains ``code`` trains on ``dataset`` (its Settings): models, epochs."""
    s = codes.chapter(_trains(code)).module.settings("paper")
    nets = _for_dataset(getattr(s, "models", None) or getattr(s, "model", None), dataset)
    nets = [nets] if isinstance(nets, str) else list(nets or [])
    epochs = _for_dataset(getattr(s, "epochs", None), dataset)
    return "; ".join(filter(None, [", ".join(nets), epochs and f"epochs {epochs}"]))


def gap_table(root: Path | None = None, codes_: Sequence[str] | None = None) -> None:
    """Summary (and chapters 6, 7 with ``codes_``): for each code of the paper's tables that trains something (or
    each of ``codes_``), our shortest codelength beside the paper's, what our run trained (its params), its
    minutes (provenance) and what the paper scale trains (the chapter's Settings at the paper scale)."""
    everything, rows = _everything(root), []
    for (code, ds), r in best_results(root).items():
        if r is not None and code != "uniform" and (codes_ is None or code in codes_):
            run, minutes = _run_words(r, everything)
            paper = paper_kbits(code, ds, paper_values(code, ds)[0]["table"])
            rows.append([_label_of(code), label(ds), f"{codelength_kbits(r, everything)} / {paper}", run,
                         f"{minutes:,.0f}", _paper_scale_words(code, ds)])
    if rows:
        display_markdown(markdown(["code", "dataset", "kbits: ours / paper", "our run: models; epochs", "min.",
                                   "paper scale: models; epochs"], rows,
                                  f"Epochs as set (a maximum where training stops early; per block for the "
                                  f"prequential code); min.: minutes of computation of our run; paper scale: "
                                  f"{SCALE_WORDS['paper']}."))


def gap_notes(root: Path | None = None, plans: Mapping[str, Sequence[Mapping]] | None = None) -> list[str]:
    """Summary: the rest of what differs from the paper, as sentences computed from the store and the settings:
    the data of each dataset, the hardware and time of our runs, the largest gap, and the work the paper scale
    plans against the cpu scale's (``plans``: the job runner's plan rows per scale, jobs.plans)."""
    best = {k: r for k, r in best_results(root).items() if r is not None}
    sources = {label(r.dataset): r.provenance.get("data_source") for r in best.values()}
    notes = ["Data: " + "; ".join(f"{ds} from {src}" for ds, src in sources.items() if src) + "."] if sources else []
    if best:
        hours = sum(_seconds(r) for r in best.values()) / 3600
        devices = sorted({r.provenance.get("device", "?") for r in best.values()})
        kinds = sorted({numerics_words(r) for r in best.values()})
        notes.append(f"Hardware of our runs: {' and '.join(devices)}; together they took {hours:,.1f} hours. "
                     f"Numerics: {'; '.join(kinds)}.")
        gaps = [(r.codelength_bits / 1000 / paper_values(c, ds)[0]["kbits"], c, ds, r) for (c, ds), r in best.items()
                if not paper_values(c, ds)[0]["bound"] and c != "uniform"]
        if gaps:
            f, c, ds, r = max(gaps)
            notes.append(f"The largest gap to a codelength the paper reports: {_label_of(c)} on {label(ds)}, "
                         f"{kbits(r.codelength_bits, 1)} kbits against {paper_values(c, ds)[0]['kbits']:,} "
                         f"({f:.1f} times longer).")
    work = {s: sum(x["work"] or 0 for x in rows) for s, rows in (plans or {}).items()}
    flops = {s: sum(x["train_flops"] or 0 for x in rows) for s, rows in (plans or {}).items()}
    if work.get("cpu") and flops.get("cpu") and "paper" in work:
        notes.append(f"Work: the paper scale plans {work['paper'] / 1e6:,.0f} million samples × epochs of training "
                     f"({flops['paper'] / 1e15:,.1f} PFLOP), {work['paper'] / work['cpu']:,.0f} times the cpu "
                     f"scale's plan in samples × epochs and {flops['paper'] / flops['cpu']:,.0f} times in FLOPs.")
    return notes


def _label_of(code: str) -> str:
    """A code's name in the paper's tables ("Prequential")."""
    return next(row["label"] for row in paper_rows() if row["code"] == code)


def settings_table(chapter: str, scale: str) -> None:
    """A chapter's settings at ``scale`` beside the paper scale's (its Settings resolved at both), as a small table:
    one row per setting that differs; the settings both scales share go into the caption."""
    module = codes.chapter(chapter).module
    here, paper = module.settings(scale), module.settings("paper")
    rows = [[f.name, _short(getattr(here, f.name)), _short(getattr(paper, f.name))] for f in dataclasses.fields(here)
            if f.name != "recipes"]
    if scale == "paper":
        display_markdown(markdown(["setting", "value"], [r[:2] for r in rows], "**Settings** (paper scale)."))
        return
    same = "; ".join(f"{name} {value}" for name, value, other in rows if value == other)
    display_markdown(markdown(["setting", scale, "paper"], [r for r in rows if r[1] != r[2]],
                              f"**Settings** at the {scale} scale, beside the paper scale's"
                              + (f"; the same at both: {same}." if same else ".")))


def _short(value: Any) -> str:
    """A setting's value in a few words: dicts as 'key: value; ...', lists comma-separated, None as 'all'."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(_short, value))
    return "all" if value is None else str(value)


# ---------------------------------------------------------------- helpers of chapter tables


def best_per(records: Mapping[str, Sequence], group: str, score: str = "total_bits") -> list[int]:
    """Indices of the best record (least ``score``) for each distinct value of ``group`` in curve records."""
    g, s = np.asarray(records[group]), np.asarray(records[score])
    return [int(np.flatnonzero(g == v)[np.argmin(s[g == v])]) for v in sorted(set(g.tolist()))]


def where(curve: Mapping[str, Sequence], **conditions) -> list[int]:
    """Indices of the curve records matching every ``name=value`` condition."""
    n = len(next(iter(curve.values())))
    return [i for i in range(n) if all(curve[k][i] == v for k, v in conditions.items())]


Fn = Callable[[CodeResult], Any]


def _of(results: Mapping, code: str) -> dict:
    """The entries of ``results`` that are missing or of ``code``."""
    return {k: r for k, r in results.items() if r is None or r.code == code}


# ---------------------------------------------------------------- chapter tables


def uniform_table(results: Mapping) -> None:
    """Chapter 1: the uniform code of each dataset's training labels."""
    show({k: r for k, r in _of(results, "uniform").items() if k[1] == "uniform"},
         [n_column("n"), ("K", lambda r: r.K, "fold"), ("uniform code (bits)", lambda r: bits(r.codelength_bits)),
          ("kbits", lambda r: kbits(r.codelength_bits)), scale_column(), numerics_column()],
         keys=[("dataset", lambda k: label(k[0]))], caption="The uniform code n log2 K of the training labels.")


def heldout_table(results: Mapping) -> None:
    """Chapter 1: the held-out Shannon code of the test labels, beside uniform and the true-model floor."""
    rows = {k: r for k, r in _of(results, "shannon_heldout").items() if k[1] != "uniform"}
    floor = (lambda r: f"{r.curves['true_bits_per_sample']:.3f}" if "true_bits_per_sample" in r.curves else "")
    show(rows, [("fit on m", lambda r: f"{r.params['fit_sizes'][-1]:,}"), ("test labels", lambda r: f"{r.n:,}"),
                ("test acc.", lambda r: percent(r.test_accuracy)),
                ("bits / label", lambda r: f"{r.codelength_bits / r.n:.3f}"),
                ("uniform", lambda r: f"{r.uniform_bits / r.n:.3f}", "fold"), ("true model", floor, "fold"),
                scale_column(), numerics_column()],
         caption="Bits per test label.")


def two_part_table(results: Mapping) -> None:
    """Chapter 2: model bits, data bits and total of each float32 two-part code; the paper's weights-only bound."""
    show(results, [("model (kbits)", lambda r: kbits(r.parts["model_bits"])),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("paper (weights only)", lambda r: paper_kbits("two_part", r.dataset)), n_column(), scale_column(), numerics_column()],
         caption="Float32 two-part codes in kbits: the model (32 bits per parameter), the data (the training labels "
                 "under the decoded model) and their total.")


def _best_configuration_table(results: Mapping, choice: Column, model_key: str, model_name: str, code: str,
                              paper_name: str, caption: str) -> None:
    """Chapters 3 and 4: a two-part code's best configuration (``choice``), its model bits
    (``parts[model_key]``), data bits, total, ratio and test accuracy, beside the paper's bound for ``code``."""
    show(results, [choice, (model_name, lambda r: kbits(r.parts[model_key], 2)),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits, 2)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   (paper_name, lambda r: paper_kbits(code, r.dataset)), n_column(), scale_column(), numerics_column()],
         caption=caption)


def compression_table(results: Mapping) -> None:
    """Chapter 3: the best (sparsity, bits) pair of each network-compression code, and the paper's bound."""
    _best_configuration_table(
        results, ("pruned, bits", lambda r: f"{r.params['best_sparsity']:.0%}, {r.params['best_bits']}"),
        "weight_bits", "weights (kbits)", "network_compression", "paper (weights only)",
        "The best pair: the fraction of weights pruned and the bits per shared weight.")


def compression_breakdown(results: Mapping) -> None:
    """Chapter 3: where the weight bits of the best configuration go."""
    parts = (("headers", "header_bits"), ("positions", "position_bits"), ("codebooks", "codebook_bits"),
             ("Huffman tables", "table_bits"), ("indices", "index_bits"), ("padding", "padding_bits"),
             ("choice of (s, b)", "selection_bits"))
    show({k: r for k, r in results.items() if r is not None},
         [(name, lambda r, key=key: f"{r.parts[key]:,.0f}") for name, key in parts] + [scale_column(), numerics_column()],
         caption="Bits of each part of the weight stream.")


def subspace_table(results: Mapping) -> None:
    """Chapter 4: the best (d, p) of each random-subspace code, and the paper's bound (32 d only)."""
    _best_configuration_table(
        results, ("best d, p", lambda r: f"{r.params['best_d']:,}, {r.params['best_p']}"), "model_bits",
        "model (kbits)", "intrinsic_dimension", "paper (32 d only)",
        "The best subspace dimension d and precision p (bits per coordinate).")


def subspace_per_dimension(results: Mapping) -> None:
    """Chapter 4: for each d, the best precision, and what float32 (the paper's count) would have cost."""
    rows = []
    for r in (r for r in results.values() if r is not None):
        c = r.curves
        for i in best_per(c, "d"):
            f32 = where(c, d=c["d"][i], p=32)
            rows.append([label(r.dataset), r.model, c["d"][i], c["p"][i], kbits(c["theta_bits"][i], 2),
                         kbits(c["data_bits"][i], 2), kbits(c["total_bits"][i], 2),
                         kbits(c["total_bits"][f32[0]], 2) if f32 else "", percent(c["test_accuracy"][i])])
    if rows:
        header = ["dataset", "model", "d", "best p", "theta_d (kbits)", "data (kbits)", "total (kbits)",
                  "total at p = 32", "test acc."]
        header, rows, notes = _fold(header, rows, [h == "model" for h in header])
        display_markdown(markdown(header, rows, with_notes(
            "For each subspace dimension d, the precision p that gives the shortest total, and the total at p = 32 "
            "(the paper's count); kbits.", notes)))


def variational_table(results: Mapping) -> None:
    """Chapter 5: codelength, its model and data parts, beside the paper's two tables."""
    def paper(r):
        a, b = paper_reference("variational", r.dataset, "1"), paper_reference("variational", r.dataset, "2")
        return f"{a['kbits']} / {b['kbits']}" if a and b else ""

    show(results, [("kbits", lambda r: kbits(r.codelength_bits, 2)),
                   ("model part", lambda r: kbits(r.parts["kl_bits"], 2)),
                   ("data part ± s.e.",
                    lambda r: f"{kbits(r.parts['data_bits'], 2)} ± {kbits(r.parts['data_bits_se'], 2)}"),
                   ("test acc.", lambda r: percent(r.test_accuracy)), ("sigma0", lambda r: f"{r.params['sigma0']:g}"),
                   ("paper (Tables 1 / 2)", paper), ("epochs", lambda r: r.params["epochs"], "fold"), n_column(),
                   scale_column(), numerics_column()],
         caption="Codelengths in kbits; the model part is the KL plus log2 |grid| bits for the choice of sigma0.")


def variational_grid(results: Mapping) -> None:
    """Chapter 5: the selection estimate of every prior width of the grid (choice bits included); the headline
    re-estimates the chosen width with fresh draws (curves.final_eval), so its row differs from the table's."""
    rows = [[label(r.dataset), r.model, f"{e['sigma0']:g}", kbits(e["kl_bits"], 2), kbits(e["data_bits"], 2),
             kbits(e["codelength_bits"], 2), "chosen" if e["sigma0"] == r.params["sigma0"] else ""]
            for r in results.values() if r is not None for e in r.curves["grid"]]
    if rows:
        display_markdown(markdown(["dataset", "model", "sigma0", "KL (kbits)", "data (kbits)", "codelength (kbits)",
                                   ""], rows, "Selection estimates (the draws that chose sigma0); the codelength "
                                              "reported above re-estimates the chosen width with fresh draws."))


def prequential_table(results: Mapping) -> None:
    """Chapter 6: the prequential codes, calibrated (the headline) and not, with their recipes (Algorithm 2,
    cold, or ours), minutes of computation (wall and CPU) and the paper's best."""
    def minutes(r, key):
        value = r.provenance.get(key)
        return "" if value is None else f"{value / 60:.1f}"

    show(results, [("kbits", lambda r: kbits(r.parts["bits_calibrated"], 2)),
                   ("uncalibrated", lambda r: kbits(r.parts["bits_uncalibrated"], 2)),
                   ("ratio", lambda r: ratio(r.ratio)), ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("min.", lambda r: minutes(r, "compute_seconds") or minutes(r, "wall_seconds")),
                   ("CPU min.", lambda r: minutes(r, "cpu_seconds")),
                   ("paper's best", lambda r: paper_kbits("prequential", r.dataset)), n_column(), scale_column(), numerics_column()],
         caption="Codelengths in kbits, calibrated (the code) and uncalibrated; min.: minutes of computation on a "
                 "shared 2-core CPU with one torch thread (CPU min.: processor time, where recorded); the "
                 "paper's best is its VGG-like network on a GPU. Each run's recipe is listed below the table.")
    recipes = {r.model: prequential_recipe_words(r.params) for r in done(results)}
    if recipes:
        display_markdown("Recipes:\n\n" + "\n".join(f"- `{name}`: {words}" for name, words in recipes.items()))


def calibration_table(r: CodeResult) -> None:
    """Chapter 6: per block of one prequential run, the fitted temperature and the bits it saved or cost."""
    c = r.curves
    rows = [[f"{t0:,}", f"{t1 - t0:,}", f"{temp:.2f}", f"{u:.3f}", f"{b:.3f}", f"{(u - b) * (t1 - t0):+,.1f}", e]
            for t0, t1, temp, u, b, e in zip(c["t_start"], c["t_end"], c["temperature"],
                                             c["bits_per_sample_uncalibrated"], c["bits_per_sample"], c["best_epoch"])]
    saved = r.parts["bits_uncalibrated"] - r.parts["bits_calibrated"]
    display_markdown(markdown(["trained on t_s", "block size", "temperature T", "bits/sample raw",
                               "bits/sample calibrated", "bits saved", "best epoch"], rows,
                              f"**{label(r.dataset)} / {r.model}** ({r.scale} scale): calibration saves "
                              f"{saved:+,.1f} bits in all."))


def switch_table(preq: Sequence[CodeResult], switched: Sequence[CodeResult]) -> None:
    """Chapter 7: Table 2 rows: the prequential codes, the switch codes and the self-switch codes."""
    rows = [[label(r.dataset), f"prequential ({r.model})", kbits(r.codelength_bits, 2), "", ratio(r.ratio)]
            for r in preq]
    for r in switched:
        if r.code == "switch":
            p = r.parts
            rows += [[label(r.dataset), name, kbits(p[key], 2), f"{p[prior]:.1f}", ratio(p[key] / r.uniform_bits)]
                     for name, key, prior in (("switch: best block sequence", "best_sequence_bits",
                                               "best_sequence_prior_bits"),
                                              ("switch: best sample sequence", "best_sample_sequence_bits",
                                               "best_sample_sequence_prior_bits"))]
            rows.append([label(r.dataset), "switch: mixture", kbits(r.codelength_bits, 2), "in the prior",
                         ratio(r.ratio)])
        else:
            rows.append([label(r.dataset), f"self-switch ({r.model})", kbits(r.codelength_bits, 2),
                         f"{r.parts['choice_bits']:.1f}", ratio(r.ratio)])
    scales_ = sorted({r.scale for r in [*preq, *switched]})
    display_markdown(markdown(["dataset", "code", "kbits", "switch cost (bits)", "ratio"], rows,
                              f"Codelengths in kbits, switch cost included; scale: "
                              f"{', '.join(map(scale_words, scales_))}."))



def switch_notes(results: Mapping) -> None:
    """Chapter 7: each switch code's best block sequence (which run encodes from which label on), and each
    self-switch code's chosen evaluation per block beside the one early stopping kept."""
    sentences = []
    for r in done(results):
        if r.code == "switch":
            starts = [0, *r.params["timesteps"]]
            sentences.append(f"{label(r.dataset)}, best block sequence: " + ", ".join(
                f"{name} from label {starts[i]:,}" for i, name in r.curves["best_sequence"]) + ".")
        else:
            sentences.append(f"{label(r.dataset)} / {r.model}: self-switch epochs {r.curves['chosen_epoch']}; "
                             f"early stopping kept {r.curves['early_stopping_epoch']}.")
    say(*sentences)

def bytes_table(results: Mapping) -> None:
    """Chapter 9: computed codelength against the file: file size, header (compact, self-describing), overheads
    (payload alone, whole file) and times."""
    def pair(r, a, b, fmt):
        return " / ".join(format(r.parts.get(k, math.nan), fmt) for k in (a, b))

    show(results, [("computed (bits)", lambda r: bits(r.parts["computed_codelength_bits"])),
                   ("file (bytes)", lambda r: f"{r.parts['file_bytes']:,.0f}"),
                   ("header bits: compact / described",
                    lambda r: pair(r, "header_bits", "self_describing_header_bits", ",.0f")),
                   ("overhead bits: payload (checks) / file",
                    lambda r: f"{r.parts['payload_overhead_bits']:+,.1f} ({r.parts.get('check_bits', 0):,.0f}) / "
                              f"{r.parts['overhead_bits']:+,.1f}"),
                   ("seconds: enc. / dec. / chapter", lambda r: " / ".join(filter(None, [
                       f"{r.params['encode_seconds']:.1f}", f"{r.params['decode_seconds']:.1f}",
                       _trained_seconds(r)]))),
                   ("round trip", lambda r: "exact" if r.params["round_trip_labels_equal"]
                    and r.params["round_trip_probabilities_equal"] else "FAILED", "fold"),
                   n_column(), scale_column(), numerics_column()],
         caption="Bits over the computed codelength (model bits included). The header column counts everything "
                 "besides the model and the payload: the compact header the file holds, or a self-describing "
                 "(described) one that adds the full settings as compressed JSON; the payload overhead includes the "
                 "per-block checks (4 bits before every block coded with a trained model), and the file overhead "
                 "is the header plus the payload overhead. Seconds to encode, to decode, and (chapter) that the prequential or "
                 "two-part chapter took to train the same models once, for comparison: encoding and decoding each "
                 "train them again (wall seconds on a 2-core CPU shared with other jobs).")



def _trained_seconds(r: CodeResult) -> str:
    """Chapter 9: the computation seconds of the stored chapter runs that train the models of a file's code (the
    prequential runs of a prequential, switch or self-switch code; the two-part run), summed; "" without any."""
    from . import results

    code, nets = r.params["code"], (r.params.get("network") or "").split("-")
    chapter = "two_part" if code == "two_part" else "prequential"
    try:
        runs = [results.load(chapter, r.dataset, m, r.scale, seed=r.seed) for m in nets if m and code != "uniform"]
    except results.MissingResultError:
        return ""
    return f"{sum(_seconds(x) for x in runs):,.0f}" if runs else ""

def fake_labels_table(results: Mapping) -> None:
    """Chapter 8: the variational code per sample on true and on random labels, beside the uniform code."""
    show({k: r for k, r in results.items() if r is None or r.code == "variational"},
         [("bits / sample", lambda r: f"{r.codelength_bits / r.n:.3f}"),
          ("KL part", lambda r: f"{r.parts['kl_bits'] / r.n:.3f}"),
          ("data part", lambda r: f"{r.parts['data_bits'] / r.n:.3f}"),
          ("uniform", lambda r: f"{math.log2(r.K):.3f}", "fold"),
          ("test acc. (true test labels)", lambda r: percent(r.test_accuracy)), n_column(), scale_column(), numerics_column()],
         keys=[("labels", lambda k: label(k[0]))], caption="Variational code, bits per training label.")


def counting_bound_table(n: int, K: int, cs: Sequence[float]) -> None:
    """Chapter 8 (App. A): the counting bound n log2 K - c and its failure probability 2^-c for several c."""
    from .codes.fake_labels import counting_table

    rows = [[f"{r['c']:g}", bits(r["bound_bits"]), f"{r['ratio']:.6f}", f"{r['probability']:.3g}"]
            for r in counting_table(n, K, cs)]
    display_markdown(markdown(["c (bits)", "bound n log2 K - c (bits)", "bound / uniform",
                               "P(some code beats it) <= 2^-c"], rows,
                              f"n = {n:,}, K = {K}: n log2 K = {n * math.log2(K):,.1f} bits."))


def bound_check(results: Mapping, c: float = 20) -> None:
    """Chapter 8: every code run on random labels, against the counting bound n log2 K - c."""
    from .codes.fake_labels import counting_bound_bits, stays_above

    rows = []
    for r in (r for r in results.values() if r is not None and r.dataset.endswith("_random")):
        bound = counting_bound_bits(r.n, r.K, c)
        for name, value in ((("uniform", r.uniform_bits),) if r.code == "variational" else ()) + (
                (f"{r.code.replace('_', '-')} ({r.model})", r.codelength_bits),):
            rows.append([label(r.dataset), name, f"{r.n:,}", bits(value), bits(bound), bits(value - bound),
                         "yes" if stays_above(value, r.n, r.K, c) else "NO"])
    if rows:
        display_markdown(markdown(["dataset", "code on random labels", "n", "codelength (bits)",
                                   f"bound n log2 K - {c:g}", "margin (bits)", "above the bound"], rows))


# ---------------------------------------------------------------- chapter notes: one sentence per run


def synthetic_floor(results: Mapping) -> None:
    """Chapter 1: where the true model is known (the synthetic task), how much of the largest possible gain over
    the uniform code (log2 K - H(Y|X) bits per label) the held-out Shannon code achieves."""
    def sentence(r: CodeResult) -> str:
        floor, ours, unif = r.curves["true_bits_per_sample"], r.codelength_bits / r.n, r.uniform_bits / r.n
        return (f"On {r.n:,} {label(r.dataset)} test labels: uniform {unif:.4f} bits per label; true-model floor "
                f"H(Y|X) {floor:.4f}; {r.model} fit on m = {r.params['fit_sizes'][-1]:,} samples {ours:.4f}. The "
                f"largest possible gain is {unif - floor:.4f} bits per label; the fit achieves {unif - ours:.4f} "
                f"({100 * (unif - ours) / (unif - floor):.1f}%).")

    say_each([r for r in done(results) if "true_bits_per_sample" in r.curves], sentence)


def two_part_notes(results: Mapping) -> None:
    """Chapter 2: each two-part code in words: total = model + data, against uniform, and its training."""
    say_each(results, lambda r: (
        f"{label(r.dataset)} / {r.model}: {kbits(r.codelength_bits)} kbits = {kbits(r.parts['model_bits'])} model + "
        f"{kbits(r.parts['data_bits'], 2)} data ({r.params['num_parameters']:,} parameters at 32 bits), "
        f"{ratio(r.ratio)} times the uniform code; trained "
        f"{r.params['epochs_run']} epochs (best {r.params['best_epoch']}) in {r.provenance['wall_seconds']:.0f} s."))


def _best_total(r: CodeResult, model_note: str = "", model_digits: int = 2) -> str:
    """'MNIST / lenet: best total T kbits = M model (note) + D data, ratio R' of a two-part code's best setting."""
    return (f"{label(r.dataset)} / {r.model}: best total {kbits(r.codelength_bits, 2)} kbits = "
            f"{kbits(r.parts['model_bits'], model_digits)} model{model_note} + {kbits(r.parts['data_bits'], 2)} "
            f"data, ratio {ratio(r.ratio)}")


def compression_notes(results: Mapping) -> None:
    """Chapter 3: each network-compression code in words: its best pair and the bytes of its weights."""
    say_each(results, lambda r: _best_total(
        r, f" ({r.parts['weight_bits'] / 8:,.0f} bytes of weights, "
           f"{r.parts['weight_bits'] / r.params['num_parameters']:.2f} bits per parameter)")
        + f", at sparsity {r.params['best_sparsity']:.0%} with {r.params['best_bits']} bits per shared weight; "
          f"{r.provenance['wall_seconds']:.0f} s.")


def subspace_notes(results: Mapping) -> None:
    """Chapter 4: each random-subspace code in words: its best (d, p) and its parts."""
    say_each(results, lambda r: _best_total(r, model_digits=3)
             + f", at d = {r.params['best_d']} and p = {r.params['best_p']} bits; {r.params['epochs']} epochs per d, "
               f"{r.provenance['wall_seconds']:.0f} s.")


def variational_notes(results: Mapping) -> None:
    """Chapter 5: each variational code in words: its parts, the chosen prior width, its training."""
    say_each(results, lambda r: (
        f"{label(r.dataset)} / {r.model}: {r.kbits:.2f} kbits (ratio {r.ratio:.3f}), test accuracy "
        f"{percent(r.test_accuracy)}; model part {r.parts['kl_bits'] / 1000:.2f} kbits (KL "
        f"{r.parts['kl_divergence_bits'] / 1000:.2f} + {r.parts['prior_choice_bits']:.2f} bits for sigma0 = "
        f"{r.params['sigma0']:g}), data part {r.parts['data_bits'] / 1000:.2f} ± "
        f"{r.parts['data_bits_se'] / 1000:.2f} kbits; {r.params['epochs']} epoch(s) per sigma0, "
        f"{r.provenance['wall_seconds']:.0f} s on {r.params['num_threads']} thread(s)."))


def memorization_notes(results: Mapping) -> None:
    """Chapter 8: plain training that memorizes random labels, and what its two-part code costs."""
    say_each([r for r in done(results) if r.code == "two_part"], lambda r: (
        f"{label(r.dataset)}, plain {r.params['optimizer']} on {r.n:,} random labels for {r.params['epochs']} epochs: "
        f"train accuracy {percent(r.parts['train_accuracy'])}, {r.parts['data_bits'] / r.n:.3f} bits per label with "
        f"the trained network; but sending the network in float32 costs {r.parts['model_bits'] / 1000:,.0f} kbits, "
        f"so the two-part code takes {r.kbits:,.0f} kbits against {r.uniform_bits / 1000:,.1f} kbits for the "
        f"uniform code (ratio {r.ratio:,.1f})."))


def bytes_against_chapters(results: Mapping, seed: int = 0) -> None:
    """Chapter 9: each file's computed codelength against the stored result of the code's own chapter (same
    settings and seed), and whether the payload, per-block checks apart, stays within 0.1% + 32 bits of it."""
    from . import chapters
    from .codes import bytes as bytes_code

    sentences = []
    for r in done(results):
        counterpart = bytes_code.chapter_counterpart(r)
        chapter = counterpart and chapters.get(counterpart[0], r.dataset, counterpart[1], r.scale, seed=seed)
        if chapter:
            computed, payload = r.parts["computed_codelength_bits"], r.parts["payload_bits"]
            ok = payload - r.parts.get("check_bits", 0) <= 1.001 * chapter.codelength_bits + 32
            sentences.append(
                f"{label(r.dataset)} / {r.model}: computed {computed:,.1f} bits, the {counterpart[0]} chapter stored "
                f"{chapter.codelength_bits:,.1f} (relative difference {computed / chapter.codelength_bits - 1:+.1e}); "
                f"the payload, {payload:,.0f} bits with {r.parts.get('check_bits', 0):,.0f} bits of per-block checks, "
                f"is {'within' if ok else 'NOT within'} 0.1% + 32 bits of it besides the checks.")
    say(*sentences)


# ------------------------------------------ chapter 6: prequential recipes, cold and warm (issue 16)


def prequential_recipe_words(p: Mapping[str, Any]) -> str:
    """A prequential run's recipe (its params) in words: architecture, cold (Algorithm 2) or warm start, step
    budget, schedule, stopping rule, which weights are kept, augmentation."""
    start = ("warm (replay" + (", Adam state kept)" if p.get("carry_optimizer") else ")")) if p.get("warm_start") \
        else "cold"
    budget = [f"{p['epochs']} epochs" if p.get("epochs") is not None else "",
              f"<= {p['max_steps']:,} steps" if p.get("max_steps") else "",
              f">= {p['min_steps']:,} steps" if p.get("min_steps") else ""]
    stop = f"early stopping (patience {p['patience']})" if p.get("patience") is not None else "no early stopping"
    keep = "best restored" if p.get("restore_best", True) else "last weights"
    augment = (f"shifts <= {p.get('augment_shift', 4)} px" + (" and flips" if p.get("augment_flip", True) else "")
               if p.get("augment") else "")
    words = [start, " ".join(b for b in budget if b), f"{p.get('schedule', 'constant')} lr", stop, keep, augment]
    return f"{p['model']}: " + ", ".join(w for w in words if w)


def prequential_block_rows(results: Sequence[CodeResult], steps: bool = True) -> tuple[list[str], list[list]]:
    """Header and rows of a per-block table of prequential runs on one transmission order: per run the bits per
    sample, (``steps``) the optimizer steps and the seconds of each block; a last row with the totals."""
    runs = [r for r in results if r is not None]
    if not runs:
        return [], []
    header = ["trained on t_s", "block"]
    for r in runs:
        header += [f"{r.model} bits/sample", *([f"{r.model} steps"] if steps else []), f"{r.model} s"]
    rows = []
    for i, (t0, t1) in enumerate(zip(runs[0].curves["t_start"], runs[0].curves["t_end"])):
        row: list = [f"{t0:,}", f"{t1 - t0:,}"]
        for r in runs:
            c = r.curves
            row += [f"{c['bits_per_sample'][i]:.4f}", *([f"{c['steps_run'][i]:,}" if "steps_run" in c else ""]
                                                        if steps else []), f"{c['block_seconds'][i]:.1f}"]
        rows.append(row)
    total: list = ["all", f"{runs[0].n:,}"]
    for r in runs:
        total += [f"{r.kbits:.2f} kbits", *([f"{sum(r.curves.get('steps_run', [])):,}"] if steps else []),
                  f"{sum(r.curves['block_seconds']):.0f}"]
    return header, rows + [total]


def prequential_blocks_table(results: Sequence[CodeResult]) -> None:
    """Chapter 6: cold and warm runs of one dataset side by side, per block: one column per run, each cell the
    block's bits per sample and the seconds its model took (one column per run keeps four runs in the page)."""
    runs = [r for r in results if r is not None]
    if not runs:
        return
    header, rows = prequential_block_rows(runs, steps=False)
    merged = [row[:2] + [f"{b} · {t} s" for b, t in zip(row[2::2], row[3::2])] for row in rows]
    display_markdown(markdown(header[:2] + [r.model for r in runs], merged,
                              f"**{label(runs[0].dataset)}** ({runs[0].scale} scale): bits per sample of each block "
                              f"· the seconds its model took (training, calibration, encoding); last row: codelength "
                              f"and total seconds."))


def _cold_reference(r: CodeResult, found: Sequence[CodeResult]) -> tuple[CodeResult | None, str]:
    """The run a prequential run is measured against, and its words: the Algorithm 2 run of its architecture (the
    run named after it), else its cold twin (the same recipe with ``warm_start`` off); (None, "") when neither is
    stored, or when ``r`` is that run."""
    def twin(x: CodeResult) -> bool:
        strip = ("warm_start", "carry_optimizer")
        return (x.dataset == r.dataset and not x.params.get("warm_start")
                and {k: v for k, v in x.params.items() if k not in strip}
                == {k: v for k, v in r.params.items() if k not in strip})

    algorithm2 = next((x for x in found if x.dataset == r.dataset and x.model == r.params["model"]), None)
    for ref, words in ((algorithm2, "Algorithm 2"), (next((x for x in found if twin(x)), None), "cold twin")):
        if ref is not None:
            return (None, "") if ref is r else (ref, words)
    return None, ""


def _recipe_cells(p: Mapping[str, Any]) -> list[str]:
    """A recipe's ingredients as short cells: start, budget (epochs, steps) and learning-rate schedule, stopping
    rule and kept weights."""
    start = ("warm" + (" + Adam state" if p.get("carry_optimizer") else "")) if p.get("warm_start") else "cold"
    budget = ", ".join(filter(None, [f"{p['epochs']} ep." if p.get("epochs") is not None else "",
                                     f"<= {p['max_steps']:,} steps" if p.get("max_steps") else "",
                                     f">= {p['min_steps']:,} steps" if p.get("min_steps") else "",
                                     p.get("schedule", "constant")]))
    stop = (f"early ({p['patience']}), " if p.get("patience") is not None else "none, ") + \
        ("best" if p.get("restore_best", True) else "last")
    return [start, budget, stop]


def prequential_ablation_table(results: Mapping) -> None:
    """Chapter 6: what each ingredient of a recipe does, on one dataset: the ingredients, codelength and minutes of
    each run, and against its reference (:func:`_cold_reference`: Algorithm 2, else the same recipe started cold)
    the bits saved and the time ratio."""
    found = done(results)
    if not found:
        return

    def versus(r, f):
        ref, _ = _cold_reference(r, found)
        return "" if ref is None else f(ref)

    columns = [(name, lambda r, i=i: _recipe_cells(r.params)[i])
               for i, name in enumerate(("start", "budget, lr", "stop, keep"))]
    show(results, [*columns, ("kbits", lambda r: kbits(r.codelength_bits, 2)),
                   ("min.", lambda r: f"{_seconds(r) / 60:.1f}"),
                   ("against", lambda r: versus(r, lambda ref: ref.model)),
                   ("bits saved", lambda r: versus(r, lambda ref: bits(ref.codelength_bits - r.codelength_bits, 0))),
                   ("time", lambda r: versus(r, lambda ref: f"{_seconds(r) / _seconds(ref):.2f}x")),
                   n_column(), scale_column(), numerics_column()], keys=[("run", lambda k: k[1])],
         caption=f"**{label(found[0].dataset)}**: ablation of the recipes (one torch thread, 2-core CPU). Budget in "
                 "epochs per block (ep.) and optimizer steps, and the learning-rate schedule; stop, keep: early "
                 "stopping (patience) or none, and whether the best evaluated or the last weights are kept. Bits "
                 "saved and time ratio against the run in the column 'against': Algorithm 2 (the paper's recipe, "
                 "run under the architecture's own name), else the same recipe started cold.")


def prequential_gains(results: Mapping) -> list[str]:
    """Chapter 6: per dataset and architecture, the shortest warm run against its reference (:func:`_cold_reference`):
    bits and time saved, as sentences; then the best run per dataset beside the paper."""
    found = [r for r in results.values() if r is not None and r.code == "prequential"]
    sentences = []
    for ds, arch in sorted({(r.dataset, r.params["model"]) for r in found}):
        warm = [r for r in found if r.dataset == ds and r.params["model"] == arch and r.params.get("warm_start")]
        w = min(warm, key=lambda r: r.codelength_bits) if warm else None
        ref, words = _cold_reference(w, found) if w else (None, "")
        if ref is not None:
            saved = ref.codelength_bits - w.codelength_bits
            sentences.append(
                f"{label(ds)} / {arch}: the warm recipe `{w.model}` codes the labels in {kbits(w.codelength_bits, 2)} "
                f"kbits instead of {kbits(ref.codelength_bits, 2)} (`{ref.model}`, {words}): {kbits(saved, 2)} kbits "
                f"({saved / ref.codelength_bits:.0%}) fewer, in {_seconds(w) / _seconds(ref):.2f}x the time.")
    for ds in sorted({r.dataset for r in found}):
        best = min((r for r in found if r.dataset == ds), key=lambda r: r.codelength_bits)
        sentences.append(f"{label(ds)}: the shortest code here is `{best.model}`, {kbits(best.codelength_bits, 2)} "
                         f"kbits in {_seconds(best) / 60:.1f} min; the paper's best is "
                         f"{paper_kbits('prequential', ds)} kbits (a VGG-like network on a GPU).")
    return sentences or ["No prequential runs are stored yet."]


def _seconds(r: CodeResult) -> float:
    """Seconds of computation of a result: its compute_seconds (blocks only), else its wall seconds."""
    return r.provenance.get("compute_seconds", r.provenance["wall_seconds"])
