"""mdl_utils: description lengths of deep learning models, in bits.

A companion library to the book reproducing Blier & Ollivier, "The Description
Length of Deep Learning Models" (NeurIPS 2018). Every code maps a dataset, a
model recipe and a seed to a :class:`mdl_utils.results.CodeResult`.
"""

__version__ = "0.1.0"
