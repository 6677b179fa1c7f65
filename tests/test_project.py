"""Project-level invariants: pins agree, committed results are sound."""

import re
import tomllib

import pytest

from mdl_utils import codes, results
from mdl_utils.tables import paper_tables

from .conftest import ROOT


def _pins_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(meta["dependencies"]) + [d for group in meta["optional-dependencies"].values() for d in group]
    return {d.split("==")[0].lower(): d for d in deps}


def _pins_environment():
    lines = (ROOT / "environment.yml").read_text().splitlines()
    pins = [l.strip()[2:] for l in lines if re.match(r"\s+- [A-Za-z].*==", l)]
    return {d.split("==")[0].lower(): d for d in pins}


def test_environment_yml_mirrors_pyproject():
    assert _pins_environment() == _pins_pyproject()
    assert all("==" in d for d in _pins_pyproject().values()), "pin every dependency"
    assert "python=3.11" in (ROOT / "environment.yml").read_text()


def test_ci_calls_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme.split("\n\n")[1] and "make test" in readme.split("\n\n")[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


COMMITTED = sorted(p for p in [*(ROOT / "results").glob("*/*.json"), *(ROOT / "results").glob("*/*/*.json")]
                   if not any(part.startswith(".") for part in p.relative_to(ROOT / "results").parts))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_results_parse_and_carry_provenance(path):
    r = results.load_file(path)
    assert r.scale in ("cpu", "paper"), "smoke results are not committed"
    chapter = path.relative_to(ROOT / "results").parts[0]
    assert path == results.path_of(r, chapter, ROOT / "results")  # stored where its chapter and code say
    assert r.code in codes.chapter(chapter).codes
    for key in ("git_commit", "device", "started", "wall_seconds", "data_source", "torch"):
        assert r.provenance.get(key) is not None, key


def test_paper_tables_hold_both_tables():
    t = paper_tables()["tables"]
    assert [r["code"] for r in t["1"]["rows"]][0] == "uniform" and len(t["1"]["rows"]) == 6
    assert len(t["2"]["rows"]) == 4
    assert t["1"]["rows"][-1]["mnist"]["kbits"] == 4.10


@pytest.mark.parametrize("name, ignored", [
    ("results/prequential/mnist-mlp-smoke.json", True), ("results/prequential/mnist-mlp-smoke.bits.npy", True),
    ("results/prequential/mnist-mlp-smoke-seed1.json", True), ("results/switch/self_switch/mnist-mlp-smoke.json", True),
    ("results/prequential/runs/06_prequential-smoke-datasets=mnist.ipynb", True),
    ("results/prequential/mnist-mlp-cpu.json", False), ("results/prequential/mnist-mlp-cpu.bits.npy", False)])
def test_smoke_outputs_never_go_into_git(name, ignored):
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    check = subprocess.run(["git", "check-ignore", "-q", "--no-index", name], cwd=ROOT)
    assert (check.returncode == 0) == ignored
