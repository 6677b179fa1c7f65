"""The book's verdict: one row per claim of the paper, the paper's numbers, ours (the shortest stored result of each
code, :func:`mdl_utils.tables.paper.best_results`), whether the claim held here, and why, in one sentence whose
numbers come from the stored results. Nothing here is typed in but the paper's reference values (paper_tables.json)
and the claims' wording."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..formats import markdown
from ..results import CodeResult
from ..codes.files import switch_models
from .paper import best_result, best_results, paper_reference
from .prequential import predicts_plainly
from .render import DATASETS, _everything, display_markdown, label

__all__ = ["verdict_rows", "verdict_table", "VERDICTS"]

VERDICTS = ("reproduced", "not reproduced", "shorter than the paper's", "longer than the paper's",
            "not comparable", "not computed yet")
Best = dict  # (code, dataset) -> CodeResult | None


def _kbits(v: float) -> str:
    """kbits with the paper's precision: 4.10, 45.3, 1,424."""
    if v >= 1000 or (v >= 100 and float(v).is_integer()):
        return f"{v:,.0f}"
    return f"{v:,.2f}" if v < 10 else f"{v:,.1f}"


def _kb(r: CodeResult) -> str:
    return _kbits(r.codelength_bits / 1000)


def _paper(code: str, table: str = "1") -> str:
    cells = [(label(d), paper_reference(code, d, table)) for d in DATASETS]
    return "; ".join(f"{d} {c.get('bound', '')}{' ' if c.get('bound') else ''}{_kbits(c['kbits'])}"
                     for d, c in cells if c)


def _ours(best: Best, code: str) -> str:
    return "; ".join(f"{label(d)} {_kb(best[(code, d)])}" for d in DATASETS if best.get((code, d)))


def _all(best: Best, *codes: str) -> bool:
    return all(best.get((c, d)) for c in codes for d in DATASETS)


def _two_part(best: Best) -> tuple[str, str]:
    rows = [(best[("two_part", d)], best[("uniform", d)]) for d in DATASETS]
    held = all(r.codelength_bits > u.codelength_bits for r, u in rows)
    r = min((r for r, _ in rows), key=lambda r: r.parts["model_bits"])
    return ("reproduced" if held else "not reproduced",
            f"the weights alone of our smallest network ({r.model}, {r.params.get('num_parameters', 0):,} float32 "
            f"parameters) cost {r.parts['model_bits'] / 1000:,.0f} kbits, more than the whole uniform code")


def _compression(best: Best) -> tuple[str, str]:
    shorter = [label(d) for d in DATASETS if best[("network_compression", d)].codelength_bits
               < best[("uniform", d)].codelength_bits]
    r = best[("network_compression", "mnist")]
    return ("not comparable", f"the paper's numbers are weights-only bounds for large published networks; ours are "
            f"full codes of a {r.params.get('num_parameters', 0):,}-parameter LeNet, shorter than uniform on "
            f"{' and '.join(shorter) or 'neither dataset'}: another network, not a contradiction")


def _intrinsic(best: Best) -> tuple[str, str]:
    held = all(best[("intrinsic_dimension", d)].codelength_bits < best[("uniform", d)].codelength_bits
               for d in DATASETS)
    return ("reproduced" if held else "not reproduced",
            "a network trained in a small random subspace, sent with its few coordinates, codes the labels in "
            "fewer bits than uniform; the paper's values are lower bounds, ours full codes")


def _variational(best: Best) -> tuple[str, str]:
    times = {d: best[("variational", d)].codelength_bits / best[("prequential", d)].codelength_bits for d in DATASETS}
    held = all(best[("variational", d)].codelength_bits < best[("uniform", d)].codelength_bits and t > 1.5
               for d, t in times.items())
    paper = {d: paper_reference("variational", d)["kbits"] / paper_reference("prequential", d)["kbits"]
             for d in DATASETS}
    return ("reproduced" if held else "not reproduced",
            "the variational code compresses but is " + " and ".join(
                f"{times[d]:.1f}x the prequential code on {label(d)} (paper: {paper[d]:.1f}x)" for d in DATASETS))


