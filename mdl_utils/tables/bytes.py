"""The tables and sentences of chapter 9: the codes as files against their computed codelengths and the
chapters' stored results."""

from __future__ import annotations

import math
from typing import Mapping
from .render import (_seconds, done, label, n_column, numerics_column, numerics_words, say, scale_column, show)


from ..formats import bits
from ..results import CodeResult


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
    from .. import results

    code, nets = r.params["code"], (r.params.get("network") or "").split("-")
    chapter = "two_part" if code == "two_part" else "prequential"
    try:
        runs = [results.load(chapter, r.dataset, m, r.scale, seed=r.seed) for m in nets if m and code != "uniform"]
    except results.MissingResultError:
        return ""
    return f"{sum(_seconds(x) for x in runs):,.0f}" if runs else ""


def bytes_against_chapters(results: Mapping, seed: int = 0) -> None:
    """Chapter 9: each file's computed codelength against the stored result of the code's own chapter (same
    settings and seed), and whether the payload, per-block checks apart, stays within 0.1% + 32 bits of it."""
    from .. import chapters
    from ..codes import bytes as bytes_code

    sentences = []
    for r in done(results):
        counterpart = bytes_code.chapter_counterpart(r)
        chapter = counterpart and chapters.get(counterpart[0], r.dataset, counterpart[1], r.scale, seed=seed)
        if chapter:
            computed, payload = r.parts["computed_codelength_bits"], r.parts["payload_bits"]
            same = _same_numerics(r, chapter)
            reference = chapter.codelength_bits if same else computed  # another machine's run trained other models
            ok = payload - r.parts.get("check_bits", 0) <= 1.001 * reference + 32
            agreement = (_agreement(computed, chapter.codelength_bits) if same else
                         f"{abs(computed - chapter.codelength_bits):,.1f} bits apart: this file's models were trained "
                         f"with {numerics_words(r)}, the chapter's with {numerics_words(chapter)}")
            sentences.append(
                f"{label(r.dataset)} / {r.model}: computed {computed:,.1f} bits, the {counterpart[0]} chapter stored "
                f"{chapter.codelength_bits:,.1f} ({agreement}); the payload, {payload:,.0f} bits with "
                f"{r.parts.get('check_bits', 0):,.0f} bits of per-block checks, is {'within' if ok else 'NOT within'} "
                f"0.1% + 32 bits of {'it' if same else 'the computed codelength'} besides the checks.")
    say(*sentences)


def _same_numerics(a: CodeResult, b: CodeResult) -> bool:
    """Whether two results' bits can be compared: the same numerics (portable of one CPU vendor, or one native CPU or
    GPU kind) and the same code version."""
    return all(a.provenance.get(k) == b.provenance.get(k) for k in ("numerics", "code_version"))


def _agreement(computed: float, stored: float) -> str:
    """How two codelengths of the same code agree, in words: the same number, or how many bits apart."""
    gap = computed - stored
    return "the same number" if gap == 0 else f"{abs(gap):.2g} bits apart: floating-point summation order"
