"""Tables 1 and 2 of the paper beside the results store, what our runs trained against the paper scale, and each
chapter's settings at the scale it reads beside the paper scale's."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence
from .render import (BOOK_SCALES, DATASETS, _everything, _fill_missing, _fold, _seconds, codelength_kbits, display_markdown, label, numerics_words, scale_words, with_notes)


from .. import codes
from ..formats import kbits, markdown, percent, ratio
from ..results import CodeResult, tried
from ..scales import SCALE_WORDS


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


def choice_charge(r: CodeResult, everything: Sequence[CodeResult], root: Path | None = None) -> tuple[int, float]:
    """(N, log2 N): the number of configurations of ``r``'s code on its dataset at its scale (runs, recipes and
    seeds alike) that our "shortest" was picked from, and the bits that naming the pick costs: those in the tuning
    log (every result ever stored: results.tuning_log) and those stored. Picking the shortest of N codes after
    seeing the labels is itself a code only if the decoder is told which: log2 N more bits (a uniform choice among
    N). The paper's Tables 1 and 2 select "the model and hyperparameters providing the best compression bound"
    without this charge; its Sec. 3.4 notes that hyperparameters may be sent first at a small cost. Configurations
    tried before the log began (2026-12-07) and never stored are not counted: a lower bound on the charge."""
    stored = {(x.model, x.seed) for x in everything if (x.code, x.dataset, x.scale) == (r.code, r.dataset, r.scale)}
    n = len(stored | tried(r.code, r.dataset, r.scale, root))
    return n, math.log2(max(n, 1))


def choice_rows(root: Path | None = None) -> list[list]:
    """One row per (code, dataset) of the paper's tables with a stored result: our shortest, the number of runs it
    was picked from, the charge log2 N, and the charged codelength (:func:`choice_charge`)."""
    everything, rows = _everything(root), []
    for (code, ds), r in best_results(root, everything).items():
        if r is not None:
            n, charge = choice_charge(r, everything, root)
            rows.append([_label_of(code), label(ds), r.model, kbits(r.codelength_bits, 3), f"{n:,}",
                         f"{charge:.1f}", kbits(r.codelength_bits + charge, 3)])
    return rows


def choice_table(root: Path | None = None) -> None:
    """Summary: the best of each code charged for its choice among the configurations tried
    (:func:`choice_charge`)."""
    display_markdown(markdown(["code", "dataset", "our shortest", "kbits", "configurations tried", "choice (bits)",
                               "charged kbits"], choice_rows(root),
                              "Our shortest stored code of each row of Tables 1 and 2, and what it costs once the "
                              "choice is paid: log2 N bits to tell the decoder which of the N configurations of "
                              "that code, dataset and scale tried on the labels it is (the tuning log, "
                              "results/tuning_log.jsonl, keeps every result ever stored, also those replaced "
                              "since). Tuning never stored, before the log began, is not counted."))


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


def best_results(root: Path | None = None, everything: Sequence[CodeResult] | None = None
                 ) -> dict[tuple[str, str], CodeResult | None]:
    """Our shortest stored codelength of every code of the paper's tables on each dataset (see best_result),
    keyed by (code, dataset): whatever the results store ``root`` holds now (``everything``: its results, when the
    caller has loaded them already)."""
    everything = _everything(root) if everything is None else everything
    return {(row["code"], ds): best_result(row["code"], ds, everything) for row in paper_rows() for ds in DATASETS}


def comparison_rows(table: str, root: Path | None = None) -> tuple[list[str], list[list]]:
    """Header and rows of paper Table ``table`` ("1" or "2") beside our best stored results (a missing one: None
    cells); the scale of each of ours in words."""
    everything = _everything(root)
    best = best_results(root, everything)
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


def source_words(source: str | None) -> str | None:
    """A result's data source without the folder it was read from on the machine that ran it: "MNIST IDX files",
    "image folder (JPEG-re-encoded copy, not the official batches)"."""
    return None if source is None else re.sub(r"\s*(?:under |from |in )?/\S+", "", source).strip()


def gap_notes(root: Path | None = None, plans: Mapping[str, Sequence[Mapping]] | None = None) -> list[str]:
    """Summary: the rest of what differs from the paper, as sentences computed from the store and the settings:
    the data of each dataset, the hardware and time of our runs, the largest gap, and the work the paper scale
    plans against the cpu scale's (``plans``: the job runner's plan rows per scale, jobs.plans)."""
    best = {k: r for k, r in best_results(root).items() if r is not None}
    sources = {label(r.dataset): source_words(r.provenance.get("data_source")) for r in best.values()}
    notes = ["Data: " + "; ".join(f"{ds} from {src}" for ds, src in sources.items() if src) + "."] if sources else []
    if best:
        hours = sum(_seconds(r) for r in best.values()) / 3600
        devices = sorted({re.sub(r"\b1 threads\b", "1 thread", r.provenance.get("device", "?"))  # older results
                          for r in best.values()})
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


def _model_words(r: CodeResult) -> str:
    """What the model part of ``r``'s code sends, from its params (two-part, network compression, intrinsic
    dimension, variational); the prequential code sends no model: its training instead."""
    p = r.params
    if r.code == "two_part":
        return f"the {p['num_sent_floats']:,} weights as float32, {p['bits_per_parameter']} bits each"
    if r.code == "network_compression":
        return (f"the {p['num_parameters']:,} weights pruned to {p['best_sparsity']:.0%} sparsity, the rest "
                f"quantized to {p['best_bits']} bits")
    if r.code == "intrinsic_dimension":
        return (f"{p['best_d']:,} coordinates of a random subspace of the {p['num_parameters']:,} weights, "
                f"{p['best_p']} bits each")
    if r.code == "variational":
        return f"the posterior over the {p['num_weights']:,} weights (its KL divergence from the prior)"
    epochs = f"{p['epochs']} epochs per block" if "epochs" in p else ""
    how = ", ".join(filter(None, [epochs, "warm start" if p.get("warm_start") else "retrained from the seed",
                                  "augmentation" if p.get("augment") else ""]))
    return f"nothing but the training: `{r.model}` ({p.get('num_parameters', 0):,} parameters), {how}"


def _against_paper(r: CodeResult) -> str:
    """Our codelength against the paper's in words: shorter or longer by how much, or beside a lower bound."""
    ref, ours = paper_values(r.code, r.dataset)[0], r.codelength_bits / 1000
    if ref["bound"]:
        return (f"the paper gives only a lower bound, {ref['bound']} {ref['kbits']:,} kbits, for the weights alone of "
                "another published network and training: not a codelength to compare ours with")
    change = ours / ref["kbits"]
    if change < 1:
        return f"that is {1 - change:.0%} shorter than the paper's {ref['kbits']:,} kbits"
    return "that is " + (f"{change - 1:.0%} longer than" if change < 2 else f"{change:.1f} times") + \
        f" the paper's {ref['kbits']:,} kbits"


