"""The tables and sentences of chapters 6 and 7: the prequential code (codelengths, calibration, cold and warm
runs block by block, the recipes' ablation and gains) and the switch codes."""

from __future__ import annotations

import math

import numpy as np
from typing import Any, Mapping, Sequence
from .paper import paper_kbits, paper_reference
from .render import (_seconds, display_markdown, done, label, n_column, numerics_column, say, scale_column, scale_words, show)


from ..formats import bits, kbits, markdown, percent, ratio
from .. import tta
from ..results import CodeResult, load_array


def temperature_bits(r: CodeResult) -> float:
    """The code with the fitted temperature alone (softmax(z / T), no hedge): a part of results of code version 3
    on, the calibrated code itself before (code version 2 calibrated with the temperature alone)."""
    return r.parts.get("bits_temperature", r.parts["bits_calibrated"])


def hedged(r: CodeResult) -> bool:
    """Whether the run's calibrated code is the hedged one (code version 3 on)."""
    return "bits_temperature" in r.parts


def prequential_table(results: Mapping) -> None:
    """Chapter 6: the prequential codes (the headline: calibrated, hedged), with the temperature alone and
    uncalibrated, their recipes (Algorithm 2, cold, or ours), minutes of computation (wall and CPU) and the
    paper's best."""
    def minutes(r, key):
        value = r.provenance.get(key)
        return "" if value is None else f"{value / 60:.1f}"

    show(results, [("kbits", lambda r: kbits(r.parts["bits_calibrated"], 2) + ("" if hedged(r) else "*")),
                   ("temperature alone", lambda r: kbits(temperature_bits(r), 2)),
                   ("uncalibrated", lambda r: kbits(r.parts["bits_uncalibrated"], 2)),
                   ("ratio", lambda r: ratio(r.ratio)), ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("min.", lambda r: minutes(r, "compute_seconds") or minutes(r, "wall_seconds")),
                   ("CPU min.", lambda r: minutes(r, "cpu_seconds")),
                   ("paper's best", lambda r: paper_kbits("prequential", r.dataset)), n_column(), scale_column(),
                   numerics_column()],
         caption="Codelengths in kbits: the code (calibrated, hedged between the temperature and the raw "
                 "prediction), the temperature alone, and uncalibrated (* a run of an earlier code version, "
                 "calibrated with the temperature alone); min.: minutes of computation on a shared 2-core CPU "
                 "with one torch thread (CPU min.: processor time, where recorded); the paper's best is its "
                 "VGG-like network on a GPU. Each run's recipe is listed below the table.")
    recipes = {r.model: prequential_recipe_words(r.params) for r in done(results)}
    if recipes:
        display_markdown("Recipes:\n\n" + "\n".join(f"- `{name}`: {words}" for name, words in recipes.items()))


def calibration_effect(r: CodeResult) -> dict[str, Any]:
    """What forward calibration did to one prequential run (chapter 6, "What calibration does"), from its
    per-block curves: the temperatures fitted, the bits the code saved against the raw predictions
    (uncalibrated minus calibrated), those the temperature alone would have saved, the blocks where the
    temperature alone cost bits, and the most any block of the code cost against the raw predictions."""
    c = r.curves
    sizes = [t1 - t0 for t0, t1 in zip(c["t_start"], c["t_end"])]
    raw = [u * n for u, n in zip(c["bits_per_sample_uncalibrated"], sizes)]
    alone = [t * n for t, n in zip(c.get("bits_per_sample_temperature", c["bits_per_sample"]), sizes)]
    return {"blocks": len(sizes), "t_min": min(c["temperature"]), "t_max": max(c["temperature"]),
            "saved_bits": r.parts["bits_uncalibrated"] - r.parts["bits_calibrated"],
            "temperature_saved_bits": r.parts["bits_uncalibrated"] - temperature_bits(r),
            "blocks_costing": sum(t > u for t, u in zip(alone, raw)),
            "worst_block_bits": max(b - u for b, u in zip(c["bits"], raw))}


