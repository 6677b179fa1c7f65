"""The book's figure style and figures."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np

from .tables import DATASET_LABELS

COLORS = {"uniform": "#7f7f7f", "floor": "#2ca02c", "model": "#1f77b4"}


def style() -> None:
    """One look for every figure of the book."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 110, "axes.grid": True, "grid.alpha": 0.3,
        "axes.spines.top": False, "axes.spines.right": False, "font.size": 10,
        "legend.frameon": False,
    })


def heldout_curves(results: dict, scale_note: bool = True):
    """Bits per test label of a model fit on m samples, against uniform (and the true-model floor).

    ``results`` maps a dataset name to its ``shannon`` CodeResult (None entries are skipped).
    """
    style()
    items = [(ds, r) for ds, r in results.items() if r is not None]
    fig, axes = plt.subplots(1, max(1, len(items)), figsize=(4.2 * max(1, len(items)), 3.4), squeeze=False)
    for ax, (ds, r) in zip(axes[0], items):
        c = r.curves
        ax.plot(c["fit_size"], c["bits_per_sample"], "o-", color=COLORS["model"], label=f"{r.model} (Shannon code)")
        ax.axhline(math.log2(r.K), color=COLORS["uniform"], ls="--", label=f"uniform: log2 {r.K}")
        if "true_bits_per_sample" in c:
            ax.axhline(c["true_bits_per_sample"], color=COLORS["floor"], ls=":", label="true model: H(Y|X)")
        ax.set_xscale("log")
        ax.set_ylim(0, max(max(c["bits_per_sample"]), math.log2(r.K)) * 1.05)
        ax.set_xlabel("training samples the model is fit on")
        ax.set_ylabel("bits per test label")
        title = DATASET_LABELS.get(ds, ds)
        ax.set_title(f"{title} ({r.scale} scale)" if scale_note else title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def prequential_panels(results: list, title: str = ""):
    """Figure 2 of the paper: per-block bits per sample, test accuracy, cumulative excess over
    uniform and cumulative ratio, one line per model, against the samples already transmitted."""
    fig, ((ax_bits, ax_diff), (ax_acc, ax_ratio)) = _learning_panels()
    for r in results:
        c, label = r.curves, f"{r.model} ({r.scale})"
        line, = ax_bits.plot(c["t_start"], c["bits_per_sample"], "o-", ms=3, label=label)
        ax_acc.plot(c["t_start"], c["test_accuracy"], "o-", ms=3, color=line.get_color())
        ax_diff.plot(c["cum_t"], [b / 1000 for b in c["cum_minus_uniform"]], "o-", ms=3, color=line.get_color())
        ax_ratio.plot(c["cum_t"], c["cum_ratio"], "o-", ms=3, color=line.get_color())
    return _finish_learning_panels(fig, results, "bits per sample on the next block",
                                   "test accuracy of the block's model", "samples transmitted so far", title)


def _block_series(r):
    """(t_end, bits, test accuracy) per block of a prequential / switch / self-switch result, first block included."""
    c = r.curves
    if r.code == "prequential":
        t1 = r.params["timesteps"][0]
        return [t1, *c["t_end"]], [r.parts["first_block_bits"], *c["bits"]], [1 / r.K, *c["test_accuracy"]]
    return c["t_end"], c["bits"], c.get("test_accuracy")


def switch_panels(results: list, title: str = ""):
    """Figure 3 of the paper: per block, test accuracy and bits per sample; cumulated, the difference
    to uniform and the compression ratio; for prequential models, their self-switch and the switch code."""
    fig, ((ax_bits, ax_diff), (ax_acc, ax_ratio)) = _learning_panels()
    colors = {}
    for r in results:
        t_end, bits, acc = _block_series(r)
        t_end, bits = np.asarray(t_end, float), np.asarray(bits, float)
        sizes = np.diff(np.concatenate([[0.0], t_end]))
        base = r.model.split("-")[0] if r.code == "switch" else r.model
        kw = dict(marker="o", ms=3, lw=1.2, ls="-")
        if r.code == "switch":
            kw.update(color="black", lw=2.0, label="switch (mixture)")
        elif r.code == "self_switch":
            kw.update(color=colors.get(base), ls="--", label=f"{r.model}, self-switch")
        else:
            kw.update(label=f"{r.model}, prequential")
        line, = ax_bits.plot(t_end, bits / sizes, **kw)
        colors.setdefault(base, line.get_color())
        kw.pop("label", None)
        kw["color"] = line.get_color()
        cum_uniform = np.cumsum(sizes) * math.log2(r.K)
        ax_diff.plot(t_end, (np.cumsum(bits) - cum_uniform) / 1000, **kw)
        ax_ratio.plot(t_end, np.cumsum(bits) / cum_uniform, **kw)
        if acc is not None:
            ax_acc.plot(t_end, acc, **kw)
    return _finish_learning_panels(fig, results, "bits per sample of the block", "test accuracy (model of the block)",
                                   "samples transmitted (end of block)", title)


def _learning_panels():
    """The 2 x 2 layout of the paper's Figures 2 and 3: (bits, cumulative excess), (accuracy, ratio)."""
    style()
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    return fig, axes


def _finish_learning_panels(fig, results: list, bits_label: str, acc_label: str, xlabel: str, title: str):
    ax_bits, ax_diff, ax_acc, ax_ratio = fig.axes  # row-major: (bits, excess), (accuracy, ratio)
    if results:
        k = results[0].K
        ax_bits.axhline(math.log2(k), color=COLORS["uniform"], ls=":", label="uniform")
        ax_diff.axhline(0, color=COLORS["uniform"], ls=":")
        ax_ratio.axhline(1, color=COLORS["uniform"], ls=":")
        ax_acc.axhline(1 / k, color=COLORS["uniform"], ls=":")
    ax_bits.set_ylabel(bits_label)
    ax_acc.set_ylabel(acc_label)
    ax_diff.set_ylabel("cumulative codelength - uniform (kbits)")
    ax_ratio.set_ylabel("cumulative compression ratio")
    for ax in fig.axes:
        ax.set_xscale("log")
    ax_acc.set_xlabel(xlabel)
    ax_ratio.set_xlabel(xlabel)
    ax_bits.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
