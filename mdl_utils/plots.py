"""The book's figures, in one style: fonts legible at page width, legends outside the data.

A figure is WIDTH inches wide at DPI dots per inch, about the width of the book's content column at 1400 px
(784 px), so that its fonts show at about the size of the text around it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np

from . import tables
from .results import CodeResult
from .tables import label

COLORS = {"uniform": "#7f7f7f", "floor": "#2ca02c", "model": "#1f77b4", "data": "#ff7f0e", "paper": "#000000"}
WIDTH = 8.0  # inches: with DPI, a little wider than the content column (784 px at 1400 px)
DPI = 110


def style() -> None:
    """One look for every figure of the book."""
    plt.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 12, "axes.titlesize": 12,
        "axes.labelsize": 12, "legend.fontsize": 11.5, "xtick.labelsize": 11, "ytick.labelsize": 11,
        "legend.frameon": False, "legend.handlelength": 2.2, "lines.markersize": 4,
    })


def _grid(count: int, ncols: int = 2, height: float = 3.4):
    """A figure of ``count`` panels, ``ncols`` a row, in the book's style (unused slots hidden)."""
    style()
    ncols = max(1, min(ncols, count))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, height * nrows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)[:count]


def legend_below(fig, axes, ncol: int = 3) -> None:
    """One legend for the figure, under the axes (never over the data), in at most ``ncol`` columns: fewer when
    the legend would be wider than the figure (a wider one would shrink the whole figure on the page)."""
    handles = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.tight_layout()
    for n in range(min(ncol, len(handles)), 0, -1):
        legend = fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=n,
                            bbox_to_anchor=(0.5, 0.0), frameon=False)
        if n == 1 or legend.get_window_extent(fig.canvas.get_renderer()).width <= fig.bbox.width:
            break
        legend.remove()


def heldout_curves(results: Mapping) -> plt.Figure | None:
    """Chapter 1: bits per test label of a model fit on m samples, one line per dataset, against the uniform code
    (log2 K) and, where known, the true model's floor H(Y|X), in one panel."""
    done = [r for r in tables.done(results) if r.code == "shannon_heldout"]
    if not done:
        return None
    style()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    for r in done:
        c = r.curves
        line, = ax.plot(c["fit_size"], c["bits_per_sample"], "o-", label=f"{label(r.dataset)}: {r.model}")
        if "true_bits_per_sample" in c:
            ax.axhline(c["true_bits_per_sample"], color=line.get_color(), ls=":",
                       label=f"{label(r.dataset)}: true model, H(Y|X)")
    for k in sorted({r.K for r in done}):
        ax.axhline(math.log2(k), color=COLORS["uniform"], ls="--", label=f"uniform code, log2 {k}")
    ax.set(xscale="log", ylim=(0, None), xlabel="samples the model is fit on (m)", ylabel="bits per test label")
    legend_below(fig, [ax], ncol=3)
    return fig


def _bar_rows(results: Mapping, row_inches: float, extra_inches: float):
    """A horizontal-bar figure with one row per computed result: (results, figure, axis, row positions), or None
    when none is computed; ``row_inches`` of height per row plus ``extra_inches``."""
    done = tables.done(results)
    if not done:
        return None
    style()
    fig, ax = plt.subplots(figsize=(WIDTH, row_inches * len(done) + extra_inches))
    return done, fig, ax, np.arange(len(done))


def model_data_bars(results: Mapping) -> plt.Figure | None:
    """Chapter 2: model bits and data bits of each two-part code beside the uniform code (log scale)."""
    found = _bar_rows(results, 0.6, 1.2)
    if found is None:
        return None
    done, fig, ax, y = found
    ax.barh(y - 0.2, [r.parts["model_bits"] / 1000 for r in done], height=0.4, color=COLORS["model"],
            label="model bits (32 per parameter)")
    ax.barh(y + 0.2, [r.parts["data_bits"] / 1000 for r in done], height=0.4, color=COLORS["data"],
            label="data bits (training labels)")
    ax.scatter([r.uniform_bits / 1000 for r in done], y, marker="|", s=400, color=COLORS["uniform"],
               label="uniform code n log2 K", zorder=3)
    ax.set_yticks(y, [f"{label(r.dataset)} / {r.model}" for r in done])
    ax.set(xscale="log", xlabel="kbits (log scale)")
    ax.invert_yaxis()
    legend_below(fig, [ax])
    return fig


