"""The book's tables: number formats, one table renderer, each chapter's tables, and Tables 1 and 2 of the
paper beside the results store.

:func:`show` renders a table of results: one row per result, a row saying
"not computed yet" for a missing one, and the columns whose value is the same in
every row (the scale, n) moved into the caption, which stays with its table (one
Markdown output). :func:`say` prints result sentences as Markdown, so that they wrap.
"""

from __future__ import annotations

import json
import math
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .results import CodeResult, results_root, stored
from .scales import SCALE_WORDS

DATASETS = ("mnist", "cifar10")
DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10", "synthetic": "synthetic"}
BOOK_SCALES = ("paper", "cpu")  # preferred first; smoke runs never enter the book's tables
NOT_COMPUTED = "not computed yet"

Column = tuple  # (header, function of a CodeResult) or (header, function, "fold"): fold into the caption if constant


# ------------------------------------------------------------------ formats


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


def label(dataset: str) -> str:
    """A dataset's name for readers: MNIST, CIFAR-10, an image folder's own name, '(random labels)'."""
    if dataset.endswith("_random"):
        return f"{label(dataset.removesuffix('_random'))} (random labels)"
    if dataset.startswith("folder:"):
        return Path(dataset.split(":", 1)[1].rstrip("/")).name or dataset
    return DATASET_LABELS.get(dataset, dataset)


def scale_words(scale: str) -> str:
    return f"{scale} ({SCALE_WORDS.get(scale, scale)})"


# ------------------------------------------------------------------ rendering


def markdown(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "") -> str:
    """A GitHub/MyST Markdown table, with its caption above it."""
    def cell(v: Any) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, r)) + " |" for r in rows]
    return (f"{caption}\n\n" if caption else "") + "\n".join(lines)


def display_markdown(text: str) -> None:
    from IPython.display import Markdown, display

    display(Markdown(text))


def say(*sentences: str) -> None:
    """Result sentences as one Markdown paragraph each (they wrap; printed text would run off the page)."""
    display_markdown("\n\n".join(sentences))


def _fold(header: list[str], rows: list[list], foldable: list[bool]) -> tuple[list[str], list[list], list[str]]:
    """Move the foldable columns whose value is the same in every row into caption phrases."""
    keep = [i for i, f in enumerate(foldable) if not (f and rows and len({str(r[i]) for r in rows}) == 1)]
    notes = [f"{header[i]}: {rows[0][i]}" for i in range(len(header)) if i not in keep]
    return [header[i] for i in keep], [[r[i] for i in keep] for r in rows], notes


def show(results: Mapping[Any, CodeResult | None] | Sequence[CodeResult | None], columns: Sequence[Column], *,
         caption: str = "", keys: Sequence[Column] = (), render: bool = True) -> str:
    """One table of ``results`` (a list, or a dict keyed by (dataset, model)); ``keys`` are the columns that
    identify a row, also shown for a missing result (None), whose row then says "not computed yet"."""
    items = list(results.items()) if isinstance(results, Mapping) else [(None, r) for r in results]
    keys = keys or ((("dataset", lambda k: label(k[0])), ("model", lambda k: k[1])) if isinstance(results, Mapping)
                    else ())
    header = [c[0] for c in (*keys, *columns)]
    foldable = [False] * len(keys) + [len(c) > 2 and c[2] == "fold" for c in columns]
    rows = []
    for key, r in items:
        head = [k[1](key if r is None else (r.dataset, r.model)) for k in keys]
        rows.append(head + ([c[1](r) for c in columns] if r is not None else
                            [NOT_COMPUTED] + [""] * (len(columns) - 1)))
    header, rows, notes = _fold(header, [r for r in rows], foldable)
    full = " ".join(filter(None, [caption, "; ".join(notes) + "." if notes else ""]))
    text = markdown(header, rows, full)
    if render:
        display_markdown(text)
    return text


def scale_column() -> Column:
    return ("scale", lambda r: scale_words(r.scale), "fold")


def n_column(name: str = "labels n") -> Column:
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


