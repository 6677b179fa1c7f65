"""Chapter 6: the prequential code (paper Sec. 3.4, Def. 3, App. D, Algorithm 2).

The code itself, cold and warm chains, is :mod:`mdl_utils.codes.algorithm2` (imported here: ``prequential.Chain``,
``prequential.Recipe``, ``prequential.prequential_code`` are its). This module is the chapter: the named recipes
(our warm-start and step-budget runs and their ablations), the settings at each scale, :func:`compute`, and what
the job runner asks of a run (its checkpoint, planned work, blocks, priority, a throughput probe, a dry run).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Callable

from .. import checkpoint, data, scales
from .. import models
from ..results import CodeResult, result_path
from ..training import resolve_device, torch_threads
from .algorithm2 import (WARM_SEED_STRIDE, Chain, Ensemble, Recipe, UniformModel,  # noqa: F401 (the API)
                         chain_for, chain_state_files, check_timesteps, default_timesteps, encode_block,
                         fit_temperature, prequential_code)

CHAPTER = "prequential"


# Our recipes (not the paper's): named runs of the cpu scale. "model" is the architecture; every other key
# overrides a Recipe field. Measured in the chapter (ablation table) and in benchmarks/bench_prequential_recipes.py.
# Run names must not contain "-" (the switch code joins them with it).
_COSINE = dict(patience=None, schedule="cosine", restore_best=False)  # a fixed budget, the last weights kept
RECIPES: dict[str, dict[str, Any]] = {
    # MNIST MLP: warm start + replay, 20 epochs per block under a cosine learning rate, the last weights kept
    "mlp_warm": dict(model="mlp", warm_start=True, epochs=20, **_COSINE),
    # MNIST CNN: warm, 10 epochs per block (at least 100 steps) under a cosine learning rate, translations by up
    # to 2 pixels, NHWC, the first 32 labels uniform, calibration from 50 labels on. float32: under portable
    # numerics bfloat16 autocast has no fast kernel (5x slower than float32; benchmarks/bench_numerics.py).
    # Each block's bits after every evaluation are recorded for the self-switch code (one more prediction of
    # the block per evaluation; the code's bits do not change)
    "cnn4_warm": dict(model="cnn4", warm_start=True, epochs=10, min_steps=100, **_COSINE, augment=True,
                      augment_shift=2, augment_flip=False, augment_fill="min", channels_last=True,
                      uniform_below=32, min_calibration=50),
    # CIFAR-10: the same scheme on a 6-conv VGG-like network with batch norm, VGGb's augmentation (translations
    # by up to 4 pixels, flips), the first 40 labels uniform
    "vgg6_warm": dict(model="vgg6", warm_start=True, epochs=10, min_steps=100, **_COSINE, augment=True,
                      augment_shift=4, augment_flip=True, augment_fill="zero", channels_last=True,
                      uniform_below=40, min_calibration=50),
}
# Ablations (the chapter's table): one ingredient changed at a time.
RECIPES.update({
    "mlp_cold_cosine": {**RECIPES["mlp_warm"], "warm_start": False},
    "mlp_warm_min200": {**RECIPES["mlp_warm"], "min_steps": 200},
    "mlp_cold_cosine_min200": {**RECIPES["mlp_warm"], "warm_start": False, "min_steps": 200},
    "mlp_warm_early_stopping": dict(model="mlp", warm_start=True, epochs=20),  # the paper's stopping rule
    "mlp_warm_max500": {**RECIPES["mlp_warm"], "max_steps": 500},  # at most 500 steps per block: half the time
    "cnn4_warm_epochs5": {**RECIPES["cnn4_warm"], "epochs": 5, "record_epochs": False},
    "cnn4_cold": {**RECIPES["cnn4_warm"], "warm_start": False},  # records its epochs: the paper's self-switch is cold
    "cnn4_warm_min0": {**RECIPES["cnn4_warm"], "min_steps": 0, "record_epochs": False},
    "cnn4_cold_min0": {**RECIPES["cnn4_warm"], "warm_start": False, "min_steps": 0, "record_epochs": False},
    # Test-time augmentation (mdl_utils.tta): the same chains, each block predicted as the average over the
    # identity and one-pixel shifts (cnn4) or the mirror image (vgg6), views of the training's augmentation.
    # Epochs unrecorded: every evaluation would predict the block once per view
    "cnn4_warm_tta": {**RECIPES["cnn4_warm"], "tta": "shift1", "record_epochs": False},
    "vgg6_warm_tta": {**RECIPES["vgg6_warm"], "tta": "flip", "record_epochs": False},
    # Ensembles (Recipe.members): two chains of the recipe from seeds 0 and 1, each block predicted by the average
    # of their predictions; twice the training
    "mlp_warm_ens2": {**RECIPES["mlp_warm"], "members": 2, "record_epochs": False},
    "cnn4_warm_ens2": {**RECIPES["cnn4_warm"], "members": 2, "record_epochs": False},
    # Weight averaging (Recipe.ema): each block evaluated and ended on an exponential moving average of its weights
    # over its steps (decay 0.99: about the last 100 steps; chosen before the run, not tuned), the chain continuing
    # from the average. Under a cosine schedule the last steps barely move the weights: we expect little
    "mlp_warm_ema": {**RECIPES["mlp_warm"], "ema": 0.99},
    # ... and under a constant learning rate with early stopping, where the last weights still move: averaging should
    # matter more there (the measurement that tells the two cases apart; same decay)
    "mlp_warm_early_stopping_ema": dict(model="mlp", warm_start=True, epochs=20, ema=0.99),
})


@dataclasses.dataclass(frozen=True)
class Settings:
    """The chapter's settings at a scale: samples loaded (n_train, n_test; None = the whole split), the runs of
    each dataset (``models``: run names), and what every :class:`Recipe` gets: max ``epochs``
    (``epochs_by_model`` overrides it per architecture), ``patience``, ``batch_size``, ``lr``, ``val_fraction``,
    ``calibrate``, augmentation for ``augment_models``, and the first timestep t_1 (``first_step`` per dataset,
    else ``first_step_default``; then t_1 2^k, then n). A run name is an architecture (Algorithm 2 with these
    settings) or a key of ``recipes``, whose dict ("model": the architecture, other keys: Recipe fields)
    overrides them. ``ablations``: runs per dataset that the chapter's ablation table reads (not in ``models``).
    ``num_threads``: torch CPU threads during a run (None: unchanged); the bits depend on it. ``tf32``: every
    recipe's TensorFloat-32 kernels on CUDA (the paper scale, on a GPU; recorded as each result's precision)."""

    n_train: int | None = None
    n_test: int | None = None
    epochs: int = 50
    patience: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    val_fraction: float = 0.1
    calibrate: bool = True
    record_epochs: bool = True
    epochs_by_model: dict[str, int] = dataclasses.field(default_factory=dict)
    augment_models: tuple[str, ...] = ("vgg_cifar_bn",)
    first_step: dict[str, int] = dataclasses.field(default_factory=lambda: {"mnist": 8, "cifar10": 10})
    first_step_default: int = 10
    num_threads: int | None = None
    tf32: bool = False
    models: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=lambda: {
        "mnist": ("mlp", "vgg_mnist"), "cifar10": ("mlp", "shallow", "tinycnn", "vgg_cifar", "vgg_cifar_bn"),
        "synthetic": ("logistic", "mlp")})
    recipes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=lambda: copy.deepcopy(RECIPES))
    ablations: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def recipe(self, dataset: str, model: str, n: int, seed: int = 0) -> Recipe:
        """The agreed recipe of run ``model`` (an architecture, or a key of ``recipes``) on the first ``n``
        samples of ``dataset``."""
        overrides = dict(self.recipes.get(model, {}))
        arch = overrides.pop("model", model)
        if not models.known(arch):
            raise ValueError(f"unknown run {model!r}; give a model (Algorithm 2: {', '.join(models.names())}; yours: "
                             f"mdl_utils.models.register) or a named recipe ({', '.join(sorted(self.recipes))})")
        t1 = self.first_step.get(dataset, self.first_step_default)
        base = Recipe(model=arch, timesteps=tuple(default_timesteps(n, t1)),
                      epochs=self.epochs_by_model.get(arch, self.epochs), batch_size=self.batch_size, lr=self.lr,
                      val_fraction=self.val_fraction, patience=self.patience, augment=arch in self.augment_models,
                      calibrate=self.calibrate, seed=seed, record_epochs=self.record_epochs, tf32=self.tf32)
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(Recipe)})
        if unknown:
            raise ValueError(f"recipe {model!r} sets unknown Recipe fields {unknown}; fix Settings.recipes")
        return dataclasses.replace(base, **overrides)


SCALES = {
    # paper: the paper's settings (the defaults) on a GPU, with TensorFloat-32 tensor-core kernels (docs/PAPER_SCALE.md)
    "paper": dict(tf32=True),
    "smoke": dict(n_train=600, n_test=200, epochs=3, patience=2, num_threads=1,
                  models={"mnist": ("mlp",), "cifar10": ("mlp",), "synthetic": ("mlp",)}),
    # epochs_by_model: a smaller cap for the models that are slow on a CPU (stated in each result's params).
    # The runs named in RECIPES are ours; "mlp", "small_cnn", "shallow", "tinycnn": Algorithm 2 (cold).
    "cpu": dict(epochs=20, patience=3, epochs_by_model={"shallow": 5, "tinycnn": 5}, num_threads=1,
                models={"mnist": ("mlp", "small_cnn", "mlp_warm", "cnn4_warm", "cnn4_warm_tta"),
                        "cifar10": ("mlp", "shallow", "tinycnn", "vgg6_warm"), "synthetic": ("logistic", "mlp")},
                ablations={"mnist": ("mlp_cold_cosine", "mlp_warm_min200", "mlp_cold_cosine_min200",
                                     "mlp_warm_early_stopping", "mlp_warm_max500", "cnn4_cold", "cnn4_warm_min0",
                                     "cnn4_cold_min0", "cnn4_warm_epochs5", "mlp_warm_ens2",
                                     "mlp_warm_ema", "mlp_warm_early_stopping_ema")}),
}


settings = scales.settings_of(Settings, SCALES)


def networks(model: str, dataset: str, scale: str) -> list[str]:
    """The architecture run ``model`` trains: its recipe's (the registry's hook; never guessed from the name)."""
    return [settings(scale).recipe(dataset, model, 2).model]


def ablation_runs(dataset: str, scale: str) -> list[tuple[str, str]]:
    """The runs of the chapter's ablation table on ``dataset`` at ``scale`` (stored like any other run)."""
    return [(dataset, m) for m in settings(scale).ablations.get(dataset, ())]


