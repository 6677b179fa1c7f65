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
        # epochs_by_model: a smaller cap for the models that are slow on a CPU (stated in each result's params).
        "cpu": dict(n_train=None, n_test=None, epochs=20, patience=3, epochs_by_model={"shallow": 5, "tinycnn": 5},
                    models={"mnist": ["mlp", "small_cnn"], "cifar10": ["mlp", "shallow", "tinycnn"],
                            "synthetic": ["logistic", "mlp"]}),
        "paper": dict(n_train=None, n_test=None, epochs=50, patience=5,
                      models={"mnist": ["mlp", "vgg_mnist"],
                              "cifar10": ["mlp", "shallow", "tinycnn", "vgg_cifar", "vgg_cifar_bn"],
                              "synthetic": ["logistic", "mlp"]}),
    },
    "variational": {
        # n_train/n_test: samples loaded (None = the whole split); epochs per dataset (fixed in advance, no early
        # stopping); sigma0_grid: prior widths tried, one training run each, log2(len) bits paid for the choice;
        # eval_samples: draws theta ~ beta for the final codelength (standard error) and the test accuracy.
        # num_threads: torch CPU threads (1 is much faster than 2 on this shared 2-core machine; None = default).
        "smoke": dict(n_train=500, n_test=500, epochs={"mnist": 2, "cifar10": 2, "synthetic": 2},
                      sigma0_grid=[0.05, 0.2], eval_samples=4, init_sigma=1e-3, lr=1e-3, lr_rho=3e-2, num_threads=1),
        "cpu": dict(n_train=None, n_test=None, epochs={"mnist": 4, "cifar10": 2, "synthetic": 5},
                    sigma0_grid=[0.05, 0.1, 0.2], eval_samples=8, init_sigma=1e-3, lr=1e-3, lr_rho=3e-2,
                    num_threads=1),
        "paper": dict(n_train=None, n_test=None, epochs={"mnist": 100, "cifar10": 100, "synthetic": 100},
                      sigma0_grid=[0.01, 0.02, 0.05, 0.1, 0.2, 0.5], eval_samples=32, init_sigma=1e-3, lr=1e-3,
                      lr_rho=1e-2, num_threads=None),
    },
    "fake_labels": {
        # n_train: training samples for the variational curves (true and random labels); sigma0_grid as in the
        # variational chapter; memorize_n / memorize_epochs: plain Adam training on random labels (no noise).
        "smoke": dict(n_train=1000, epochs=3, sigma0_grid=[0.1], eval_samples=4, init_sigma=1e-3, lr=1e-3,
                      lr_rho=3e-2, memorize_n=500, memorize_epochs=20, label_seed=1, num_threads=1),
        "cpu": dict(n_train=None, epochs=10, sigma0_grid=[0.1], eval_samples=8, init_sigma=1e-3, lr=1e-3,
                    lr_rho=3e-2, memorize_n=5000, memorize_epochs=150, label_seed=1, num_threads=1),
        "paper": dict(n_train=None, epochs=100, sigma0_grid=[0.05, 0.1, 0.2], eval_samples=32, init_sigma=1e-3,
                      lr=1e-3, lr_rho=1e-2, memorize_n=None, memorize_epochs=300, label_seed=1, num_threads=None),
    },
    "two_part": {
        # n_train/n_test: samples loaded (None = whole split); fit(): Adam lr, at most `epochs`, early stopping
        # with `patience` on the last 10% of the training labels (all of which are encoded and paid for).
        "smoke": dict(n_train=1000, n_test=500, epochs=2, lr=1e-3, patience=3),
        "cpu": dict(n_train=None, n_test=None, epochs=8, lr=1e-3, patience=2),
        "paper": dict(n_train=None, n_test=None, epochs=100, lr=1e-3, patience=5),
    },
    "network_compression": {
        # train `epochs`, then for each sparsity (iterative magnitude pruning) fine-tune `finetune_epochs`
        # with the mask; each tensor quantized to a 2^b-entry k-means codebook for b in `bits`.
        "smoke": dict(n_train=1000, n_test=500, epochs=2, lr=1e-3, patience=3, finetune_epochs=1,
                      finetune_lr=5e-4, sparsities=[0.0, 0.8], bits=[2, 4]),
        "cpu": dict(n_train=None, n_test=None, epochs=8, lr=1e-3, patience=2, finetune_epochs=2,
                    finetune_lr=5e-4, sparsities=[0.0, 0.5, 0.75, 0.9, 0.95, 0.97], bits=[2, 3, 4, 5, 6]),
        "paper": dict(n_train=None, n_test=None, epochs=100, lr=1e-3, patience=5, finetune_epochs=10,
                      finetune_lr=5e-4, sparsities=[0.0, 0.5, 0.75, 0.9, 0.95, 0.97, 0.98, 0.99],
                      bits=[2, 3, 4, 5, 6, 8]),
    },
    "intrinsic_dimension": {
        # theta_d (from 0) trained `epochs` with Adam at `lr`; swept over dims d and precisions p (bits).
        "smoke": dict(n_train=1000, n_test=500, epochs=1, lr=0.1, dims=[50, 200], precisions=[4, 32]),
        "cpu": dict(n_train=None, n_test=None, epochs=3, lr=0.1, dims=[100, 300, 1000, 3000],
                    precisions=[2, 3, 4, 6, 8, 16, 32]),
        "paper": dict(n_train=None, n_test=None, epochs=20, lr=0.1, dims=[100, 200, 290, 500, 1000, 2900, 5000, 10000],
                      precisions=[2, 3, 4, 5, 6, 8, 10, 12, 16, 32]),
    },
    "bytes": {
        # codes: per dataset, (code, model) pairs written to a file and read back (mdl_utils.coding); the codes'
        # own settings (n_train, epochs, patience, ...) come from the "prequential" and "two_part" keys above.
        # num_threads: torch CPU threads of encoder and decoder (recorded in the file; both must use the same).
        "smoke": dict(num_threads=1,
                      codes={"mnist": [["uniform", None], ["prequential", "mlp"], ["two_part", "mlp"]],
                             "cifar10": [["uniform", None], ["prequential", "mlp"]],
                             "synthetic": [["uniform", None], ["prequential", "mlp"], ["two_part", "mlp"]]}),
        "cpu": dict(num_threads=1,
                    codes={"mnist": [["uniform", None], ["prequential", "mlp"], ["two_part", "mlp"]],
                           "cifar10": [["uniform", None]],
                           "synthetic": [["uniform", None], ["prequential", "mlp"]]}),
        "paper": dict(num_threads=1,
                      codes={"mnist": [["uniform", None], ["prequential", "mlp"], ["prequential", "vgg_mnist"],
                                       ["two_part", "mlp"]],
                             "cifar10": [["uniform", None], ["prequential", "mlp"], ["prequential", "vgg_cifar"]],
                             "synthetic": [["uniform", None], ["prequential", "mlp"]]}),
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
