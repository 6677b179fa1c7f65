"""mdl_utils: description lengths of deep learning models, in bits.

A companion library to the book reproducing Blier & Ollivier, "The Description
Length of Deep Learning Models" (NeurIPS 2018). Every code maps a dataset, a
model recipe and a seed to a :class:`mdl_utils.results.CodeResult`; the
chapter -> module table is in :mod:`mdl_utils.codes`, the layers in
docs/ARCHITECTURE.md. Your own model and data: ``mdl_utils.prequential(model_fn,
x, y)``, ``uniform``, ``switch``, ``compress_labels``, ``decompress_labels``
(:mod:`mdl_utils.api`; the command lines are ``python -m mdl_utils.compress`` and ``.decompress``).

Importing the package sets portable numerics (:mod:`mdl_utils.numerics`) before
torch computes anything: import ``mdl_utils`` before running torch code. Then it
imports the modules named in ``MDL_PLUGINS`` (comma-separated), where your models
and datasets are registered, so that every command line and worker sees them.
"""

import importlib
import os
from importlib.metadata import PackageNotFoundError, version

from . import numerics

numerics.configure()

try:
    __version__ = version("mdl_utils")
except PackageNotFoundError:  # imported from a source tree that was not pip-installed (e.g. PYTHONPATH=.)
    __version__ = "0+source"

API = ("dataset", "recipe", "uniform", "prequential", "switch", "compress_labels", "decompress_labels", "register_model",
       "register_dataset")


def __getattr__(name: str):
    """``mdl_utils.prequential`` and the rest of :data:`API`, from :mod:`mdl_utils.api` on first use."""
    if name in API:
        return getattr(importlib.import_module("mdl_utils.api"), name)
    raise AttributeError(f"module 'mdl_utils' has no attribute {name!r}")


for _plugin in filter(None, (p.strip() for p in os.environ.get("MDL_PLUGINS", "").split(","))):
    try:
        importlib.import_module(_plugin)
    except ImportError as _e:
        raise ImportError(f"MDL_PLUGINS names {_plugin!r}, which cannot be imported ({_e}); put it on PYTHONPATH or "
                          "fix MDL_PLUGINS") from None
