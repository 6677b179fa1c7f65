"""Run a chapter: ``python -m mdl_utils.run NOTEBOOK --scale smoke|cpu|paper [-p NAME VALUE]...``

Executes a jupytext notebook with papermill from the notebook's folder, with
``recompute=True`` and the given parameters, writes the executed notebook (the
record of the run) to ``results/<chapter>/runs/`` and lets the notebook store
its results. Unknown scales, unknown parameter names and values of the wrong
type (checked against the default in the notebook's parameters cell) are
one-line errors; Ctrl-C stops the kernel and says in one line what was kept.
The kernel computes with portable numerics (mdl_utils.numerics) unless
--fast-numerics is given.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import checkpoint, data, numerics
from .results import check_store, check_writable, results_root, slug
from .scales import SCALES, check_scale, matches

RUNNER_PARAMETERS = ("scale", "recompute")
# Parameters whose default is None: what else they accept (the comment beside them says so).
NONE_DEFAULT_TYPES: dict[str, Any] = {"models": list[str] | None, "data_root": str | None}
TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
              list[str]: "a JSON list of strings", list: "a JSON list", dict: "a JSON object"}
PATH_ENV = ("MDL_DATA", "MDL_RESULTS", "MDL_CACHE")
RESUME_NOTE = "checkpoint found: {}; the run resumes it if its settings, data and code are unchanged"


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


def parameter_defaults(nb) -> dict[str, Any]:
    """Names assigned in the cell tagged ``parameters`` and their literal defaults (``Any`` when not a literal)."""
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise RunError("the notebook has no code cell tagged 'parameters'")
    defaults: dict[str, Any] = {}
    for node in ast.parse(cells[0].source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        for t in (t for t in targets if isinstance(t, ast.Name)):
            try:
                defaults[t.id] = ast.literal_eval(node.value) if node.value is not None else Any
            except ValueError:
                defaults[t.id] = Any
    return defaults




def expected_type(name: str, default: Any) -> Any:
    """The type a ``-p`` value must have: that of the default (a list of strings for a list of strings, a number
    for a float), for a None default the entry of NONE_DEFAULT_TYPES (anything when absent)."""
    if default is None:
        return NONE_DEFAULT_TYPES.get(name, Any)
    if default is Any or isinstance(default, (bool, int, float, str)):
        return default if default is Any else type(default)
    if isinstance(default, list) and default and all(isinstance(v, str) for v in default):
        return list[str]
    return type(default)


def type_words(annotation: Any) -> str:
    """'an integer', 'a JSON list of strings or null', ..."""
    if annotation == list[str] | None:
        return f"{TYPE_WORDS[list[str]]} or null"
    if annotation == str | None:
        return "a string or null"
    return TYPE_WORDS.get(annotation, getattr(annotation, "__name__", str(annotation)))


def parse_value(text: str) -> Any:
    """``-p`` values: JSON when it parses (1, 0.5, true, null, ["a"]), then Python literals, else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def typed_value(name: str, text: str, annotation: Any) -> Any:
    """The ``-p name text`` value as ``annotation`` requires (a string parameter keeps the text as written:
    ``-p device 0`` is "0"); RunError naming the parameter, the type and, for a list, how to write one."""
    value = parse_value(text)
    if matches(value, annotation):
        return value
    if matches(text, annotation) and text not in ("null", "None"):
        return text
    fix = ""
    if annotation in (list[str], list[str] | None):
        example = json.dumps([value] if isinstance(value, str) else ["a", "b"])
        fix = f"; write -p {name} '{example}'" if isinstance(value, str) else f", e.g. -p {name} '{example}'"
    raise RunError(f"-p {name} expects {type_words(annotation)}, got {text}{fix}")


def check_parameters(nb, raw: dict[str, str]) -> dict[str, Any]:
    """The ``-p`` values (name -> text) checked against the notebook's parameters cell, typed."""
    defaults = parameter_defaults(nb)
    params = {}
    for name, text in raw.items():
        if name in RUNNER_PARAMETERS:
            raise RunError(f"parameter {name!r} is set by the runner; use --scale to choose the scale")
        if name not in defaults:
            allowed = ", ".join(n for n in defaults if n not in RUNNER_PARAMETERS)
            raise RunError(f"unknown parameter {name!r}; this notebook's parameters are: {allowed}")
        params[name] = typed_value(name, text, expected_type(name, defaults[name]))
    return params


def checked_values(params: dict[str, Any]) -> dict[str, Any]:
    """The typed values checked beyond their type, before a kernel starts: ``datasets`` and ``models`` not empty
    (an empty ``models`` would silently mean the defaults), known dataset names, existing folders and
    ``data_root``, a device torch knows; folder:<path> and ``data_root`` made absolute (the kernel runs in the
    notebook's folder, where a relative path would name another place)."""
    out = dict(params)
    for name in ("datasets", "models"):
        if out.get(name) == []:
            raise RunError(f"-p {name} is an empty list, which runs nothing"
                           + ("; give the models, or null for the chapter's own" if name == "models" else ""))
    if isinstance(out.get("datasets"), list):
        out["datasets"] = [absolute_dataset(name) for name in out["datasets"]]
    if isinstance(out.get("data_root"), str):
        out["data_root"] = str(Path(out["data_root"]).expanduser().resolve())
        if not Path(out["data_root"]).is_dir():
            raise RunError(f"-p data_root: no folder {out['data_root']}; give the folder holding the datasets")
    if isinstance(out.get("device"), str):
        from .training import resolve_device

        try:
            resolve_device(out["device"])
        except RuntimeError as e:  # torch: not a device string
            raise RunError(f"-p device {out['device']}: {e}; give auto, cpu or cuda") from None
        except ValueError as e:  # no such device here
            raise RunError(f"-p device {out['device']}: {e}") from None
    return out