def gap_sentences(codes_: Sequence[str], root: Path | None = None) -> list[str]:
    """Chapters 2-6: why our shortest code of each dataset differs from the paper's, as sentences computed from the
    stored results (codelength, parts, params, minutes) and the chapter's paper-scale settings."""
    everything, lines = _everything(root), []
    for (code, ds), r in best_results(root).items():
        if r is None or code not in codes_:
            continue
        run, minutes = _run_words(r, everything)
        parts = r.parts
        split = (f" Of its codelength, the model takes {kbits(parts['model_bits'], 1)} kbits and the labels given the model "
                 f"{kbits(parts['data_bits'], 1)} kbits." if "model_bits" in parts and "data_bits" in parts else "")
        where = "a GPU" if str(r.provenance.get("device", "cpu")).startswith("cuda") else "a CPU"
        lines.append(f"**{label(ds)}**: our shortest code is {kbits(r.codelength_bits, 1)} kbits at the {r.scale} "
                     f"scale; {_against_paper(r)}. It sends {_model_words(r)}.{split} Our run ({run}) took "
                     f"{minutes:,.0f} minutes on {where}; at the paper scale the chapter trains "
                     f"{_paper_scale_words(code, ds)}.")
    return lines


def gap_words(codes_: Sequence[str], root: Path | None = None) -> None:
    """Chapters 2-6: :func:`gap_sentences` as paragraphs."""
    lines = gap_sentences(codes_, root)
    if lines:
        display_markdown("\n\n".join(lines))
