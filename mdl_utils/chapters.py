"""What a chapter notebook calls: load a stored result, or compute and store it.

``get(chapter, dataset, model, scale, recompute=...)`` is the one load-or-compute
helper of the book: with ``recompute=False`` (the book build) it never trains,
it reads ``results/<chapter>/...`` and, for a missing result, prints where it
should be and the command that computes it; with ``recompute=True`` (a chapter
run by ``python -m mdl_utils.run``) it calls the chapter's entry point
``mdl_utils.codes.<chapter>.compute`` and stores what it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import codes, data, results
from .codes import code_of, rerun_command, runs
from .results import CodeResult


def get(chapter: str, dataset: str, model: str, scale: str, *, recompute: bool = False, seed: int = 0,
        device: str = "auto", data_root: str | None = None, root: str | Path | None = None) -> CodeResult | None:
    """The stored result of ``model`` on ``dataset`` at ``scale`` in the results store ``root`` (default
    results_root()); computed and stored first when ``recompute``.

    A damaged or foreign results file raises ResultFileError naming the file and the fix (results.load)."""
    root = Path(root) if root is not None else None
    if recompute:
        with data.clamp_log() as clamped:
            result = codes.compute(chapter, dataset, model, scale, seed=seed, device=device, data_root=data_root,
                                   root=root)
        results.save(state_clamps(result, clamped), chapter, root)
        return result
    code = code_of(chapter, model)
    path = results.result_path(chapter, dataset, model, scale, root, code=code, seed=seed)
    if path.exists():
        return results.load(chapter, dataset, model, scale, root, code=code, seed=seed)
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


def get_all(chapter: str, datasets: Sequence[str], models: Sequence[str] | None, scale: str,
            **kw: Any) -> dict[tuple[str, str], CodeResult | None]:
    """:func:`get` for every run of ``chapter`` on ``datasets``, keyed by (dataset, model)."""
    return {(ds, m): get(chapter, ds, m, scale, **kw)
            for dataset in datasets for ds, m in runs(chapter, dataset, scale, models)}