def comparison_rows(table: str, root: Path | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and rows of paper Table ``table`` ("1" or "2") beside our best stored results."""
    everything = stored(root=root) if (Path(root) if root else results_root()).is_dir() else []
    header = ["code", "dataset", "ours: kbits", "ratio", "test acc.", "model, scale", "paper: kbits", "ratio",
              "test acc."]
    rows = []
    for row in paper_tables()["tables"][table]["rows"]:
        for ds in DATASETS:
            r = best_result(row["code"], ds, [x for x in everything if x.code == row["code"]])
            ours = ([kbits(r.codelength_bits, 2 if r.codelength_bits < 1e4 else 1), ratio(r.ratio),
                     percent(r.test_accuracy), f"{r.model}, {r.scale}"] if r else [NOT_COMPUTED, "", "", ""])
            ref = row[ds]
            b = f"{ref['bound']} " if ref.get("bound") else ""
            rows.append([row["label"], label(ds), *ours, f"{b}{ref['kbits']:,}", f"{b}{ref['ratio']:,}",
                         percent(ref["test_accuracy"])])
    return header, rows


def show_comparison(table: str, root: Path | None = None) -> None:
    display_markdown(markdown(*comparison_rows(table, root)))


def settings_table(settings: Any, title: str = "Settings") -> None:
    """A settings dataclass as a small two-column table (field, value)."""
    import dataclasses

    rows = [[f.name, _short(getattr(settings, f.name))] for f in dataclasses.fields(settings)]
    display_markdown(markdown(["setting", "value"], rows, f"**{title}**"))


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
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
    return {k: r for k, r in results.items() if r is None or r.code == code}


# ---------------------------------------------------------------- chapter tables


def uniform_table(results: Mapping) -> None:
    """Chapter 1: the uniform code of each dataset's training labels."""
    show({k: r for k, r in _of(results, "uniform").items() if k[1] == "uniform"},
         [n_column("n"), ("K", lambda r: r.K), ("uniform code (bits)", lambda r: bits(r.codelength_bits)),
          ("kbits", lambda r: kbits(r.codelength_bits)), scale_column()],
         keys=[("dataset", lambda k: label(k[0]))])


def heldout_table(results: Mapping) -> None:
    """Chapter 1: the held-out Shannon code of the test labels, beside uniform and the true-model floor."""
    rows = {k: r for k, r in _of(results, "shannon_heldout").items() if k[1] != "uniform"}
    floor = (lambda r: f"{r.curves['true_bits_per_sample']:.3f}" if "true_bits_per_sample" in r.curves else "")
    show(rows, [("fit on m", lambda r: f"{r.params['fit_sizes'][-1]:,}"), ("test labels", lambda r: f"{r.n:,}"),
                ("test acc.", lambda r: percent(r.test_accuracy)),
                ("bits / label", lambda r: f"{r.codelength_bits / r.n:.3f}"),
                ("uniform", lambda r: f"{r.uniform_bits / r.n:.3f}", "fold"), ("true model", floor, "fold"),
                scale_column()],
         caption="Bits per test label.")


def two_part_table(results: Mapping) -> None:
    """Chapter 2: model bits, data bits and total of each float32 two-part code; the paper's weights-only bound."""
    show(results, [("model (kbits)", lambda r: kbits(r.parts["model_bits"])),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("paper (weights only)", lambda r: paper_kbits("two_part", r.dataset)), n_column(), scale_column()])


def compression_table(results: Mapping) -> None:
    """Chapter 3: the best (sparsity, bits) pair of each network-compression code, and the paper's bound."""
    show(results, [("pruned, bits", lambda r: f"{r.params['best_sparsity']:.0%}, {r.params['best_bits']}"),
                   ("weights (kbits)", lambda r: kbits(r.parts["weight_bits"], 2)),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits, 2)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("paper (weights only)", lambda r: paper_kbits("network_compression", r.dataset)),
                   n_column(), scale_column()],
         caption="The best pair: the fraction of weights pruned and the bits per shared weight.")


def compression_breakdown(results: Mapping) -> None:
    """Chapter 3: where the weight bits of the best configuration go."""
    parts = (("headers", "header_bits"), ("positions", "position_bits"), ("codebooks", "codebook_bits"),
             ("Huffman tables", "table_bits"), ("indices", "index_bits"), ("padding", "padding_bits"),
             ("choice of (s, b)", "selection_bits"))
    show({k: r for k, r in results.items() if r is not None},
         [(name, lambda r, key=key: f"{r.parts[key]:,.0f}") for name, key in parts] + [scale_column()],
         caption="Bits of each part of the weight stream.")


def subspace_table(results: Mapping) -> None:
    """Chapter 4: the best (d, p) of each random-subspace code, and the paper's bound (32 d only)."""
    show(results, [("best d, p", lambda r: f"{r.params['best_d']:,}, {r.params['best_p']}"),
                   ("model (kbits)", lambda r: kbits(r.parts["model_bits"], 2)),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits, 2)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("paper (32 d only)", lambda r: paper_kbits("intrinsic_dimension", r.dataset)),
                   n_column(), scale_column()],
         caption="The best subspace dimension d and precision p (bits per coordinate).")


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
        display_markdown(markdown(["dataset", "model", "d", "best p", "theta_d (kbits)", "data (kbits)",
                                   "total (kbits)", "total at p = 32", "test acc."], rows))


