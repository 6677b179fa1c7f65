"""The tables and sentences of the chapters whose codes send or bound a model: the uniform and Shannon codes
(chapter 1), two-part codes (2), network compression (3), intrinsic dimension (4), the variational code (5) and
random labels (8)."""

from __future__ import annotations

import math
from typing import Mapping, Sequence
from .paper import paper_kbits, paper_reference
from .render import (Column, _fold, _of, best_per, display_markdown, done, label, n_column, numerics_column, say_each, scale_column, show, where, with_notes)


from ..formats import bits, kbits, markdown, percent, ratio
from ..results import CodeResult


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


# The paper's Table 1 rows of chapters 2 to 4 are bounds for other networks than ours (Han et al.; Li et al.).
OTHER_NETWORK = (" The paper's column is its lower bound for another published network and training (the weights "
                 "alone, no data term): not a bound on the network of our row, which is why ours can be below it.")


def two_part_table(results: Mapping) -> None:
    """Chapter 2: model bits, data bits and total of each float32 two-part code; the paper's weights-only bound."""
    show(results, [("model (kbits)", lambda r: kbits(r.parts["model_bits"])),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   ("paper (weights only)", lambda r: paper_kbits("two_part", r.dataset)), n_column(), scale_column(), numerics_column()],
         caption="Float32 two-part codes in kbits: the model (32 bits per parameter), the data (the training labels "
                 "under the decoded model) and their total." + OTHER_NETWORK)


def _best_configuration_table(results: Mapping, choice: Column, model_key: str, model_name: str, code: str,
                              paper_name: str, caption: str) -> None:
    """Chapters 3 and 4: a two-part code's best configuration (``choice``), its model bits
    (``parts[model_key]``), data bits, total, ratio and test accuracy, beside the paper's bound for ``code``."""
    show(results, [choice, (model_name, lambda r: kbits(r.parts[model_key], 2)),
                   ("data (kbits)", lambda r: kbits(r.parts["data_bits"], 2)),
                   ("total (kbits)", lambda r: kbits(r.codelength_bits, 2)), ("ratio", lambda r: ratio(r.ratio)),
                   ("test acc.", lambda r: percent(r.test_accuracy)),
                   (paper_name, lambda r: paper_kbits(code, r.dataset)), n_column(), scale_column(), numerics_column()],
         caption=caption + OTHER_NETWORK)


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
    from ..codes.fake_labels import counting_table

    rows = [[f"{r['c']:g}", bits(r["bound_bits"]), f"{r['ratio']:.6f}", f"{r['probability']:.3g}"]
            for r in counting_table(n, K, cs)]
    display_markdown(markdown(["c (bits)", "bound n log2 K - c (bits)", "bound / uniform",
                               "P(a given code beats it) <= 2^-c"], rows,
                              f"n = {n:,}, K = {K}: n log2 K = {n * math.log2(K):,.1f} bits."))


def bound_check(results: Mapping, c: float = 20) -> None:
    """Chapter 8: every code run on random labels, against the counting bound n log2 K - c."""
    from ..codes.fake_labels import counting_bound_bits, stays_above

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
        f"{percent(r.test_accuracy)}; model part {r.parts['kl_bits']:,.0f} bits (KL "
        f"{r.parts['kl_divergence_bits']:,.0f} bits + {r.parts['prior_choice_bits']:.2f} bits for sigma0 = "
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