def compute(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto",
            data_root: str | None = None, progress: bool = True, on_block: Callable | None = None,
            root: str | Path | None = None) -> CodeResult:
    """The prequential code of run ``model`` on ``dataset`` at ``scale``; per-sample bits in
    ``result.arrays["bits"]``. ``on_block(unit, done, total)`` after each finished block (its record, blocks done
    so far, blocks in all); ``root``: the results store whose checkpoint folder it uses (default results_root()).

    Resumable: an interrupted run restarts after its last finished block (same settings and data only; a warm
    chain from the model state saved beside the checkpoint).
    """
    s = settings(scale)
    train, test = data.splits(dataset, s, seed=seed, root=data_root)
    ckpt = checkpoint_path(dataset, model, scale, seed, root)
    with torch_threads(s.num_threads):
        result = prequential_code(train, test, s.recipe(dataset, model, train.n, seed), scale=scale, device=device,
                                  progress=progress, checkpoint_path=ckpt, name=model, on_block=on_block)
    ckpt.unlink(missing_ok=True)
    for state in chain_state_files(ckpt):
        state.unlink(missing_ok=True)
    return result


# ------------------------------------------------------------ the job runner's hooks (mdl_utils.codes)

# Table 2's networks, largest first: the job runner starts their runs first.
MODEL_PRIORITY = ("vgg_mnist", "vgg_cifar_bn", "vgg_cifar", "tinycnn", "shallow", "mlp")