def variational_table(results: Mapping) -> None:
    """Chapter 5: codelength, its model and data parts, beside the paper's two tables."""
    def paper(r):
        a, b = paper_reference("variational", r.dataset, "1"), paper_reference("variational", r.dataset, "2")
        return f"{a['kbits']} / {b['kbits']}" if a and b else ""

    show(results, [("kbits", lambda r: kbits(r.codelength_bits, 2)),
                   ("model part", lambda r: kbits(r.parts["kl_bits"], 2)),
                   ("data part ± s.e.", lambda r: f"{kbits(r.parts['data_bits'], 2)} ± {kbits(r.parts['data_bits_se'], 2)}"),
                   ("test acc.", lambda r: percent(r.test_accuracy)), ("sigma0", lambda r: f"{r.params['sigma0']:g}"),
                   ("paper (Tables 1 / 2)", paper), ("epochs", lambda r: r.params["epochs"], "fold"), n_column(),
                   scale_column()],
         caption="Codelengths in kbits; the model part is the KL plus log2 |grid| bits for the choice of sigma0.")


def variational_grid(results: Mapping) -> None:
    """Chapter 5: the codelength of every prior width of the grid (choice bits included)."""
    rows = [[label(r.dataset), r.model, f"{e['sigma0']:g}", kbits(e["kl_bits"], 2), kbits(e["data_bits"], 2),
             kbits(e["codelength_bits"], 2), "chosen" if e["sigma0"] == r.params["sigma0"] else ""]
            for r in results.values() if r is not None for e in r.curves["grid"]]
    if rows:
        display_markdown(markdown(["dataset", "model", "sigma0", "KL (kbits)", "data (kbits)", "codelength (kbits)",
                                   ""], rows))


def prequential_table(results: Mapping) -> None:
    """Chapter 6: the prequential codes, calibrated (the headline) and not, with the paper's best."""
    show(results, [("kbits", lambda r: kbits(r.parts["bits_calibrated"], 2)),
                   ("uncalibrated", lambda r: kbits(r.parts["bits_uncalibrated"], 2)),
                   ("ratio", lambda r: ratio(r.ratio)), ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("epochs max", lambda r: r.params["epochs"], "fold"),
                   ("min.", lambda r: f"{r.provenance.get('compute_seconds', r.provenance['wall_seconds']) / 60:.1f}"),
                   ("paper's best", lambda r: paper_kbits("prequential", r.dataset)), n_column(), scale_column()],
         caption="Codelengths in kbits, calibrated (the code) and uncalibrated; min.: minutes of computation; the "
                 "paper's best is its VGG-like network on a GPU.")


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


def bytes_table(results: Mapping) -> None:
    """Chapter 9: computed codelength against the file: payload, header, overheads, times."""
    show(results, [("computed (bits)", lambda r: bits(r.parts["computed_codelength_bits"])),
                   ("file (bytes)", lambda r: f"{r.parts['file_bytes']:,.0f}"),
                   ("header (bits)", lambda r: f"{r.parts['header_bits']:,.0f}"),
                   ("payload overhead", lambda r: f"{r.parts['payload_overhead_bits']:+.1f}"),
                   ("encode, decode (s)", lambda r: f"{r.params['encode_seconds']:.1f}, "
                                                    f"{r.params['decode_seconds']:.1f}"),
                   ("round trip", lambda r: "exact" if r.params["round_trip_labels_equal"]
                    and r.params["round_trip_probabilities_equal"] else "FAILED", "fold"),
                   n_column(), scale_column()],
         caption="Overheads in bits over the computed codelength; the file overhead is the header plus the "
                 "payload overhead.")


def fake_labels_table(results: Mapping) -> None:
    """Chapter 8: the variational code per sample on true and on random labels, beside the uniform code."""
    show({k: r for k, r in results.items() if r is None or r.code == "variational"},
         [("bits / sample", lambda r: f"{r.codelength_bits / r.n:.3f}"),
          ("KL part", lambda r: f"{r.parts['kl_bits'] / r.n:.3f}"),
          ("data part", lambda r: f"{r.parts['data_bits'] / r.n:.3f}"),
          ("uniform", lambda r: f"{math.log2(r.K):.3f}", "fold"),
          ("test acc. (true test labels)", lambda r: percent(r.test_accuracy)), n_column(), scale_column()],
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
