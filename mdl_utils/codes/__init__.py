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
Results are stored and read through :func:`mdl_utils.chapters.get`.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType


@dataclasses.dataclass(frozen=True)
class Chapter:
    """One chapter of the book: its name (= module = results folder), notebook, and the codes it stores."""

    name: str
    number: int
    codes: tuple[str, ...]
    title: str

    @property
    def notebook(self) -> str:
        return f"notebooks/{self.number:02d}_{self.name}.md"

    @property
    def module(self) -> ModuleType:
        return importlib.import_module(f"mdl_utils.codes.{self.name}")


CHAPTERS = (
    Chapter("uniform", 1, ("uniform", "shannon_heldout"), "The uniform code and Shannon codes"),
    Chapter("two_part", 2, ("two_part",), "Two-part codes with float32 parameters"),
    Chapter("network_compression", 3, ("network_compression",), "Network compression as a two-part code"),
    Chapter("intrinsic_dimension", 4, ("intrinsic_dimension",), "Intrinsic dimension: random affine subspaces"),
    Chapter("variational", 5, ("variational",), "The variational (bits-back) code"),
    Chapter("prequential", 6, ("prequential",), "The prequential code"),
    Chapter("switch", 7, ("switch", "self_switch"), "Switching between models"),
    Chapter("fake_labels", 8, ("variational", "two_part"), "Random labels cannot be compressed"),
    Chapter("bytes", 9, ("bytes",), "From bounds to bytes"),
)
BY_NAME = {c.name: c for c in CHAPTERS}


def chapter(name: str) -> Chapter:
    """The chapter called ``name``; ValueError listing the chapters otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"unknown chapter {name!r}; chapters: {', '.join(BY_NAME)}")
    return BY_NAME[name]