def _prequential_vs_paper(dataset: str) -> Callable[[Best], tuple[str, str]]:
    def judge(best: Best) -> tuple[str, str]:
        r, ref = best[("prequential", dataset)], paper_reference("prequential", dataset)["kbits"] * 1000
        gap = r.codelength_bits / ref - 1
        words = (f"our best run, {r.model} ({r.params.get('num_parameters', 0):,} parameters, at most "
                 f"{r.params.get('epochs')} epochs per block, {r.scale} scale), is {abs(gap):.0%} "
                 f"{'shorter' if gap < 0 else 'longer'} than the paper's best, a larger VGG network on a GPU")
        return ("shorter than the paper's" if gap < 0 else "longer than the paper's", words)
    return judge


def _shortest(best: Best) -> tuple[str, str]:
    table1 = ("uniform", "two_part", "network_compression", "intrinsic_dimension", "variational", "prequential")
    winners = {d: min((best[(c, d)] for c in table1), key=lambda r: r.codelength_bits).code for d in DATASETS}
    held = all(w == "prequential" for w in winners.values())
    return ("reproduced" if held else "not reproduced",
            "of Table 1's codes the prequential code is the shortest on " + " and ".join(
                label(d) for d, w in winners.items() if w == "prequential") if held else
            "shortest: " + ", ".join(f"{w} on {label(d)}" for d, w in winners.items()))


def _switch(best: Best) -> tuple[str, str]:
    gain = {d: 1 - best[("switch", d)].codelength_bits / best[("prequential", d)].codelength_bits for d in DATASETS}
    paper = 1 - paper_reference("switch", "cifar10", "2")["kbits"] / paper_reference("prequential", "cifar10", "2")[
        "kbits"]
    held = gain["cifar10"] >= paper / 2
    return ("reproduced" if held else "not reproduced",
            f"the switch saves {gain['cifar10']:.1%} on CIFAR-10 (paper: {paper:.0%}) and {gain['mnist']:.1%} on "
            "MNIST: our best runs continue one model block after block (warm), so they have no bad start for a "
            "switch to avoid")


PLAIN = "prequential, one network"  # Best key: the shortest prequential run predicting from one network's weights


def _with_plain(best: Best, everything: list[CodeResult]) -> Best:
    """``best`` plus, per dataset, the shortest of the stored results ``everything`` among the prequential runs that
    predict each block from their one network (no test-time views, ensemble or weight average: the runs whose
    chain a self-switch can replay), under the key (:data:`PLAIN`, dataset)."""
    plain = [r for r in everything if r.code == "prequential" and predicts_plainly(r.params)]
    return {**best, **{(PLAIN, d): best_result("prequential", d, plain) for d in DATASETS}}


def _self_switch(best: Best) -> tuple[str, str]:
    """The self-switch of our best network (the shortest prequential run that predicts from one network) against
    the shortest switch code, on each dataset where that network's self-switch is stored; the paper's gap beside."""
    def paper_gap(d: str) -> float:
        return 1000 * (paper_reference("self_switch", d, "2")["kbits"] - paper_reference("switch", d, "2")["kbits"])

    gaps = {d: best[("self_switch", d)].codelength_bits - best[("switch", d)].codelength_bits for d in DATASETS
            if best.get((PLAIN, d)) and best[("self_switch", d)].model == best[(PLAIN, d)].model}
    if not gaps:
        on = [(label(d), best[("self_switch", d)].model, (best.get((PLAIN, d)) or best[("prequential", d)]).model)
              for d in DATASETS]
        return ("not comparable", "self-switch was computed on " + " and ".join(f"{s} ({d})" for d, s, _ in on)
                + " only (its runs record every epoch's predictions), not on our best networks "
                + " and ".join(f"{p} ({d})" for d, _, p in on) + ", so it is not comparable with the switch")
    held = all(gap <= 600 for gap in gaps.values())
    return ("reproduced" if held else "not reproduced", "; ".join(
        f"on {label(d)} the self-switch of our best network ({best[(PLAIN, d)].model}) is {abs(gap):,.0f} bits "
        f"{'longer' if gap >= 0 else 'shorter'} than the switch over {_runs(best[('switch', d)])} (paper: "
        f"{paper_gap(d):,.0f})" for d, gap in gaps.items()))


def _runs(switch: CodeResult) -> str:
    """The runs a switch mixes, in words: "`mlp`, `cnn4_warm` and the uniform code"."""
    return ", ".join(f"`{m}`" for m in switch_models(switch.model)) + " and the uniform code"


