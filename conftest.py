"""pytest hooks: nbval runs the book's jupytext notebooks once, and the book is built from what it ran.

nbval collects ``.ipynb`` files only; a ``.md`` file whose front matter names a
kernelspec is read with jupytext instead. nbval executes every cell of every
chapter in the notebook's folder, reading the stored results (the book's own
execution: ``recompute=False``), and fails on any error. The outputs it saw are
kept and written as executed notebooks, from which ``tests/test_book.py`` builds
the book without executing anything again: each notebook is executed once per
``make test``. nbval's items run first so that the book can use them.
"""

from __future__ import annotations

import mdl_utils  # noqa: F401  portable numerics (mdl_utils.numerics) before any test runs torch code

import tempfile
import types
from pathlib import Path
from unittest import mock


ROOT = Path(__file__).resolve().parent


def _is_text_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(errors="replace")[:600]
    return head.startswith("---") and "kernelspec" in head


def pytest_configure(config):
    config.executed_notebooks = {}  # relative path of the .md -> executed .ipynb written from nbval's outputs
    config.executed_dir = Path(tempfile.mkdtemp(prefix="mdl-executed-notebooks-"))


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)) or not _is_text_notebook(file_path):
        return None
    import jupytext
    import nbformat
    import nbval.plugin

    class JupytextNotebook(nbval.plugin.IPyNbFile):
        def collect(self):
            reader = types.SimpleNamespace(read=lambda path, as_version: jupytext.read(path))
            with mock.patch.object(nbval.plugin, "nbformat", reader):
                self.cell_items = list(super().collect())
            yield from self.cell_items

        def teardown(self):
            super().teardown()
            if all(item.test_outputs is not None for item in self.cell_items):  # every cell ran
                for count, item in enumerate(self.cell_items, 1):
                    item.cell.outputs = [_output(o, count) for o in item.test_outputs]
                    item.cell.execution_count = count
                rel = Path(self.path).resolve().relative_to(ROOT)
                out = self.config.executed_dir / rel.with_suffix(".ipynb")
                out.parent.mkdir(parents=True, exist_ok=True)
                nbformat.write(self.nb, str(out))
                self.config.executed_notebooks[str(rel.with_suffix(""))] = out

    return JupytextNotebook.from_parent(parent, path=file_path)


def _output(o, count: int):
    """An nbval output as an nbformat output node."""
    import nbformat

    if o["output_type"] == "stream":
        return nbformat.v4.new_output("stream", name=o["name"], text=o["text"])
    if o["output_type"] == "error":
        return nbformat.v4.new_output("error", ename=o["ename"], evalue=o["evalue"], traceback=o["traceback"])
    kind = o["output_type"]
    extra = {"execution_count": count} if kind == "execute_result" else {}
    return nbformat.v4.new_output(kind, data=o["data"], metadata=o.get("metadata", {}), **extra)


def pytest_collection_modifyitems(session, config, items):
    """nbval's notebook cells first (the book is built from their outputs), then everything else."""
    items.sort(key=lambda item: 0 if type(item).__module__.startswith("nbval") else 1)
