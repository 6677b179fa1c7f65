"""The codes of the book, one module per chapter (paper Sec. 2-3, App. A-E).

One name per code: the notebook, the module, the results folder and the
``code`` field of its results all use it.

| chapter | notebook | module | code names stored | entry point |
|---|---|---|---|---|
| uniform | 01_uniform | codes/uniform.py | uniform, shannon_heldout | uniform.compute |
| two_part | 02_two_part | codes/two_part.py | two_part | two_part.compute |
| network_compression | 03_network_compression | codes/network_compression.py | network_compression | network_compression.compute |
| intrinsic_dimension | 04_intrinsic_dimension | codes/intrinsic_dimension.py | intrinsic_dimension | intrinsic_dimension.compute |
| variational | 05_variational | codes/variational.py | variational | variational.compute |
| prequential | 06_prequential | codes/prequential.py | prequential | prequential.compute |
| switch | 07_switch | codes/switch.py | switch, self_switch | switch.compute |
| fake_labels | 08_fake_labels | codes/fake_labels.py | variational, two_part (on random labels) | fake_labels.compute |
| bytes | 09_bytes | codes/bytes.py (coder: mdl_utils/coder.py) | bytes | bytes.compute |

Every entry point has the signature
``compute(dataset, model, scale, *, seed=0, device="auto", data_root=None) -> CodeResult``:
it loads its data and its settings (``<module>.settings(scale)``) itself.
Results are stored and read through :func:`mdl_utils.chapters.get`. The registry below is what the runner,
the chapters and the codes ask of a chapter without naming it: the code a run stores (:func:`code_of`), a
chapter's runs (:func:`runs`), the models that fit a dataset (:func:`models_for`) and the command that recomputes
a run (:func:`rerun_command`).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import shlex
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from .. import data, models


@dataclasses.dataclass(frozen=True)
class Chapter:
    """One chapter of the book: its name (= module = results folder), notebook, the codes it stores, and its place
    in the job runner's default order (``job_rank``; None: run only when asked for)."""

    name: str
    number: int
    codes: tuple[str, ...]
    title: str
    job_rank: int | None = None

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.number:02d}_{self.name}.md"

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"mdl_utils.codes.{self.name}")


# job_rank: the prequential runs that Table 2's switch codes need, the switch codes, then the variational code
# and the two-part family (python -m mdl_utils.jobs).
CHAPTERS = (
    Chapter("uniform", 1, ("uniform", "shannon_heldout"), "The uniform code and Shannon codes"),
    Chapter("two_part", 2, ("two_part",), "Two-part codes with float32 parameters", job_rank=3),
    Chapter("network_compression", 3, ("network_compression",), "Network compression as a two-part code", job_rank=4),
    Chapter("intrinsic_dimension", 4, ("intrinsic_dimension",), "Intrinsic dimension: random affine subspaces",
            job_rank=5),
    Chapter("variational", 5, ("variational",), "The variational (bits-back) code", job_rank=2),
    Chapter("prequential", 6, ("prequential",), "The prequential code", job_rank=0),
    Chapter("switch", 7, ("switch", "self_switch"), "Switching between models", job_rank=1),
    Chapter("fake_labels", 8, ("variational", "two_part"), "Random labels cannot be compressed"),
    Chapter("bytes", 9, ("bytes",), "From bounds to bytes"),
)
BY_NAME = {c.name: c for c in CHAPTERS}


def chapter(name: str) -> Chapter:
    """The chapter called ``name``; ValueError listing the chapters otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown chapter {name!r}; chapters: {', '.join(BY_NAME)}")
    return BY_NAME[name]


def _module(name: str) -> ModuleType:
    return chapter(name).module


def code_of(name: str, model: str) -> str:
    """The code chapter ``name`` stores for ``model`` (the chapter's name unless its module's ``code_of`` says
    otherwise: the switch chapter's self-switch codes, the fake-labels chapter's two-part ones)."""
    module = _module(name)
    return module.code_of(model) if hasattr(module, "code_of") else name


def rerun_command(name: str, scale: str, **params: Any) -> str:
    """The shell command that recomputes chapter ``name``'s results."""
    args = ["python", "-m", "mdl_utils.run", chapter(name).notebook, "--scale", scale]
    for key, value in params.items():
        args += ["-p", key, value if isinstance(value, str) else json.dumps(value)]
    return shlex.join(args)


