from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]


def real_data_root() -> Path | None:
    """The MDL_DATA folder when it holds the real datasets, else None (those tests skip)."""
    env = os.environ.get("MDL_DATA")
    return Path(env) if env and Path(env).is_dir() else None


needs_data = pytest.mark.skipif(real_data_root() is None, reason="set MDL_DATA to run tests on real MNIST/CIFAR-10")


@pytest.fixture
def results_tmp(tmp_path, monkeypatch):
    """A scratch results store, so tests never touch the committed results/."""
    monkeypatch.setenv("MDL_RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


@pytest.fixture
def one_torch_thread():
    """One torch thread (much faster than two on a loaded 2-core CPU); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ------------------------------------------------------------------ the book


def book_notebooks() -> list[str]:
    """The pages of the table of contents that are notebooks (relative paths without suffix)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", []) for c in part["chapters"]]
    return [f for f in files if "kernelspec" in (ROOT / f"{f}.md").read_text()[:600]]


def jupyter_book(project: Path, dest: Path, env: dict) -> Path:
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(project), "--path-output", str(dest), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return dest / "_build" / "html"


def build_book(dest: Path, executed: dict[str, Path] | None = None) -> Path:
    """Build the book into ``dest`` as CI does and return its ``_build/html``: from the notebooks nbval executed
    in this session (``executed``: page -> executed .ipynb; nothing is executed again), else from the sources
    (jupyter-book executes every notebook, reading the stored results)."""
    env = {k: v for k, v in os.environ.items() if k != "MDL_RESULTS"}
    env["MDL_OFFLINE"] = "1"  # building never needs data: it must not try to download
    if not executed:
        return jupyter_book(ROOT, dest, env)
    project = dest / "project"
    project.mkdir(parents=True)
    for item in ("_config.yml", "_toc.yml", "_static", "book"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, project / item)
    config = yaml.safe_load((project / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (project / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    for page, ipynb in executed.items():
        (project / f"{page}.md").unlink(missing_ok=True)
        (project / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ipynb, project / f"{page}.ipynb")
    return jupyter_book(project, dest, env)


@pytest.fixture(scope="session")
def built_book_html(request, tmp_path_factory) -> Path:
    """The book built once per session (from nbval's executions when nbval ran every notebook page)."""
    executed = request.config.executed_notebooks
    complete = all(page in executed for page in book_notebooks())
    return build_book(tmp_path_factory.mktemp("book"), executed if complete else None)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say, in the run's last lines, when the tests on real MNIST/CIFAR-10 were skipped and how to run them."""
    if real_data_root() is None:
        skipped = [r for r in terminalreporter.stats.get("skipped", []) if "MDL_DATA" in str(r.longrepr)]
        terminalreporter.write_line(f"NOTE: {len(skipped)} test(s) on real MNIST/CIFAR-10 were skipped: set MDL_DATA to "
                                    "a folder holding mnist/ and cifar10/ (.ci/run sets MDL_DATA=../shared/data)",
                                    yellow=True, bold=True)