def _totals_by(results: Mapping, group: str, x: str, line_label: Callable[[Any], str],
               finish: Callable[[Any, CodeResult, dict], None], ncol: int = 3) -> plt.Figure | None:
    """Chapters 3 and 4: one panel per result, its total codelength (kbits) against the curve ``x``, one line per
    value of the curve ``group``, and the uniform code; ``finish(axis, result, curves)`` sets each panel's axes."""
    done = tables.done(results)
    if not done:
        return None
    fig, axes = _grid(len(done))
    for ax, r in zip(axes, done):
        c = {k: np.asarray(v) for k, v in r.curves.items() if k != "train_loss"}
        for g in sorted(set(c[group].tolist())):
            sel = c[group] == g
            ax.plot(c[x][sel], c["total_bits"][sel] / 1000, "o-", ms=3, label=line_label(g))
        ax.axhline(r.uniform_bits / 1000, color=COLORS["uniform"], ls="--", label="uniform code")
        ax.set(ylabel="total codelength (kbits)", title=f"{label(r.dataset)} / {r.model}")
        finish(ax, r, c)
    legend_below(fig, axes, ncol=ncol)
    return fig


def compression_tradeoff(results: Mapping) -> plt.Figure | None:
    """Chapter 3: total codelength of every (sparsity, bits) pair against sparsity, one line per bit width."""
    return _totals_by(results, "bits", "sparsity", lambda b: f"{b} bits per shared weight",
                      lambda ax, r, c: ax.set(yscale="log", xlabel="sparsity (fraction of weights pruned)"))


def subspace_totals(results: Mapping) -> plt.Figure | None:
    """Chapter 4: total codelength against the subspace dimension d, one line per precision p (the y range from
    80% of the best total to 2.5x the uniform code)."""
    def finish(ax, r, c):
        low = 0.8 * c["total_bits"].min() / 1000
        ax.set(xscale="log", yscale="log", ylim=(low, max(2.5 * r.uniform_bits / 1000, 1.5 * low)),
               xlabel="subspace dimension d")

    return _totals_by(results, "p", "d", lambda p: f"p = {p} bits", finish, ncol=4)


def variational_curves(results: Mapping) -> plt.Figure | None:
    """Chapter 5: KL (model bits), data bits and their sum during training, against the uniform code."""
    done = tables.done(results)
    if not done:
        return None
    fig, axes = _grid(len(done))
    for ax, r in zip(axes, done):
        st = r.curves["steps"]
        for key, color, name in (("total_bits", "k", "total"), ("kl_bits", "C3", "KL (model part)"),
                                 ("data_bits", "C0", "data part")):
            ax.plot(st["epoch"], [b / 1000 for b in st[key]], color=color, label=name)
        ax.axhline(r.uniform_bits / 1000, color=COLORS["uniform"], ls="--", label="uniform code")
        ax.set(yscale="log", xlabel="epoch", ylabel="kbits",
               title=f"{label(r.dataset)} / {r.model} (sigma0 = {r.params['sigma0']:g})")
    legend_below(fig, axes, ncol=4)
    return fig


def prequential_panels(results: Sequence[CodeResult], title: str = "") -> plt.Figure:
    """Figure 2 of the paper: per-block bits per sample, test accuracy, cumulative excess over uniform and
    cumulative ratio, one line per run, against the samples already transmitted; one colour per architecture,
    solid for cold recipes (Algorithm 2), dashed for warm ones (ours)."""
    fig, axes = _learning_panels()
    ax_bits, ax_diff, ax_acc, ax_ratio = axes
    colors: dict[str, str] = {}
    for r in results:
        c, arch = r.curves, r.params.get("model", r.model)
        kw = dict(marker="o", ms=3, ls="--" if r.params.get("warm_start") else "-", color=colors.get(arch))
        line, = ax_bits.plot(c["t_start"], c["bits_per_sample"], label=r.model, **kw)
        kw["color"] = colors.setdefault(arch, line.get_color())
        if _measured(c.get("test_accuracy")):
            ax_acc.plot(c["t_start"], c["test_accuracy"], **kw)
        ax_diff.plot(c["cum_t"], [b / 1000 for b in c["cum_minus_uniform"]], **kw)
        ax_ratio.plot(c["cum_t"], c["cum_ratio"], **kw)
    return _finish_learning_panels(fig, results, "bits per sample, next block", "test accuracy",
                                   "samples transmitted so far", title)


def _measured(values) -> bool:
    """Whether a curve has at least one measured value (no test split: test accuracies are absent or None)."""
    return values is not None and any(v is not None for v in values)