def checkpoint_path(dataset: str, model: str, scale: str, seed: int = 0, root: str | Path | None = None) -> Path:
    """Where a run keeps its finished blocks while it runs: ``<store>/prequential/.partial/<its result's name>``."""
    return checkpoint.path_for(result_path(CHAPTER, dataset, model, scale, root, seed=seed))


def priority(model: str) -> int:
    return MODEL_PRIORITY.index(model) if model in MODEL_PRIORITY else len(MODEL_PRIORITY)


def capped_settings(scale: str, caps: dict | None = None) -> Settings:
    """The settings at ``scale``; a dry run's ``caps`` ("samples": first n, "epochs": at most e per block)."""
    s = settings(scale)
    n = (caps or {}).get("samples")
    return s if n is None else dataclasses.replace(s, n_train=min(n, s.n_train or n), n_test=min(n, s.n_test or n))


def run_recipe(dataset: str, model: str, scale: str, seed: int = 0, data_root=None, caps: dict | None = None
               ) -> Recipe:
    """The Recipe a run trains (timesteps over all the samples it loads; a dry run's caps applied)."""
    s = capped_settings(scale, caps)
    recipe = s.recipe(dataset, model, data.train_size(dataset, s.n_train, data_root), seed)
    epochs = (caps or {}).get("epochs")
    return recipe if epochs is None else dataclasses.replace(recipe, epochs=epochs)


