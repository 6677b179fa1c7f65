"""Run a chapter: ``python -m mdl_utils.run NOTEBOOK --scale smoke|cpu|paper [-p NAME VALUE]...``

Executes a jupytext notebook with papermill from the notebook's folder, with
``recompute=True`` and the given parameters, writes the executed notebook (the
record of the run) to ``results/<chapter>/runs/`` and lets the notebook store
its results. Unknown scales and parameter names are errors.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
from pathlib import Path
from typing import Any

from .results import results_root, slug
from .scales import SCALES, check_scale

RUNNER_PARAMETERS = ("scale", "recompute")


class RunError(ValueError):
    """A notebook cannot be run as asked."""


def chapter_of(notebook: str | Path) -> str:
    """Chapter name of a notebook: ``notebooks/01_uniform.md`` -> ``uniform``."""
    stem = Path(notebook).stem
    head, _, tail = stem.partition("_")
    return tail if head.isdigit() and tail else stem


def read_notebook(notebook: str | Path):
    import jupytext

    path = Path(notebook)
    if not path.is_file():
        raise RunError(f"no notebook at {path}; chapters live in notebooks/NN_<code>.md")
    return jupytext.read(path)


def parameter_names(nb) -> list[str]:
    """Names assigned in the cell tagged ``parameters``."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise RunError("the notebook has no code cell tagged 'parameters'")
    names = []
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        names += [t.id for t in targets if isinstance(t, ast.Name)]
    return names


def parse_value(text: str) -> Any:
    """``-p`` values: JSON when it parses (1, 0.5, true, null, ["a"]), then Python literals, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_parameters(nb, params: dict[str, Any]) -> None:
    known = parameter_names(nb)
    for name in params:
        if name in RUNNER_PARAMETERS:
            raise RunError(f"parameter {name!r} is set by the runner; use --scale to choose the scale")
        if name not in known:
            allowed = ", ".join(n for n in known if n not in RUNNER_PARAMETERS)
            raise RunError(f"unknown parameter {name!r}; this notebook's parameters are: {allowed}")


def output_path(notebook: str | Path, scale: str, params: dict[str, Any]) -> Path:
    tag = "".join(f"-{slug(k)}={slug(json.dumps(v) if not isinstance(v, str) else v)}" for k, v in sorted(params.items()))
    return results_root() / slug(chapter_of(notebook)) / "runs" / f"{Path(notebook).stem}-{scale}{tag}.ipynb"


def run(notebook: str | Path, scale: str, params: dict[str, Any] | None = None, output: str | Path | None = None,
        progress: bool = True) -> Path:
    """Execute ``notebook`` at ``scale`` with ``recompute=True``; returns the executed notebook's path."""
    import papermill

    params = dict(params or {})
    check_scale(scale)
    nb = read_notebook(notebook)
    check_parameters(nb, params)
    for var in ("MDL_DATA", "MDL_RESULTS", "MDL_CACHE"):  # the kernel runs in the notebook's folder
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    out = Path(output) if output else output_path(notebook, scale, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    papermill.execute_notebook(
        nb, str(out), parameters={"scale": scale, "recompute": True, **params},
        cwd=str(Path(notebook).resolve().parent), kernel_name="python3", progress_bar=progress,
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.run", description=__doc__.split("\n\n")[1])
    ap.add_argument("notebook", help="a chapter, e.g. notebooks/01_uniform.md")
    ap.add_argument("--scale", required=True, help=f"one of {', '.join(SCALES)}")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="set a notebook parameter (value parsed as JSON when it parses); repeatable")
    ap.add_argument("-o", "--output", help="where to write the executed notebook (default results/<chapter>/runs/)")
    args = ap.parse_args(argv)
    params = {name: parse_value(value) for name, value in args.parameter}
    try:
        out = run(args.notebook, args.scale, params, args.output)
    except (RunError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # papermill's execution error carries the cell traceback
        if type(e).__name__ == "PapermillExecutionError":
            print(f"error: the notebook failed: {e.ename}: {e.evalue}\n(see the executed notebook for the traceback)",
                  file=sys.stderr)
            return 1
        raise
    print(f"executed notebook: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
