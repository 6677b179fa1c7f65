"""pytest hook: let nbval (--nbval-lax) run the book's jupytext MyST notebooks.

nbval collects ``.ipynb`` files only; a ``.md`` file whose front matter names a
kernelspec is read with jupytext instead. Text notebooks carry no outputs, so
nbval checks that every cell runs (in the notebook's folder, as the book does).
"""

from __future__ import annotations

import types
from unittest import mock

import pytest


def _is_text_notebook(path) -> bool:
    if path.suffix != ".md":
        return False
    head = path.read_text(errors="replace")[:600]
    return head.startswith("---") and "kernelspec" in head


def pytest_collect_file(file_path, parent):
    opt = parent.config.option
    if not (getattr(opt, "nbval", False) or getattr(opt, "nbval_lax", False)) or not _is_text_notebook(file_path):
        return None
    import jupytext
    import nbval.plugin

    class JupytextNotebook(nbval.plugin.IPyNbFile):
        def collect(self):
            reader = types.SimpleNamespace(read=lambda path, as_version: jupytext.read(path))
            with mock.patch.object(nbval.plugin, "nbformat", reader):
                yield from super().collect()

    return JupytextNotebook.from_parent(parent, path=file_path)
