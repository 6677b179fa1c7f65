"""The book's figure style and figures."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

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