def _block_series(r: CodeResult):
    """(t_end, bits, test accuracy) per block of a prequential / switch / self-switch result, first block included."""
    c = r.curves
    if r.code == "prequential":
        t1 = r.params["timesteps"][0]
        return [t1, *c["t_end"]], [r.parts["first_block_bits"], *c["bits"]], [1 / r.K, *c["test_accuracy"]]
    return c["t_end"], c["bits"], c.get("test_accuracy")


def switch_panels(results: Sequence[CodeResult], title: str = "") -> plt.Figure:
    """Figure 3 of the paper: per block, bits per sample and test accuracy; cumulated, the difference to uniform
    and the compression ratio; prequential codes, their self-switch (dashed) and the switch mixture (black)."""
    fig, axes = _learning_panels()
    ax_bits, ax_diff, ax_acc, ax_ratio = axes
    colors: dict[str, str] = {}
    for r in results:
        t_end, bits_, acc = (np.asarray(v, float) if v is not None else None for v in _block_series(r))
        sizes = np.diff(np.concatenate([[0.0], t_end]))
        kw = dict(marker="o", ms=3, lw=1.2, ls="-", label=f"{r.model}, prequential")
        if r.code == "switch":
            kw.update(color="black", lw=2.0, label="switch (mixture)")
        elif r.code == "self_switch":
            kw.update(color=colors.get(r.model), ls="--", label=f"{r.model}, self-switch")
        line, = ax_bits.plot(t_end, bits_ / sizes, **kw)
        colors.setdefault(r.model, line.get_color())
        kw.pop("label")
        kw["color"] = line.get_color()
        cum_uniform = np.cumsum(sizes) * math.log2(r.K)
        ax_diff.plot(t_end, (np.cumsum(bits_) - cum_uniform) / 1000, **kw)
        ax_ratio.plot(t_end, np.cumsum(bits_) / cum_uniform, **kw)
        if acc is not None and np.isfinite(acc).sum() > 1:
            ax_acc.plot(t_end, acc, **kw)
    return _finish_learning_panels(fig, results, "bits per sample of the block", "test accuracy",
                                   "samples transmitted (end of block)", title)


def _learning_panels():
    """The 2 x 2 layout of the paper's Figures 2 and 3: (bits, cumulative excess), (accuracy, ratio)."""
    style()
    fig, axes = plt.subplots(2, 2, figsize=(WIDTH, 6.6))
    return fig, list(axes.flat)


def _finish_learning_panels(fig, results, bits_label: str, acc_label: str, xlabel: str, title: str):
    """Labels, log scales, uniform levels, title and legend of the 2 x 2 learning panels (Figures 2 and 3)."""
    ax_bits, ax_diff, ax_acc, ax_ratio = fig.axes
    accuracy = bool(ax_acc.get_lines())
    if results:
        k = results[0].K
        ax_bits.axhline(math.log2(k), color=COLORS["uniform"], ls=":", label="uniform code")
        for ax, level in ((ax_diff, 0), (ax_ratio, 1), (ax_acc, 1 / k)):
            ax.axhline(level, color=COLORS["uniform"], ls=":")
    ax_bits.set_ylabel(bits_label)
    ax_acc.set_ylabel(acc_label)
    ax_diff.set_ylabel("cumulative minus uniform (kbits)")
    ax_ratio.set_ylabel("cumulative compression ratio")
    if not accuracy:  # a dataset without a test split
        ax_acc.text(0.5, 0.5, "no test split:\nno test accuracy", ha="center", va="center",
                    transform=ax_acc.transAxes, color="0.4")
        ax_acc.set_xticks([])
    for ax in fig.axes:
        if accuracy or ax is not ax_acc:
            ax.set_xscale("log")
    ax_acc.set_xlabel(xlabel)
    ax_ratio.set_xlabel(xlabel)
    if title:
        fig.suptitle(title)
    legend_below(fig, [ax_bits], ncol=3)
    return fig


