"""mdl_utils' core imports on a bare PyTorch machine (torch, numpy, pillow, tqdm): the book's packages, the coder's
constriction and submitit are imported only where they are used."""

import os
import subprocess
import sys
import textwrap

from .conftest import ROOT

BLOCKED = ("matplotlib", "IPython", "papermill", "jupytext", "constriction", "nbformat", "submitit", "yaml")
CORE = ("data", "models", "training", "codes", "results", "jobs", "chapters", "scales", "checkpoint", "bits",
        "bayesian", "bitio", "coder", "tables")

SCRIPT = textwrap.dedent(f"""
    import importlib, importlib.abc, sys

    BLOCKED = {BLOCKED!r}

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: not installed on a bare PyTorch machine")

    sys.meta_path.insert(0, Block())
    for name in {CORE!r}:
        importlib.import_module("mdl_utils." + name)
    from mdl_utils import codes, jobs
    for chapter in codes.CHAPTERS:
        chapter.module
    assert jobs.main(["plan", "--scale", "smoke", "--datasets", "synthetic", "--chapters", "prequential"]) == 0
    r = codes.chapter("prequential").module.compute("synthetic", "mlp", "smoke", device="cpu", progress=False)
    assert len(r.arrays["bits"]) == r.n
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("bare import ok", repr(r.codelength_bits))
""")


def test_core_imports_and_trains_without_the_book_packages(tmp_path):
    env = {**os.environ, "MDL_RESULTS": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    bits = float(proc.stdout.split("bare import ok")[1].split()[0])
    from mdl_utils.codes import prequential

    here = prequential.compute("synthetic", "mlp", "smoke", device="cpu", progress=False, root=tmp_path / "here")
    assert bits == here.codelength_bits  # the same code, to the bit, in the bare process and in this one
