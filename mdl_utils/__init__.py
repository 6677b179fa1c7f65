"""mdl_utils: description lengths of deep learning models, in bits.

A companion library to the book reproducing Blier & Ollivier, "The Description
Length of Deep Learning Models" (NeurIPS 2018). Every code maps a dataset, a
model recipe and a seed to a :class:`mdl_utils.results.CodeResult`; the
chapter -> module table is in :mod:`mdl_utils.codes`, the layers in
docs/ARCHITECTURE.md.

Importing the package sets portable numerics (:mod:`mdl_utils.numerics`) before
torch computes anything: import ``mdl_utils`` before running torch code.
"""

from importlib.metadata import PackageNotFoundError, version

from . import numerics

numerics.configure()

try:
    __version__ = version("mdl_utils")
except PackageNotFoundError:  # imported from a source tree that was not pip-installed (e.g. PYTHONPATH=.)
    __version__ = "0+source"