def runs(name: str, dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (dataset, model) pairs chapter ``name`` stores for ``dataset``: ``models``, else its settings' models
    table at ``scale`` (:func:`models_for`); a chapter whose runs are not just that defines its own ``runs``
    (switch, fake_labels, uniform)."""
    module = _module(name)
    if hasattr(module, "runs"):
        return module.runs(dataset, scale, models)
    return [(dataset, m) for m in (models or models_for(name, dataset, module.settings(scale).models, scale))]


def networks(name: str, entry: str, dataset: str, scale: str) -> list[str]:
    """The architectures that chapter ``name``'s models-table ``entry`` trains, from its recipe (the module's
    ``networks`` hook: a prequential run's recipe, a file code's models), else the entry itself when it is an
    architecture; [] for an entry that trains none (the uniform code)."""
    module = _module(name)
    if hasattr(module, "networks"):
        return list(module.networks(entry, dataset, scale))
    return [entry] if models.known(entry) else []


def misfit(name: str, entry: str, dataset: str, scale: str, shape: tuple[int, ...]) -> str | None:
    """Why the networks of chapter ``name``'s ``entry`` do not accept inputs of ``shape`` (the first reason), None
    when they do (or it trains none)."""
    return next((why if net == entry else f"{net}: {why}" for net in networks(name, entry, dataset, scale)
                 if (why := models.misfit(net, shape)) is not None), None)


def models_for(name: str, dataset: str, table: Mapping[str, Sequence[str]], scale: str) -> tuple[str, ...]:
    """Chapter ``name``'s default models for ``dataset`` in ``table``: its row (keyed mnist, cifar10, synthetic),
    or, for a dataset the table does not name (an image folder), the row of the dataset of the same input kind
    (1-channel images: mnist, 3-channel: cifar10, vectors: synthetic), keeping the entries whose networks fit its
    inputs (and those without a network, e.g. the bytes chapter's "uniform"); when none fits, the vectors' row
    (networks that take any input). Prints the entries left out and why."""
    if dataset in table:
        return tuple(table[dataset])
    shape = tuple(data.load(dataset, "train", n=1).x.shape[1:])
    kind = "synthetic" if len(shape) != 3 else ("mnist" if shape[0] == 1 else "cifar10")
    row = tuple(table.get(kind, ()))
    why = {m: misfit(name, m, dataset, scale, shape) for m in row}
    kept = tuple(m for m in row if why[m] is None)
    skipped = [m for m in row if m not in kept]
    if skipped:
        fallback = () if kept else tuple(m for m in table.get("synthetic", ())
                                         if misfit(name, m, dataset, scale, shape) is None)
        print(f"{dataset} ({'x'.join(map(str, shape))} inputs): left out "
              + "; ".join(f"{m} ({why[m]})" for m in skipped) + "; "
              + (f"running {', '.join(kept or fallback)}" + (" instead" if fallback else "") if kept or fallback
                 else "no model of this chapter fits these inputs"))
        kept = kept or fallback
    return kept


# ------------------------------------------------ what the job runner asks of a chapter (optional hooks)
#
# A chapter module may define: TRAINS = False (its runs only read stored results: run in the runner's own
# process once what they need is stored), needs(dataset, model, scale), checkpoint_path(dataset, model, scale,
# seed, root), planned_work(dataset, model, scale, root), blocks(dataset, model, scale), priority(model),
# probe(model, dataset, scale, device, root, min_seconds) and compute_capped(...) (a dry run); and compute()
# may take progress, on_block and root (the results store). Each function below gives the default.


def core_chapters() -> tuple[str, ...]:
    """The chapters the job runner runs by default, in its order."""
    return tuple(c.name for c in sorted((c for c in CHAPTERS if c.job_rank is not None), key=lambda c: c.job_rank))


def trains(name: str) -> bool:
    """Whether chapter ``name``'s runs train anything (else they read stored results only)."""
    return getattr(_module(name), "TRAINS", True)


def needs(name: str, dataset: str, model: str, scale: str) -> list[tuple[str, str, str]]:
    """The (chapter, dataset, model) runs whose stored results a run of chapter ``name`` reads."""
    module = _module(name)
    return list(module.needs(dataset, model, scale)) if hasattr(module, "needs") else []


def checkpoint_path(name: str, dataset: str, model: str, scale: str, seed: int = 0, root=None):
    """Where a run keeps its finished units while it runs, in the results store ``root`` (None: it keeps none)."""
    module = _module(name)
    return module.checkpoint_path(dataset, model, scale, seed, root) if hasattr(module, "checkpoint_path") else None


def _call(fn, *args: Any, **options: Any):
    """``fn(*args, **options)`` with the options its signature takes (a chapter's hook states what it needs)."""
    accepted = inspect.signature(fn).parameters
    return fn(*args, **{k: v for k, v in options.items() if k in accepted})


def planned_work(name: str, dataset: str, model: str, scale: str, **options: Any) -> int | None:
    """Samples x epochs a run trains at most (options: seed, root (the store whose checkpoint holds finished
    units), data_root, caps); None when the chapter states none."""
    module = _module(name)
    return _call(module.planned_work, dataset, model, scale, **options) if hasattr(module, "planned_work") else None


def blocks(name: str, dataset: str, model: str, scale: str, **options: Any) -> int | None:
    """The number of units (prequential blocks) a run trains, None for a chapter without them."""
    module = _module(name)
    return _call(module.blocks, dataset, model, scale, **options) if hasattr(module, "blocks") else None


def probe(name: str, model: str, dataset: str, scale: str, **options: Any) -> float | None:
    """Planned-work samples per second of a chapter's ``model`` (its ``probe`` hook), None without one."""
    module = _module(name)
    return _call(module.probe, model, dataset, scale, **options) if hasattr(module, "probe") else None


def takes_caps(name: str) -> bool:
    """Whether chapter ``name`` has dry runs (first samples, fewer epochs: ``compute_capped``)."""
    return hasattr(_module(name), "compute_capped")


def priority(name: str, model: str) -> int:
    """The order of a chapter's runs in the job runner (lower first; 0 by default)."""
    module = _module(name)
    return module.priority(model) if hasattr(module, "priority") else 0


def compute(name: str, dataset: str, model: str, scale: str, caps: dict | None = None, **options: Any):
    """Chapter ``name``'s compute(dataset, model, scale, ...) with the ``options`` its signature takes (seed, device,
    data_root always; progress, on_block, root where the chapter has them); with ``caps``, its dry run."""
    module = _module(name)
    if caps:
        return _call(module.compute_capped, dataset, model, scale, caps=caps, **options)
    return _call(module.compute, dataset, model, scale, **options)
