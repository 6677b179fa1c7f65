"""The built book as a reader's browser shows it, offline.

Every page of `_build/html` is loaded in headless Chromium with JavaScript on and the
network cut off, then its rendered DOM is checked: math typeset by the MathJax copy
shipped with the book (no raw LaTeX), no raw citations, no tracebacks or stderr blocks
in outputs, no table wider than the content column, and no figure shrunk (a legend
wider than its axes makes the image wider, and the page then shrinks its text).

Also a small command line for `make screenshots`:
    python tests/test_browser.py _build/html _build/screenshots
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
SKIP_PAGES = {"genindex.html", "search.html"}
WIDTH, HEIGHT = 1400, 3000  # a desktop window; the content column is what the theme leaves at this width
TOLERANCE_PX = 2
MIN_FIGURE_SCALE = 0.75  # a figure shown smaller than this (a legend wider than the axes) shrinks its fonts
MIN_WINDOW = 500  # headless Chromium's narrowest window
PHONE = 400  # a phone held upright

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--allow-file-access-from-files",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: a CDN script would fail to load, as for an offline reader
    "--virtual-time-budget=10000",
]

# Inserted first in the <head> of a copy of each page: the script errors a reader's console would show.
ERRORS_JS = ('<script>window.__pageErrors = []; addEventListener("error", function (e) { if (e.message) '
             'window.__pageErrors.push(e.message); });</script>')

# Appended to a copy of each page: once MathJax has typeset and fonts are in, write the widths onto <body>.
MEASURE_JS = """
<script>
(function () {
  function measure() {
    var worst = null, info = "", tables = document.querySelectorAll("table");
    tables.forEach(function (t) {
      var col = t.closest('[role="main"], article, main') || document.body, cs = getComputedStyle(col);
      var avail = col.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
      var w = Math.max(t.scrollWidth, t.getBoundingClientRect().width);
      if (worst === null || w - avail > worst) { worst = w - avail; info = Math.round(w) + " px in a " + Math.round(avail) + " px column"; }
    });
    var b = document.body, scale = 1, which = "";
    document.querySelectorAll("div.cell_output img").forEach(function (im) {  // figures: shrunk fonts?
      var r = im.naturalWidth ? im.getBoundingClientRect().width / im.naturalWidth : 1;
      if (r < scale) { scale = r; which = im.naturalWidth + " px shown at " + Math.round(im.getBoundingClientRect().width) + " px"; }
    });
    b.setAttribute("data-smallest-figure-scale", scale.toFixed(3));
    b.setAttribute("data-smallest-figure", which);
    b.setAttribute("data-table-count", tables.length);
    b.setAttribute("data-stacked-tables", document.querySelectorAll("table.stacked").length);
    b.setAttribute("data-widest-table-overflow", worst === null ? 0 : Math.round(worst));
    b.setAttribute("data-widest-table", info);
    var cut = 0, cutWhat = "";  // wider than the window, with no scrolling box around it: cut off
    document.querySelectorAll("table, img, svg, pre, mjx-container, figure").forEach(function (el) {
      var over = el.getBoundingClientRect().right - window.innerWidth;
      if (over <= cut) return;
      for (var p = el.parentElement; p && p !== document.body; p = p.parentElement) {
        var ox = getComputedStyle(p).overflowX;
        if (ox === "auto" || ox === "scroll") return;
      }
      cut = over; cutWhat = "<" + el.tagName.toLowerCase() + "> ends " + Math.round(over) + " px past a " +
        window.innerWidth + " px window";
    });
    var hidden = 0, hiddenWhat = "";  // the paper's column: every cell inside the window, without scrolling
    tables.forEach(function (t) {
      t.querySelectorAll("thead th").forEach(function (th, i) {
        if (!/paper/i.test(th.textContent)) return;
        t.querySelectorAll("tbody tr").forEach(function (tr) {
          var td = tr.children[i], r = td ? td.getBoundingClientRect() : null;
          if (!r || r.width === 0 && r.height === 0) return;
          var over = Math.max(r.right - window.innerWidth, -r.left);
          if (over > hidden) { hidden = over; hiddenWhat = "'" + th.textContent.trim() + "' ends " + Math.round(over) +
                                                           " px outside a " + window.innerWidth + " px window"; }
        });
      });
    });
    b.setAttribute("data-paper-column-hidden", Math.round(hidden));
    b.setAttribute("data-paper-column-hidden-what", hiddenWhat);
    b.setAttribute("data-cut-off", Math.round(cut));
    b.setAttribute("data-cut-off-what", cutWhat);
    b.setAttribute("data-page-height", document.documentElement.scrollHeight);
    b.setAttribute("data-viewport-height", window.innerHeight);
    b.setAttribute("data-page-errors", (window.__pageErrors || []).join(" | "));
    b.setAttribute("data-browser-check", "done");
    if (window.parent !== window) {  // in make screenshots' phone-width frame: tell the frame's page
      var d = {};
      for (var i = 0; i < b.attributes.length; i++) d[b.attributes[i].name] = b.attributes[i].value;
      window.parent.postMessage(d, "*");
    }
  }
  window.addEventListener("load", function () {
    var mj = window.MathJax, waits = [document.fonts ? document.fonts.ready : null];
    if (mj && mj.startup && mj.startup.promise) waits.push(mj.startup.promise);
    Promise.all(waits).then(measure, measure);
  });
})();
</script>
"""


@pytest.fixture(scope="session")
def chromium() -> str:
    if CHROMIUM is None:
        reason = "chromium not found on PATH (apt-get install -y chromium): browser checks skipped"
        print(reason)
        pytest.skip(reason)
    return CHROMIUM


def book_pages(html_dir: Path) -> list[Path]:
    """The pages a reader reads: not the search page, assets, or redirects (the root index.html)."""
    return sorted(p for p in html_dir.rglob("*.html")
                  if p.name not in SKIP_PAGES and not p.relative_to(html_dir).parts[0].startswith("_")
                  and not re.search(r'http-equiv="refresh"', p.read_text(encoding="utf-8")[:2000], flags=re.I))


def render(page: Path, chromium: str, width: int = WIDTH, height: int = HEIGHT, screenshot: Path | None = None) -> str:
    """The page's DOM after its scripts ran (or a PNG of it), from a copy that carries MEASURE_JS.

    Headless Chromium lays pages out at least MIN_WINDOW px wide, so a narrower page is shown
    in a frame of that width (its measurements are copied onto the frame page's <body>).
    """
    html = page.read_text(encoding="utf-8")
    base = f'<base href="{page.parent.resolve().as_uri()}/">'
    html = re.sub(r"<head(\s[^>]*)?>", lambda m: m.group(0) + base + ERRORS_JS, html, count=1)
    html = html.replace("</body>", MEASURE_JS + "</body>") if "</body>" in html else html + MEASURE_JS
    with tempfile.TemporaryDirectory(prefix="browsercheck-", ignore_cleanup_errors=True) as tmp:
        target = Path(tmp) / page.name
        target.write_text(html, encoding="utf-8")
        if width < MIN_WINDOW:
            frame = (f'<html><body style="margin:0"><iframe src="{target.as_uri()}" style="border:0;width:{width}px;'
                     f'height:{height}px"></iframe><script>addEventListener("message", function (e) {{ for (var k in '
                     'e.data) document.body.setAttribute(k, e.data[k]); });</script></body></html>')
            target = Path(tmp) / "frame.html"
            target.write_text(frame, encoding="utf-8")
        out = ["--screenshot=" + str(screenshot)] if screenshot else ["--dump-dom"]
        proc = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/profile",
                               f"--window-size={max(width, MIN_WINDOW)},{height}", *out, target.as_uri()],
                              capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-1000:]}")
    if screenshot and width < MIN_WINDOW:
        from PIL import Image
        with Image.open(screenshot) as im:
            im.crop((0, 0, width, im.height)).save(screenshot)
    return proc.stdout


def _classes(el) -> list[str]:
    return el.get("class") or []


def _visible_text(soup, skip) -> str:
    parts = []
    for s in soup.find_all(string=True):
        if not any(p.name in skip or "math" in _classes(p) or p.name.startswith("mjx-") for p in s.parents):
            parts.append(str(s))
    return re.sub(r"\s+", " ", " ".join(parts))


def _around(text: str, i: int) -> str:
    return "…" + text[max(0, i - 40):i + 40].strip() + "…"


def page_problems(dom: str, width: int = WIDTH) -> list[str]:
    """What a reader would see wrong on a rendered page (the DOM as Chromium dumps it), `width` px wide.

    On a desktop no table may be wider than the content column; on a phone (below MIN_WINDOW) a table,
    figure or formula may be wider than the screen if it scrolls sideways, but nothing may be cut off."""
    soup = BeautifulSoup(dom, "html.parser")
    problems = []
    math = [el for el in soup.find_all(["span", "div"]) if "math" in _classes(el)]
    raw = [el for el in math if el.find("mjx-container") is None]
    if raw:
        problems.append(f"{len(raw)} of {len(math)} math elements not typeset by MathJax, "
                        f"e.g. {raw[0].get_text()[:60]!r}")
    prose = _visible_text(soup, {"script", "style", "noscript", "pre", "code", "textarea", "head"})
    for pattern, what in [(r"\$\$|\\\(|\\\)|\\\[|\\\]", "raw LaTeX delimiters"),
                          (r"\\[A-Za-z]{2,}", "a raw LaTeX command"),
                          (r"\{cite[a-z:]*\}|\\cite", "a raw citation")]:
        m = re.search(pattern, prose)
        if m:
            problems.append(f"{what} in the text: {_around(prose, m.start())!r}")
    text = _visible_text(soup, {"script", "style", "noscript", "head"})
    if "Traceback (most recent call last)" in text:
        problems.append("a Python traceback in an output: "
                        + repr(_around(text, text.index("Traceback (most recent call last)"))))
    stderr = [el for el in soup.find_all(True) if any("stderr" in c or c == "traceback" for c in _classes(el))]
    if stderr:
        problems.append(f"a stderr/traceback output block: {stderr[0].get_text(' ', strip=True)[:120]!r}")
    body = soup.body or soup
    if body.get("data-page-errors"):
        problems.append(f"a script error in the console: {body['data-page-errors'][:160]!r}")
    if body.get("data-browser-check") != "done":
        problems.append("the width check did not run (page scripts failed or timed out)")
    elif width >= MIN_WINDOW and int(body.get("data-widest-table-overflow", "0")) > TOLERANCE_PX:
        problems.append(f"a table overflows the content column by {body['data-widest-table-overflow']} px "
                        f"({body.get('data-widest-table')})")
    if int(body.get("data-cut-off", "0")) > TOLERANCE_PX:
        problems.append(f"cut off at this width, no sideways scrolling: {body.get('data-cut-off-what')}")
    if int(body.get("data-paper-column-hidden", "0")) > TOLERANCE_PX:
        problems.append(f"the paper's column is off-screen until the reader scrolls sideways: "
                        f"{body.get('data-paper-column-hidden-what')}")
    if float(body.get("data-smallest-figure-scale", "1")) < MIN_FIGURE_SCALE:
        problems.append(f"a figure is shown at {float(body['data-smallest-figure-scale']):.0%} of its size, its "
                        f"text shrunk with it ({body.get('data-smallest-figure')}): make it narrower")
    return problems


def check_page(page: Path, html_dir: Path, chromium: str, width: int = WIDTH) -> list[tuple[str, str]]:
    name = f"{page.relative_to(html_dir)} at {width} px"
    try:
        return [(name, p) for p in page_problems(render(page, chromium, width=width), width)]
    except Exception as exc:  # a page that does not load is a finding, reported with the others
        return [(name, f"could not be rendered: {exc}")]


# --- the checker itself must be able to fail -------------------------------------------------

GOOD = """<html><head></head><body data-browser-check="done" data-widest-table-overflow="0">
<article role="main"><p>The cost is <span class="math notranslate nohighlight"><mjx-container jax="CHTML">
<mjx-math>n log K</mjx-math></mjx-container></span> bits {Grünwald, 2007}.</p>
<div class="cell_input"><pre>print("$$")  # code may say anything</pre></div>
<div class="cell_output"><div class="output stream"><pre>199.3 kbits</pre></div></div>
<table><tr><td>1</td></tr></table></article></body></html>"""

BAD = """<html><head></head><body data-browser-check="done" data-widest-table-overflow="120"
 data-widest-table="920 px in a 800 px column" data-smallest-figure-scale="0.500"
 data-smallest-figure="1600 px shown at 800 px" data-cut-off="168"
 data-cut-off-what="&lt;img&gt; ends 168 px past a 400 px window" data-paper-column-hidden="310"
 data-paper-column-hidden-what="'paper (kbits)' ends 310 px outside a 400 px window"><article role="main">
<p>$$x$$ and <span class="math notranslate nohighlight">\\(n \\log_2 K\\)</span> as in {cite}`blier2018description`.</p>
<div class="cell_output"><div class="output stderr"><pre>Traceback (most recent call last):
  File "x.py", line 1
ValueError: nope</pre></div></div>
<table style="width:920px"><tr><td>wide</td></tr></table></article></body></html>"""


def test_checker_passes_a_good_page():
    assert page_problems(GOOD) == []


def test_checker_flags_a_bad_page():
    problems = "\n".join(page_problems(BAD))
    for expected in ["not typeset by MathJax", "raw LaTeX delimiters", "raw citation", "traceback in an output",
                     "stderr/traceback output block", "overflows the content column by 120 px",
                     "figure is shown at 50% of its size", "cut off at this width, no sideways scrolling: <img>",
                     "the paper's column is off-screen until the reader scrolls sideways: 'paper (kbits)'"]:
        assert expected in problems, (expected, problems)
    assert "width check did not run" in "\n".join(page_problems("<html><body><p>x</p></body></html>"))


def test_width_check_measures_in_a_real_browser(chromium, tmp_path):
    page = tmp_path / "wide.html"
    page.write_text('<html><head></head><body><article role="main" style="width:600px;padding:0 20px">'
                    '<table><tr><td style="min-width:900px">wide</td></tr></table></article></body></html>')
    body = BeautifulSoup(render(page, chromium), "html.parser").body
    assert body["data-browser-check"] == "done"
    assert 280 <= int(body["data-widest-table-overflow"]) <= 320, body.attrs
    assert any("overflows the content column" in p for p in page_problems(str(body)))


def test_a_cut_off_figure_is_caught_at_phone_width(chromium, tmp_path):
    """A figure wider than a phone with no scrolling box around it is cut off; in one that scrolls it is not."""
    img = '<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" style="width:560px;max-width:none;height:10px">'
    page = tmp_path / "cut.html"
    page.write_text(f'<html><head></head><body><article role="main"><p>x</p>{img}</article></body></html>')
    problems = page_problems(render(page, chromium, width=PHONE), PHONE)
    assert any("cut off" in p and "<img> ends" in p for p in problems), problems
    page.write_text(f'<html><head></head><body><article role="main"><div style="overflow-x:auto">{img}</div>'
                    '</article></body></html>')
    assert page_problems(render(page, chromium, width=PHONE), PHONE) == []


def test_a_wide_table_keeps_the_papers_column_on_a_phone(chromium, tmp_path):
    """A table wider than a phone, in a box that scrolls: its paper column starts off-screen (flagged); with the
    book's _static/phone_tables.js and book.css it becomes one card per row and every cell is on screen."""
    head = "".join(f"<th>column {i}</th>" for i in range(8)) + "<th>paper (kbits)</th>"
    row = "".join(f"<td>{i * 1111.1:,.1f}</td>" for i in range(8)) + "<td>4.10</td>"
    table = (f'<div style="overflow-x:auto"><table class="table"><thead><tr>{head}</tr></thead>'
             f"<tbody><tr>{row}</tr><tr>{row}</tr></tbody></table></div>")
    page = tmp_path / "table.html"
    page.write_text(f'<html><head></head><body><article role="main">{table}</article></body></html>')
    problems = page_problems(render(page, chromium, width=PHONE), PHONE)
    assert any("paper's column is off-screen" in p for p in problems), problems
    static = ROOT / "_static"
    page.write_text(f'<html><head><link rel="stylesheet" href="{(static / "book.css").as_uri()}">'
                    f'<script src="{(static / "phone_tables.js").as_uri()}"></script></head>'
                    f'<body><article role="main">{table}</article></body></html>')
    dom = render(page, chromium, width=PHONE)
    assert page_problems(dom, PHONE) == []
    assert BeautifulSoup(dom, "html.parser").body["data-stacked-tables"] == "1"
    wide = BeautifulSoup(render(page, chromium, width=WIDTH), "html.parser")  # on a desktop it stays a table
    assert wide.body["data-stacked-tables"] == "0" and wide.select("table.stacked") == []
    assert [td["data-label"] for td in wide.select("td[data-label]")] == []


def test_a_script_error_is_caught_in_a_real_browser(chromium, tmp_path):
    """The book's old console error: an inline script declaring a const twice."""
    page = tmp_path / "twice.html"
    script = '<script>const THEBE_JS_URL = "x";</script>'
    page.write_text(f'<html><head>{script}{script}</head><body><article role="main"><p>x</p></article></body></html>')
    problems = page_problems(render(page, chromium))
    assert any("script error" in p and "THEBE_JS_URL" in p for p in problems), problems


# --- the book ---------------------------------------------------------------------------------

def test_mathjax_is_served_with_the_book(built_book_html):
    local = built_book_html / "_static" / "mathjax" / "tex-chtml.js"
    assert local.is_file(), "no MathJax copy in _static: math would need a CDN"
    intro = (built_book_html / "book" / "intro.html").read_text(encoding="utf-8")
    srcs = re.findall(r'<script[^>]+src="([^"]*mathjax[^"]*)"', intro, flags=re.I)
    assert srcs and all("://" not in s and "_static/mathjax/" in s for s in srcs), srcs


def test_navigation_links_and_names(built_book_html):
    assert (built_book_html / "search.html").is_file() and not (built_book_html / "genindex.html").exists()
    intro = BeautifulSoup((built_book_html / "book" / "intro.html").read_text(encoding="utf-8"), "html.parser")
    links = {a["href"] for a in intro.select("article a.reference.internal")}
    chapters = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.md"))
    assert chapters and all(f"../notebooks/{c}.html" in links for c in chapters), (chapters, links)
    assert "Grünwald, 2007" in intro.get_text(" ")
    bib = BeautifulSoup((built_book_html / "book" / "bibliography.html").read_text(encoding="utf-8"), "html.parser")
    assert "Peter D. Grünwald" in bib.get_text(" ").replace("\xa0", " ")


@pytest.mark.parametrize("width", [WIDTH, PHONE])
def test_every_page_reads_well_in_a_browser(chromium, built_book_html, width):
    pages = book_pages(built_book_html)
    assert len(pages) >= 10, pages
    with ThreadPoolExecutor(max_workers=2) as pool:
        found = [f for fs in pool.map(lambda p: check_page(p, built_book_html, chromium, width), pages) for f in fs]
    assert not found, f"{len(found)} problem(s) on {len({p for p, _ in found})} of {len(pages)} pages:\n" + \
        "\n".join(f"  {page}: {problem}" for page, problem in found)


# --- make screenshots -------------------------------------------------------------------------

def screenshots(html_dir: Path, out_dir: Path, widths=(1400, 400)) -> list[Path]:
    """A full-height PNG of every page at each width (the height is measured in a first pass)."""
    if CHROMIUM is None:
        sys.exit("chromium not found on PATH (apt-get install -y chromium)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for page in book_pages(html_dir):
        stem = str(page.relative_to(html_dir).with_suffix("")).replace(os.sep, "__")
        for w in widths:
            body = BeautifulSoup(render(page, CHROMIUM, width=w, height=600), "html.parser").body
            h = min(int(body.get("data-page-height", HEIGHT)), 60000)
            if w >= MIN_WINDOW:  # a window keeps some of its height for itself (measured: 143 px)
                h += 600 - int(body.get("data-viewport-height", 600))
            png = out_dir / f"{stem}-{w}.png"
            render(page, CHROMIUM, width=w, height=h, screenshot=png.resolve())
            written.append(png)
            print(png, json.dumps({"width": w, "height": h}))
    return written


if __name__ == "__main__":
    html, out = (Path(a) for a in (sys.argv[1:3] if len(sys.argv) >= 3 else ("_build/html", "_build/screenshots")))
    if not (html / "index.html").is_file():
        sys.exit(f"{html}/index.html missing: run `make book` first")
    screenshots(html, out)


def test_search_snippets_show_typeset_math_not_tex_source(chromium, built_book_html):
    """Sphinx cuts search snippets from the pages' text, where math is TeX source; _static/search_math.js typesets
    them with the book's MathJax and drops math the cut split. Served over HTTP: Sphinx fetches the pages for the
    snippets, which a file:// page may not."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_book_html))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="searchcheck-", ignore_cleanup_errors=True) as tmp:
            offline = [f if not f.startswith("--host-resolver-rules") else f"{f}, EXCLUDE 127.0.0.1"
                       for f in CHROMIUM_FLAGS]  # still no network, but the local server
            proc = subprocess.run([chromium, *offline, f"--user-data-dir={tmp}/profile", "--dump-dom",
                                   f"http://127.0.0.1:{server.server_address[1]}/search.html?q=uniform"],
                                  capture_output=True, text=True, timeout=180)
    finally:
        server.shutdown()
    snippets = BeautifulSoup(proc.stdout, "html.parser").select("p.context")
    typeset = [p for p in snippets if p.select("mjx-container")]
    assert len(snippets) >= 5 and typeset, (len(snippets), proc.stderr[-500:])
    for p in snippets:
        for math in p.select("mjx-container"):
            math.decompose()
        assert not re.search(r"\\[()[\]]|\\mid|\\log", p.get_text(" ")), p.get_text(" ")[:300]
