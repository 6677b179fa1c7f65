"""Named scales of every chapter: ``smoke`` (seconds; tests and CI), ``cpu``
(a reduced reproduction a 2-core CPU finishes in well under an hour) and
``paper`` (the paper's models and schedules; meant for a GPU).

A result records its scale and the book prints it beside the number.
"""

from __future__ import annotations

import copy

SCALES = ("smoke", "cpu", "paper")

# Per chapter, per scale: the settings that change the numbers.
SETTINGS: dict[str, dict[str, dict]] = {
    "uniform": {
        # n_train/n_test: samples loaded (None = the whole split); fit_sizes: prefixes of
        # the training order the logistic model is fit on (None = all n_train).
        "smoke": dict(n_train=2000, n_test=1000, fit_sizes=[50, 200, 2000], max_iter=30, weight_decay=1e-3),
        "cpu": dict(n_train=None, n_test=None, fit_sizes=[10, 30, 100, 300, 1000, 3000, 10000, None],
                    max_iter=100, weight_decay=1e-3),
        "paper": dict(n_train=None, n_test=None, fit_sizes=[10, 30, 100, 300, 1000, 3000, 10000, None],
                      max_iter=300, weight_decay=1e-3),
    },
    "prequential": {
        # models per dataset; epochs = max epochs per block, early stopping with `patience`
        # on the last val_fraction of the transmitted labels.
        "smoke": dict(n_train=600, n_test=200, epochs=3, patience=2,
                      models={"mnist": ["mlp"], "cifar10": ["mlp"], "synthetic": ["mlp"]}),
        "cpu": dict(n_train=None, n_test=None, epochs=20, patience=3,
                    models={"mnist": ["mlp", "small_cnn"], "cifar10": ["mlp", "shallow", "tinycnn"],
                            "synthetic": ["logistic", "mlp"]}),
        "paper": dict(n_train=None, n_test=None, epochs=50, patience=5,
                      models={"mnist": ["mlp", "vgg_mnist"],
                              "cifar10": ["mlp", "shallow", "tinycnn", "vgg_cifar", "vgg_cifar_bn"],
                              "synthetic": ["logistic", "mlp"]}),
    },
    # Chapters add their settings above this line, one key per chapter (its notebook's name without NN_).
}


def check_scale(scale: str) -> str:
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return scale


def settings(chapter: str, scale: str) -> dict:
    """A fresh copy of the settings of ``chapter`` at ``scale``."""
    check_scale(scale)
    if chapter not in SETTINGS:
        raise ValueError(f"no scale settings for chapter {chapter!r}; known chapters: {', '.join(SETTINGS)}")
    return copy.deepcopy(SETTINGS[chapter][scale])