def fake_labels_figure(true_run: CodeResult | None, random_run: CodeResult | None,
                       memorized: CodeResult | None) -> plt.Figure | None:
    """Figure 1 of the paper: the variational objective and its KL part on true and random labels (left);
    plain training that memorizes random labels (right)."""
    if true_run is None and random_run is None and memorized is None:
        return None
    fig, (ax, ax2) = _grid(2, height=3.6)
    for r, color, name in ((true_run, "C0", "true labels"), (random_run, "C3", "random labels")):
        if r is not None:
            st = r.curves["steps"]
            ax.plot(st["epoch"], [b / r.n for b in st["total_bits"]], color=color, label=f"{name}: objective")
            ax.plot(st["epoch"], [b / r.n for b in st["kl_bits"]], color=color, ls=":", label=f"{name}: KL part")
    k = next(r.K for r in (true_run, random_run, memorized) if r is not None)
    ax.axhline(math.log2(k), color=COLORS["uniform"], ls="--", label=f"uniform: log2 {k}")
    ax.set(yscale="log", xlabel="epoch", ylabel="bits per sample", title="variational training")
    if memorized is not None:
        c = memorized.curves
        ax2.plot(c["epoch"], c["train_accuracy"], color="C3", label="train accuracy, random labels")
        ax2.axhline(1 / memorized.K, color=COLORS["uniform"], ls="--", label="chance")
        ax2.set(ylim=(0, 1.02), xlabel="epoch", ylabel="training accuracy",
                title=f"plain Adam, {memorized.n:,} random labels")
    legend_below(fig, [ax, ax2], ncol=3)
    return fig


def file_overheads(results: Mapping) -> plt.Figure | None:
    """Chapter 9: what the file adds to the computed codelength: the payload's overhead and the header (compact,
    as in the file, and self-describing), on a log scale."""
    found = _bar_rows(results, 0.75, 1.3)
    if found is None:
        return None
    done, fig, ax, y = found
    bars = (("payload overhead", "payload_overhead_bits", COLORS["model"]),
            ("compact header (the file's)", "header_bits", COLORS["data"]),
            ("self-describing header", "self_describing_header_bits", COLORS["uniform"]))
    for i, (name, key, color) in enumerate(bars):
        values = [max(abs(r.parts.get(key, math.nan)), 1.0) for r in done]
        ax.barh(y + 0.27 * (i - 1), values, height=0.27, color=color, label=name)
    ax.set_yticks(y, [f"{label(r.dataset)} {r.model}" for r in done])
    ax.set_xscale("log")
    ax.set_xlabel("bits over the computed codelength (payload: absolute value)")
    ax.invert_yaxis()
    legend_below(fig, [ax], ncol=3)
    return fig


def summary_overview(root=None) -> plt.Figure:
    """The summary's Tables 1 and 2 at a glance: per code (rows) and dataset (panels), our shortest stored
    codelength (blue dot) joined to the paper's (black diamond; a lower bound, weights only: open triangle, "more
    than"), in kbits on a shared log scale, with the uniform code's level; reads whatever the results store holds."""
    best, rows = tables.best_results(root), tables.paper_rows()
    style()
    fig, axes = plt.subplots(1, len(tables.DATASETS), figsize=(WIDTH, 0.42 * len(rows) + 1.4), sharey=True,
                             sharex=True)
    y = np.arange(len(rows))
    for ax, ds in zip(axes, tables.DATASETS):
        for yi, row in zip(y, rows):
            r, refs = best[(row["code"], ds)], tables.paper_values(row["code"], ds)
            if r is not None and refs:
                ax.plot([r.codelength_bits / 1000, refs[0]["kbits"]], [yi, yi], color=COLORS["uniform"], lw=1.2)
            if r is None:
                ax.annotate(tables.NOT_COMPUTED, (0.02, yi), xycoords=("axes fraction", "data"), va="center",
                            color=COLORS["uniform"], fontsize=10)
            else:
                ax.scatter(r.codelength_bits / 1000, yi, s=60, zorder=4, color=COLORS["model"],
                           label="ours: shortest stored code")
            for ref in refs:
                bound = bool(ref["bound"])
                ax.scatter(ref["kbits"], yi, s=70 if bound else 45, zorder=3, marker=">" if bound else "D",
                           facecolors="white" if bound else COLORS["paper"], edgecolors=COLORS["paper"],
                           label="paper: lower bound (weights only)" if bound else "paper: codelength")
        uniform = [r.uniform_bits for (c, d), r in best.items() if d == ds and r is not None]
        if uniform:
            ax.axvline(uniform[0] / 1000, color=COLORS["uniform"], ls="--", label="uniform code n log2 K")
        ax.set(xscale="log", title=label(ds), xlabel="kbits (log scale)")
    axes[0].set_yticks(y, [row["label"] for row in rows])
    axes[0].invert_yaxis()
    legend_below(fig, axes, ncol=2)
    return fig
