"""The book builds with -W -n --keep-going from the stored results (no training)."""

import os
import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT


def _text(path: Path) -> str:
    html = re.sub(r"<script.*?</script>", "", path.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_book_builds_without_warnings(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MDL_RESULTS"}
    env["MDL_OFFLINE"] = "1"  # building never needs data: it must not try to download
    jb = Path(sys.executable).with_name("jupyter-book")
    proc = subprocess.run([str(jb), "build", str(ROOT), "--path-output", str(tmp_path), "-W", "-n", "--keep-going"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    html = tmp_path / "_build" / "html"
    assert (html / "index.html").is_file()
    uniform = _text(html / "notebooks" / "01_uniform.html")
    assert "199.3" in uniform and "166.1" in uniform
    assert "Traceback" not in uniform
    summary = (html / "book" / "summary.html").read_text()
    assert summary.count("<table") == 2
    assert "199" in _text(html / "book" / "summary.html")