def calibration_summary(results: Mapping) -> None:
    """Chapter 6: one row per prequential run: the range of fitted temperatures, the bits the code and the
    temperature alone saved in all, on how many blocks the temperature alone cost bits, and the code's worst
    block against the raw predictions (the per-block tables follow, folded)."""
    def temps(r):
        e = calibration_effect(r)
        return f"{e['t_min']:.2f} to {e['t_max']:.2f}"

    def costing(r):
        e = calibration_effect(r)
        return f"{e['blocks_costing']} of {e['blocks']}"

    def saved(r):
        return f"{calibration_effect(r)['saved_bits']:+,.1f}" + ("" if hedged(r) else "*")

    show(results, [("temperatures T", temps), ("bits saved", saved),
                   ("temperature alone", lambda r: f"{calibration_effect(r)['temperature_saved_bits']:+,.1f}"),
                   ("blocks where T alone cost bits", costing),
                   ("worst block", lambda r: f"{calibration_effect(r)['worst_block_bits']:+,.1f}"), scale_column()],
         caption="Forward calibration per run: the softmax temperatures fitted over the blocks (T > 1 softens, "
                 "T < 1 sharpens); the bits the calibrated code saved against the raw predictions over the whole "
                 "code (negative: cost), and those the temperature alone would have saved; the blocks the "
                 "temperature alone made longer; the most bits any block of the code cost against the raw "
                 "predictions (* a run of an earlier code version, calibrated with the temperature alone).")


def calibration_table(r: CodeResult) -> None:
    """Chapter 6: per block of one prequential run, the fitted temperature, the weight of the calibrated
    prediction at the block's start, and the bits per sample raw, with the temperature alone and of the code."""
    c = r.curves
    alone = c.get("bits_per_sample_temperature", c["bits_per_sample"])
    weights = c.get("calibration_weight", [None] * len(alone))
    rows = [[f"{t0:,}", f"{t1 - t0:,}", f"{temp:.2f}", "" if w is None else f"{w:.3f}", f"{u:.3f}", f"{a:.3f}",
             f"{b:.3f}", f"{(u - b) * (t1 - t0):+,.1f}", e]
            for t0, t1, temp, w, u, a, b, e in zip(c["t_start"], c["t_end"], c["temperature"], weights,
                                                   c["bits_per_sample_uncalibrated"], alone, c["bits_per_sample"],
                                                   c["best_epoch"])]
    saved = r.parts["bits_uncalibrated"] - r.parts["bits_calibrated"]
    display_markdown(markdown(["t_s", "size", "T", "w", "raw", "T alone", "code", "saved", "epoch"], rows,
                              f"**{label(r.dataset)} / {r.model}** ({r.scale} scale): calibration saves "
                              f"{saved:+,.1f} bits in all. Per block: trained on t_s labels, its size, the fitted "
                              "temperature T, the calibrated prediction's weight w at its first label, bits per "
                              "label raw, with T alone and of the code, the bits the code saved against the raw "
                              "predictions, and the best epoch."))


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
    self-switch code's chosen evaluations, in words (:func:`epoch_choice_words`)."""
    sentences = []
    for r in done(results):
        if r.code == "switch":
            starts = [0, *r.params["timesteps"]]
            sentences.append(f"{label(r.dataset)}, best block sequence: " + ", ".join(
                f"{name} from label {starts[i]:,}" for i, name in r.curves["best_sequence"]) + ".")
        else:
            sentences.append(f"{label(r.dataset)} / {r.model}: "
                             + epoch_choice_words(r.curves["chosen_epoch"], r.curves["early_stopping_epoch"]))
    say(*sentences)


def epoch_choice_words(chosen: Sequence[int], kept: Sequence[int]) -> str:
    """A self-switch's choices against early stopping's, block by block, as a sentence: on how many blocks it
    chose the same evaluation, an earlier one or a later one."""
    pairs = [(c, k) for c, k in zip(chosen, kept) if c is not None and k is not None]
    same = sum(c == k for c, k in pairs)
    earlier = sum(c < k for c, k in pairs)
    later = len(pairs) - same - earlier
    parts = [f"an earlier one on {earlier}" if earlier else "", f"a later one on {later}" if later else ""]
    other = " and ".join(p for p in parts if p)
    return (f"self-switch kept early stopping's evaluation on {same} of {len(pairs)} blocks"
            + (f", and chose {other}." if other else "."))