def absolute_dataset(name: str) -> str:
    """A known dataset name, a folder:<path> with an existing absolute path."""
    if not data.is_name(name):
        raise RunError(f"-p datasets: unknown dataset {name!r}; choose {', '.join(data.NAMES)}")
    if not name.startswith("folder:"):
        return name
    folder = Path(name.split(":", 1)[1]).expanduser().resolve()
    if not folder.is_dir():
        raise RunError(f"-p datasets: image folder {folder} does not exist")
    return f"folder:{folder}"


def output_path(notebook: str | Path, scale: str, params: dict[str, Any]) -> Path:
    tag = "".join(f"-{slug(k)}={slug(json.dumps(v) if not isinstance(v, str) else v)}" for k, v in sorted(params.items()))
    return notebook_results_root(notebook) / slug(chapter_of(notebook)) / "runs" / f"{Path(notebook).stem}-{scale}{tag}.ipynb"


def notebook_results_root(notebook: str | Path) -> Path:
    """The results store the notebook's kernel writes to (it runs in the notebook's folder)."""
    return results_root(Path(notebook).resolve().parent)


def run(notebook: str | Path, scale: str, params: dict[str, Any] | None = None, output: str | Path | None = None,
        progress: bool = True) -> Path:
    """Execute ``notebook`` at ``scale`` with ``recompute=True``; returns the executed notebook's path.

    ``params`` may be typed values or, from the command line, their text (checked by :func:`check_parameters`).
    The kernel is stopped however the run ends (an error, Ctrl-C)."""
    import papermill
    from jupyter_client.manager import AsyncKernelManager

    check_scale(scale)
    nb = read_notebook(notebook)
    params = checked_values(check_parameters(nb, {k: v if isinstance(v, str) else json.dumps(v)
                                                  for k, v in (params or {}).items()}))
    for var in PATH_ENV:  # the kernel runs in the notebook's folder
        if os.environ.get(var):
            os.environ[var] = str(Path(os.environ[var]).expanduser().resolve())
    out = check_writable(output, Path(notebook).stem + ".ipynb") if output else output_path(notebook, scale, params)
    out.parent.mkdir(parents=True, exist_ok=True)
    km = AsyncKernelManager(kernel_name="python3")
    try:
        papermill.execute_notebook(
            nb, str(out), parameters={"scale": scale, "recompute": True, **params}, km=km,
            cwd=str(Path(notebook).resolve().parent), kernel_name="python3", progress_bar=progress,
        )
    finally:
        stop_kernel(km)
    return out


def stop_kernel(km) -> None:
    """Kill the kernel of ``km`` if it still runs (after Ctrl-C papermill leaves it to its owner)."""
    import asyncio

    async def stop():
        if km.has_kernel and await km.is_alive():
            await km.shutdown_kernel(now=True)

    asyncio.run(stop())


def checkpoint_labels(notebook: str | Path, scale: str, raw: dict[str, str]) -> dict[str, str]:
    """File stem -> "<dataset>/<model>" of the checkpoints this run may write (its datasets, any architecture,
    its scale and seed); {} when the parameters do not check."""
    from . import models
    from .results import result_path

    try:
        nb = read_notebook(notebook)
        params = checked_values({**parameter_defaults(nb), **check_parameters(nb, raw)})
    except ValueError:  # RunError included: the run itself reports it
        return {}
    seed = params["seed"] if isinstance(params.get("seed"), int) else 0
    names = set(models.names()) | set(params.get("models") or [])
    return {result_path("x", ds, m, scale, seed=seed).stem: f"{ds}/{m}"
            for ds in params.get("datasets") or [] for m in names}


def chapter_folder(notebook: str | Path) -> Path:
    """results/<chapter> of the notebook's results store."""
    return notebook_results_root(notebook) / slug(chapter_of(notebook))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mdl_utils.run", description=__doc__.split("\n\n")[1])
    ap.add_argument("notebook", help="a chapter, e.g. notebooks/01_uniform.md")
    ap.add_argument("--scale", required=True, help=f"one of {', '.join(SCALES)}")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="set a notebook parameter (typed as its default: -p seed 1, -p datasets '[\"mnist\"]'); "
                         "repeatable")
    ap.add_argument("-o", "--output", help="where to write the executed notebook (default results/<chapter>/runs/)")
    numerics.add_option(ap)
    args = ap.parse_args(argv)
    started, labels = time.time(), {}
    try:
        if args.fast_numerics:
            numerics.use("native")  # the kernel inherits MDL_NUMERICS=native
        check_store(notebook_results_root(args.notebook))
        twice = sorted({name for name, _ in args.parameter if [n for n, _ in args.parameter].count(name) > 1})
        if twice:
            raise RunError(f"-p {twice[0]} is given more than once; give each parameter once")
        labels = checkpoint_labels(args.notebook, args.scale, dict(args.parameter))
        for found in checkpoint.pending(chapter_folder(args.notebook), labels):
            print(RESUME_NOTE.format(found))
        out = run(args.notebook, args.scale, dict(args.parameter), args.output)
    except KeyboardInterrupt:
        print(checkpoint.interruption_message(chapter_folder(args.notebook), started, labels), file=sys.stderr)
        return 130
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
