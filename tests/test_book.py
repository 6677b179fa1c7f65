"""The book builds with -W -n --keep-going from the stored results (no training), and shows them."""

import re
from pathlib import Path

import pytest

from mdl_utils import codes, results, tables

from .conftest import ROOT


def _text(path: Path) -> str:
    html = re.sub(r"<script.*?</script>", "", path.read_text(), flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_book_pages_exist(built_book_html):
    assert (built_book_html / "index.html").is_file()
    for c in codes.CHAPTERS:
        assert (built_book_html / f"notebooks/{c.number:02d}_{c.name}.html").is_file(), c.name


@pytest.mark.parametrize("chapter", [c.name for c in codes.CHAPTERS])
def test_each_chapter_shows_its_stored_results(built_book_html, chapter):
    """Every committed result of a chapter appears on its page: its model and its codelength."""
    c = codes.chapter(chapter)
    page = _text(built_book_html / f"notebooks/{c.number:02d}_{c.name}.html")
    assert "Traceback" not in page and tables.NOT_COMPUTED not in page
    stored = [r for code in c.codes for r in results.stored(chapter, ROOT / "results", code=code)
              if r.scale in ("cpu", "paper")]
    assert stored, f"no committed results for {chapter}"
    for r in stored:
        kb = r.codelength_bits / 1000
        shown = {f"{kb:,.{d}f}" for d in (1, 2, 3)} | {f"{r.codelength_bits / r.n:.3f}", f"{r.codelength_bits:,.1f}",
                                                        f"{r.parts.get('file_bytes', -1):,.0f}"}
        assert any(s in page for s in shown), (chapter, r.dataset, r.model, sorted(shown))
        assert r.model.split("-")[0] in page


def test_summary_has_both_tables_and_our_numbers(built_book_html):
    summary = (built_book_html / "book" / "summary.html").read_text()
    assert summary.count("<table") >= 2
    text = _text(built_book_html / "book" / "summary.html")
    assert "199.3" in text and "166.1" in text  # the uniform codes