def switch_gain_notes(preq: Mapping | Sequence[CodeResult], switched: Mapping | Sequence[CodeResult]) -> list[str]:
    """Chapter 7: why switching saves as much or as little as it does, per dataset: the switch mixture's saving over
    the best single run, beside the paper's (Table 2's switch against its prequential code), and the most any block
    sequence could save: sum over blocks of (best run's bits - the fewest bits any run or the uniform code spent on
    that block), before the sequence's description cost. Switching needs a block where another model beats the
    best one (the catch-up phenomenon); where there is none, it has nothing to gain."""
    notes = []
    for r in (x for x in done(switched) if x.code == "switch"):
        runs = [p for p in done(preq) if p.dataset == r.dataset and p.code == "prequential" and p.n == r.n]
        if not runs:
            continue
        best = min(runs, key=lambda p: p.codelength_bits)
        edges = [0, *r.params["timesteps"]]
        blocks = np.array([[b[t0:t1].sum() for t0, t1 in zip(edges, edges[1:])]
                           for b in (load_array("prequential", p, "bits") for p in runs)])
        uniform = np.diff(edges) * math.log2(r.K)
        fewest, own = np.minimum(blocks.min(axis=0), uniform), blocks[runs.index(best)]
        most, beaten = (own - fewest).sum(), int((fewest < own).sum())
        saving = 1 - r.codelength_bits / best.codelength_bits
        refs = [paper_reference(code, r.dataset, "2") for code in ("switch", "prequential")]
        paper = (f"; the paper's switch saved {1 - refs[0]['kbits'] / refs[1]['kbits']:.0%} over its prequential "
                 "code" if all(refs) else "")  # none for the user's own datasets
        notes.append(f"{label(r.dataset)}: the switch mixture is {saving:.1%} shorter than the best single run "
                     f"({best.model}, {kbits(best.codelength_bits, 2)} kbits){paper}. Another of our {len(runs)} "
                     "runs, or the uniform code, beats "
                     f"{best.model} on {beaten} of its {len(own)} blocks, by {most:,.0f} bits in all "
                     f"({most / best.codelength_bits:.1%}): the most a block sequence could save, before paying for "
                     "its description.")
    return notes


def prequential_recipe_words(p: Mapping[str, Any]) -> str:
    """A prequential run's recipe (its params) in words: its architecture, then :func:`recipe_cells` (start, budget
    and schedule, stopping rule and kept weights), its augmentation and its test-time views."""
    augment = (f"shifts <= {p.get('augment_shift', 4)} px" + (" and flips" if p.get("augment_flip", True) else "")
               if p.get("augment") else "")
    views = "" if predicts_plainly(p) else f"predicts from {prediction_words(p)}"
    return f"{p['model']}: " + "; ".join(filter(None, [*recipe_cells(p), augment, views]))


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


UNCODED = ("record_epochs",)  # params that do not change a run's bits
# how a block is predicted from the chain's training, and the plain way
PREDICTION = {"tta": "none", "members": 1, "ema": 0.0}


def predicts_plainly(p: Mapping[str, Any]) -> bool:
    """Whether a run predicts each block from its one chain's network (its own weights) and the image alone."""
    return all(p.get(k, plain) == plain for k, plain in PREDICTION.items())


def prediction_words(p: Mapping[str, Any]) -> str:
    """How a run predicts each block, in words: "2 chains side by side, each from the image and its mirror image"."""
    members, views, ema = p.get("members", 1), p.get("tta", "none"), p.get("ema", 0.0)
    return ", each from ".join(filter(None, [
        f"{members} chains side by side" if members > 1 else "",
        f"the average of its weights over the block's training steps (EMA, decay {ema:g})" if ema else "",
        tta.WORDS[views] if views != "none" else ""]))