def _random_labels(_: Best, root: Path | None = None) -> tuple[str, str] | None:
    runs = [r for r in _everything(root) if r.dataset.endswith("_random") and r.uniform_bits]
    if not runs:
        return None
    held = all(r.codelength_bits >= r.uniform_bits for r in runs)
    worst = min(runs, key=lambda r: r.codelength_bits / r.uniform_bits)
    return ("reproduced" if held else "not reproduced",
            f"every code of random labels stored ({len(runs)}) is longer than uniform; the closest, "
            f"{worst.code} with {worst.model}, is {worst.codelength_bits / worst.uniform_bits:.3f}x uniform")


# (claim, the paper's numbers, the codes it needs, our numbers, the judge)
CLAIMS = (
    ("Float32 two-part codes are longer than the uniform code", lambda: _paper("two_part"), ("two_part", "uniform"),
     lambda b: _ours(b, "two_part"), _two_part),
    ("Network compression does not make a two-part code shorter than uniform", lambda: _paper("network_compression"),
     ("network_compression", "uniform"), lambda b: _ours(b, "network_compression"), _compression),
    ("Intrinsic-dimension codes compress the labels", lambda: _paper("intrinsic_dimension"),
     ("intrinsic_dimension", "uniform"), lambda b: _ours(b, "intrinsic_dimension"), _intrinsic),
    ("Variational codes compress, but far less than prequential codes", lambda: _paper("variational"),
     ("variational", "prequential", "uniform"), lambda b: _ours(b, "variational"), _variational),
    ("Prequential codes are the shortest of Table 1", lambda: _paper("prequential"),
     ("uniform", "two_part", "network_compression", "intrinsic_dimension", "variational", "prequential"),
     lambda b: _ours(b, "prequential"), _shortest),
    ("Prequential code, MNIST", lambda: _kbits(paper_reference("prequential", "mnist")["kbits"]), ("prequential",),
     lambda b: _kb(b[("prequential", "mnist")]), _prequential_vs_paper("mnist")),
    ("Prequential code, CIFAR-10", lambda: _kbits(paper_reference("prequential", "cifar10")["kbits"]),
     ("prequential",), lambda b: _kb(b[("prequential", "cifar10")]), _prequential_vs_paper("cifar10")),
    ("Switching between models shortens the prequential code (Table 2)", lambda: _paper("switch", "2"),
     ("switch", "prequential"), lambda b: _ours(b, "switch"), _switch),
    ("Self-switch comes within about 300 bits of the switch", lambda: _paper("self_switch", "2"),
     ("self_switch", "switch", "prequential"), lambda b: _ours(b, "self_switch"), _self_switch),
)


def verdict_rows(root: Path | None = None) -> list[dict]:
    """One dict per claim: claim, paper, ours, verdict (one of :data:`VERDICTS`) and why; a claim whose results
    are not all stored yet says "not computed yet"."""
    everything = _everything(root)
    best = _with_plain(best_results(root, everything), everything)
    rows = []
    for claim, paper, needs, ours, judge in CLAIMS:
        done = _all(best, *needs)
        verdict, why = judge(best) if done else ("not computed yet", "run the chapters that store it")
        rows.append({"claim": claim, "paper": paper(), "ours": ours(best) if done else "", "verdict": verdict,
                     "why": why})
    random_labels = _random_labels(best, root)
    rows.append({"claim": "Random labels cannot be compressed (Sec. 2.4, Figure 1)", "paper": "uniform or longer",
                 "ours": "", "verdict": random_labels[0] if random_labels else "not computed yet",
                 "why": random_labels[1] if random_labels else "run the random-labels chapter"})
    return rows


def verdict_table(root: Path | None = None) -> str:
    """The verdict, rendered: claim, paper (kbits), ours (kbits), verdict, why."""
    rows = [[r["claim"], r["paper"], r["ours"], f"**{r['verdict']}**", r["why"]] for r in verdict_rows(root)]
    text = markdown(["claim of the paper", "paper (kbits)", "ours (kbits)", "verdict", "why"], rows,
                    "What reproduced: each claim of the paper against our shortest stored codes (the summary's "
                    "tables give the runs and scales). Ours are at the reduced cpu scale unless a paper-scale "
                    "run is stored.")
    display_markdown(text)
    return text
