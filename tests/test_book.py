"""The book builds with -W -n --keep-going from the stored results (no training), and shows them."""

import html
import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from mdl_utils import codes, results, scales, tables

from .conftest import ROOT


def _text(path: Path) -> str:
    page = re.sub(r"<script.*?</script>", "", path.read_text(), flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))).replace("\u2019", "'")


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
    assert summary.count("<table") >= 3  # Tables 1 and 2, and what differs from the paper scale
    text = _text(built_book_html / "book" / "summary.html")
    assert "199.3" in text and "166.1" in text  # the uniform codes


def test_summary_shows_every_best_result_its_scale_and_the_way_to_the_paper_scale(built_book_html):
    """The summary opens with the overview figure, shows each of our best results (codelength and model) with its
    scale in words, and says how to compute the paper scale."""
    page = built_book_html / "book" / "summary.html"
    soup = BeautifulSoup(page.read_text(), "html.parser")
    article = soup.select_one("article") or soup
    first = article.find(["img", "table"])
    assert first is not None and first.name == "img", "the summary must open with its overview figure"
    text = _text(page)
    best = [r for r in tables.best_results(ROOT / "results").values() if r is not None]
    assert best
    for r in best:
        assert tables.codelength_kbits(r) in text and r.model in text, (r.code, r.dataset, r.model)
        assert scales.SCALE_WORDS[r.scale] in text, r.scale
    for words in ("docs/PAPER_SCALE.md", "make paper", "python -m mdl_utils.jobs plan --scale paper"):
        assert words in text, words


@pytest.mark.parametrize("chapter", [c.name for c in codes.CHAPTERS])
def test_chapter_pages_show_parameters_and_the_compute_call_only(built_book_html, chapter):
    """Prose, tables and figures, not code: a chapter shows its parameters cell and the one call that computes its
    code; every other cell's source is folded behind the theme's toggle (tag hide-input)."""
    c = codes.chapter(chapter)
    soup = BeautifulSoup((built_book_html / f"notebooks/{c.number:02d}_{c.name}.html").read_text(), "html.parser")
    cells = soup.select("div.cell")
    shown = [cell for cell in cells if not {"tag_hide-input", "tag_remove-input"} & set(cell.get("class", []))]
    assert len(shown) <= 2 and len(cells) > len(shown), [cell.get_text(" ", strip=True)[:80] for cell in shown]
    assert "chapters.get_all" in shown[-1].get_text(), "the visible call must be the one that computes the code"


def test_bibliography_labels_are_author_year_with_accents_kept():
    """book/_ext/authoryear.py: the list's labels read as the text's citations do; same labels get a, b."""
    import importlib.util

    from pybtex.database import Entry, Person

    spec = importlib.util.spec_from_file_location("authoryear", ROOT / "book" / "_ext" / "authoryear.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def entry(year, *authors):
        return Entry("article", fields={"year": year, "title": "t"}, persons={"author": [Person(a) for a in authors]})

    entries = [entry("2007", "Grünwald, Peter D."), entry("1993", "Hinton, Geoffrey E.", "van Camp, Drew"),
               entry("2012", "van Erven, Tim", "Grünwald, Peter", "de Rooij, Steven"),
               entry("2018", "Blier, Léonard"), entry("2018", "Blier, Léonard")]
    assert list(mod.AuthorYearLabels().format_labels(entries)) == [
        "Grünwald, 2007", "Hinton and van Camp, 1993", "van Erven et al., 2012", "Blier, 2018a", "Blier, 2018b"]


def test_the_bibliography_page_lists_author_year_labels(built_book_html):
    page = BeautifulSoup((built_book_html / "book" / "bibliography.html").read_text(encoding="utf-8"), "html.parser")
    text = page.get_text(" ").replace("\xa0", " ")
    assert "Grünwald, 2007" in text and "Blier and Ollivier, 2018" in text, text[:500]


def test_each_inline_script_is_kept_once():
    """book/_ext/dedupe_scripts.py: sphinx-thebe's inline config came twice (filename None, then ""), a
    SyntaxError for the second `const`; scripts that differ in a body or attribute all stay."""
    import importlib.util

    from sphinx.builders.html._assets import _JavaScript

    spec = importlib.util.spec_from_file_location("dedupe_scripts", ROOT / "book" / "_ext" / "dedupe_scripts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    scripts = [_JavaScript(None, body="const A = 1"), _JavaScript("x.js"), _JavaScript("", body="const A = 1"),
               _JavaScript(None, body="const B = 1"), _JavaScript("x.js", priority=600),
               _JavaScript("x.js", **{"async": "async"})]
    builders_list = list(scripts)
    context = {"script_files": builders_list}
    mod._unique_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] is builders_list  # later extensions add to the builder's list (MathJax)
    assert builders_list == [scripts[0], scripts[1], scripts[3], scripts[5]]