def _reference(r: CodeResult, found: Sequence[CodeResult]) -> tuple[CodeResult | None, str]:
    """The run the ablation table measures ``r`` against: for a run that averages predictions (test-time views,
    several members) or weights (EMA), the same recipe predicting plainly; else
    :func:`_cold_reference`."""
    def training(x: CodeResult) -> dict:
        return {k: v for k, v in x.params.items() if k not in (*PREDICTION, *UNCODED)}

    if not predicts_plainly(r.params):
        twin = next((x for x in found if x.dataset == r.dataset and predicts_plainly(x.params)
                     and training(x) == training(r)), None)
        return (twin, "the same chain, predicting plainly") if twin is not None else (None, "")
    return _cold_reference(r, found)


def recipe_cells(p: Mapping[str, Any]) -> list[str]:
    """A recipe's ingredients (its params) as short cells, the one rendering of a recipe: start (cold, or warm with
    replay and perhaps Adam's state), budget (epochs per block, steps) and learning-rate schedule, stopping rule
    and kept weights."""
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
        ref, _ = _reference(r, found)
        return "" if ref is None else f(ref)

    columns = [(name, lambda r, i=i: recipe_cells(r.params)[i])
               for i, name in enumerate(("start", "budget, lr", "stop, keep"))]
    if not all(predicts_plainly(r.params) for r in found):
        columns.append(("predicts from", lambda r: prediction_words(r.params)))
    show(results, [*columns, ("kbits", lambda r: kbits(r.codelength_bits, 2)),
                   ("min.", lambda r: f"{_seconds(r) / 60:.1f}"),
                   ("against", lambda r: versus(r, lambda ref: ref.model)),
                   ("bits saved", lambda r: versus(r, lambda ref: bits(ref.codelength_bits - r.codelength_bits, 0))),
                   ("time", lambda r: versus(r, lambda ref: f"{_seconds(r) / _seconds(ref):.2f}x")),
                   n_column(), scale_column(), numerics_column()], keys=[("run", lambda k: k[1])],
         caption=f"**{label(found[0].dataset)}**: ablation of the recipes (one torch thread, 2-core CPU). Budget in "
                 "epochs per block (ep.) and optimizer steps, and the learning-rate schedule; stop, keep: early "
                 "stopping (patience) or none, and whether the best evaluated or the last weights are kept. Bits "
                 "saved and time ratio against the run in the column 'against': for a run that averages its "
                 "predictions (over shifted or mirrored images, mdl_utils.tta, or over chains trained side by "
                 "side) or its weights (EMA), the same chain predicting plainly; else Algorithm 2 (the paper's "
                 "recipe, run under the architecture's own name), else the same recipe started cold. Minutes are "
                 "wall times of runs made on different days, some beside other runs on the second core: the time "
                 "ratios mix a recipe's cost with the machine's load (benchmarks/ measure costs alone).")


def prediction_gains(results: Mapping) -> list[str]:
    """Chapter 6: each stored run that averages predictions (test-time views, an ensemble) or weights (EMA) against
    the same chain predicting plainly (:func:`_reference`), as sentences: how it predicts, bits saved, time ratio."""
    found = [r for r in results.values() if r is not None and r.code == "prequential"]
    sentences = []
    for r in found:
        ref, _ = _reference(r, found)
        if ref is None or predicts_plainly(r.params):
            continue
        saved = ref.codelength_bits - r.codelength_bits
        sentences.append(
            f"{label(r.dataset)}: `{r.model}` predicts each block from {prediction_words(r.params)} and codes the "
            f"labels in {kbits(r.codelength_bits, 2)} kbits instead of {kbits(ref.codelength_bits, 2)} "
            f"(`{ref.model}`, one chain, its own weights and the image alone): {bits(abs(saved), 0)} bits "
            f"({abs(saved) / ref.codelength_bits:.1%}) {'fewer' if saved >= 0 else 'more'}, in "
            f"{_seconds(r) / _seconds(ref):.2f}x the time.")
    return sentences


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
