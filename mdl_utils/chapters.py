"""What a chapter notebook calls: load a stored result, or compute and store it.

``get(chapter, dataset, model, scale, recompute=...)`` is the one load-or-compute
helper of the book: with ``recompute=False`` (the book build) it never trains,
it reads ``results/<chapter>/...`` and, for a missing result, prints where it
should be and the command that computes it; with ``recompute=True`` (a chapter
run by ``python -m mdl_utils.run``) it calls the chapter's entry point
``mdl_utils.codes.<chapter>.compute`` and stores what it returns.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from . import codes, data, models, results
from .results import CodeResult


def code_of(chapter: str, model: str) -> str:
    """The code a chapter stores for ``model`` (the chapter's name unless its module says otherwise)."""
    module = codes.chapter(chapter).module
    return module.code_of(model) if hasattr(module, "code_of") else chapter


def rerun_command(chapter: str, scale: str, **params: Any) -> str:
    """The shell command that recomputes a chapter's results."""
    args = ["python", "-m", "mdl_utils.run", codes.chapter(chapter).notebook, "--scale", scale]
    for name, value in params.items():
        args += ["-p", name, value if isinstance(value, str) else json.dumps(value)]
    return shlex.join(args)


def get(chapter: str, dataset: str, model: str, scale: str, *, recompute: bool = False, seed: int = 0,
        device: str = "auto", data_root: str | None = None) -> CodeResult | None:
    """The stored result of ``model`` on ``dataset`` at ``scale``; computed and stored first when ``recompute``.

    A damaged or foreign results file raises ResultFileError naming the file and the fix (results.load)."""
    if recompute:
        with data.clamp_log() as clamped:
            result = codes.chapter(chapter).module.compute(dataset, model, scale, seed=seed, device=device,
                                                           data_root=data_root)
        results.save(state_clamps(result, clamped), chapter)
        return result
    code = code_of(chapter, model)
    path = results.result_path(chapter, dataset, model, scale, code=code, seed=seed)
    if path.exists():
        return results.load(chapter, dataset, model, scale, code=code, seed=seed)
    params = {"datasets": [dataset], "models": [model], **({"seed": seed} if seed else {})}
    print(f"Not computed yet: {dataset} / {model} at scale={scale} ({path.name}). Compute it with:\n"
          f"  {rerun_command(chapter, scale, **params)}")
    return None


def state_clamps(result: CodeResult, clamped: Sequence[dict]) -> CodeResult:
    """``result`` with the loads that got fewer samples than the scale asked for (data.clamp_log: a small image
    folder) stated in its params (``n_clamped``) and its note."""
    seen = sorted({(c["split"], c["asked"], c["used"]) for c in clamped})
    if seen:
        result.params["n_clamped"] = [{"split": sp, "asked": a, "used": u} for sp, a, u in seen]
        words = "; ".join(f"{sp} split: all {u} samples, the scale asks for {a}" for sp, a, u in seen)
        result.note = f"{result.note} [{words}]".strip()
    return result


def runs(chapter: str, dataset: str, scale: str, models: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (dataset, model) pairs a chapter stores for ``dataset``: ``models``, else its settings' models table at
    ``scale`` (:func:`models_for`); a chapter whose runs are not just that defines its own ``runs`` (switch,
    prequential, fake_labels, uniform)."""
    module = codes.chapter(chapter).module
    if hasattr(module, "runs"):
        return module.runs(dataset, scale, models)
    return [(dataset, m) for m in (models or models_for(dataset, module.settings(scale).models))]


def get_all(chapter: str, datasets: Sequence[str], models: Sequence[str] | None, scale: str,
            **kw: Any) -> dict[tuple[str, str], CodeResult | None]:
    """:func:`get` for every run of ``chapter`` on ``datasets``, keyed by (dataset, model)."""
    return {(ds, m): get(chapter, ds, m, scale, **kw)
            for dataset in datasets for ds, m in runs(chapter, dataset, scale, models)}


def architecture(entry: str) -> str | None:
    """The network a name holds: the name itself ("mlp"), the longest architecture within a code's or a recipe's
    name ("prequential_mlp", "two_part_vgg_mnist", "mlp_warm"), or None for a code without one ("uniform")."""
    parts = entry.split("_")
    spans = sorted(((i, j) for i in range(len(parts)) for j in range(i + 1, len(parts) + 1)), key=lambda s: s[0] - s[1])
    return next(("_".join(parts[i:j]) for i, j in spans if "_".join(parts[i:j]) in models.ARCHITECTURES), None)


def fits(entry: str, shape: tuple[int, ...]) -> bool:
    """Whether every network of a models-table entry accepts inputs of ``shape`` (a mixture names several:
    "switch-mlp-small_cnn-uniform"); an entry without a network fits any input."""
    return misfit(entry, shape) is None


def models_for(dataset: str, table: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """A chapter's default models for ``dataset``: its row of ``table`` (keyed mnist, cifar10, synthetic), or,
    for a dataset the table does not name (an image folder), the row of the dataset of the same input kind
    (1-channel images: mnist, 3-channel: cifar10, vectors: synthetic), keeping the entries whose networks fit
    its inputs (and those without a network, e.g. the bytes chapter's "uniform"); when none fits, the vectors'
    row (networks that take any input). Prints the entries left out and why."""
    if dataset in table:
        return tuple(table[dataset])
    shape = tuple(data.load(dataset, "train", n=1).x.shape[1:])
    kind = "synthetic" if len(shape) != 3 else ("mnist" if shape[0] == 1 else "cifar10")
    row = tuple(table.get(kind, ()))
    kept = tuple(m for m in row if fits(m, shape))
    skipped = [m for m in row if m not in kept]
    if skipped:
        fallback = () if kept else tuple(m for m in table.get("synthetic", ()) if fits(m, shape))
        why = "; ".join(f"{m} ({misfit(m, shape)})" for m in skipped)
        print(f"{dataset} ({'x'.join(map(str, shape))} inputs): left out {why}; "
              + (f"running {', '.join(kept or fallback)}" + (" instead" if fallback else "") if kept or fallback
                 else "no model of this chapter fits these inputs"))
        kept = kept or fallback
    return kept


def misfit(entry: str, shape: tuple[int, ...]) -> str | None:
    """Why a models-table entry's networks do not accept inputs of ``shape`` (the first reason), None if they do."""
    nets = [net for net in map(architecture, entry.split("-")) if net is not None]
    return next((f"{net}: {why}" if net != entry else why for net in nets
                 if (why := models.misfit(net, shape)) is not None), None)