def block_work(recipe: Recipe, t_s: int) -> int:
    """Samples x epochs of one block at most: t_s x max epochs, or the recipe's step cap in samples."""
    caps = [t_s * recipe.epochs] if recipe.epochs else []
    if recipe.max_steps:
        caps.append(recipe.max_steps * recipe.batch_size)
    if not caps:
        raise ValueError(f"recipe {recipe.model!r} caps neither epochs nor steps: its planned work is unbounded")
    return min(caps)


def blocks_done(dataset: str, model: str, scale: str, seed: int = 0, root=None) -> set[int]:
    """t_s of the blocks in a run's checkpoint (not checked against its fingerprint: a plan, not a proof)."""
    path = checkpoint_path(dataset, model, scale, seed, root)
    try:
        return {int(u["t_start"]) for u in checkpoint.read_state(path).get("units", [])} if path.is_file() else set()
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def planned_work(dataset: str, model: str, scale: str, *, seed: int = 0, root=None, data_root=None,
                 caps: dict | None = None) -> int:
    """Samples x max epochs summed over the blocks (without those in the checkpoint of the store ``root``)."""
    recipe = run_recipe(dataset, model, scale, seed, data_root, caps)
    done = blocks_done(dataset, model, scale, seed, root) if root is not None and not caps else set()
    return sum(block_work(recipe, t) for t in recipe.timesteps[:-1] if t not in done)


def blocks(dataset: str, model: str, scale: str, *, data_root=None, caps: dict | None = None) -> int:
    return len(run_recipe(dataset, model, scale, data_root=data_root, caps=caps).timesteps) - 1


def compute_capped(dataset: str, model: str, scale: str, *, seed: int = 0, device: str = "auto", data_root=None,
                   caps: dict) -> CodeResult:
    """A dry run: the code of a recipe capped by ``caps`` (no checkpoint), the caps stated in the result."""
    s = capped_settings(scale, caps)
    train = data.load(dataset, "train", root=data_root, n=data.train_size(dataset, s.n_train, data_root), seed=seed)
    test = data.load(dataset, "test", root=data_root, seed=seed)
    test = test.head(min(s.n_test, test.n))
    with torch_threads(s.num_threads):
        result = prequential_code(train, test, run_recipe(dataset, model, scale, seed, data_root, caps), scale=scale,
                                  device=device, progress=False, checkpoint_path=None, name=model)
    result.params["override"] = {"cap_samples": caps.get("samples"), "cap_epochs": caps.get("epochs")}
    result.note = (f"DRY RUN, not the {scale} result: first {train.n} samples, at most {result.params['epochs']} "
                   "epochs per block (mdl_utils.jobs cap); " + result.note)
    return result


def probe(model: str, dataset: str, scale: str, device: str = "auto", data_root=None, min_seconds: float = 1.0,
          max_samples: int = 16384) -> float:
    """Planned-work samples per second of ``model``: one block (training on t_s random inputs for two epochs,
    validation, per-epoch encoding and calibration, as at ``scale``), t_s growing x4 from 256 until the block takes
    ``min_seconds`` or t_s reaches ``max_samples``. Small blocks make it a pessimistic number."""
    info = data.info(dataset, data_root)
    recipe = dataclasses.replace(settings(scale).recipe(dataset, model, 2), epochs=2, patience=2)
    n = 256
    while True:
        block = encode_block(data.random_dataset(2 * n, info.shape, info.K), None, n, 2 * n, recipe,
                             resolve_device(device))
        if block["seconds"] >= min_seconds or n >= max_samples:
            return n * recipe.epochs / block["seconds"]
        n *= 4


# ------------------------------------------------------------ Algorithm 2




























# ------------------------------------------------------ warm chains: resume












