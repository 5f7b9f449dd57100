"""The built book, page by page, in a headless Chromium that reaches no network.

``tools/run-tests`` builds the book in the fast profile and runs these tests
with ``MKDBOOK_BOOK_HTML`` pointing at its ``_build/html``; without it they
are skipped. The checks themselves are in :mod:`pages` and are tested on
pages broken on purpose in ``test_checks.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote_plus

import pytest
import yaml

import pages

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "https://github.com/mkdbook/mkdbook"


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part["chapters"]]
    return files


PAGES = _toc_files()
CHAPTERS = [page for page in PAGES if Path(page).name[:2].isdigit()]


def _source_suffix(docname: str) -> str:
    return ".ipynb" if (ROOT / f"{docname}.ipynb").is_file() else ".md"


def _title(docname: str) -> str:
    """The chapter's title: the first heading of its notebook."""
    import json

    cells = json.loads((ROOT / f"{docname}.ipynb").read_text())["cells"]
    first = "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])
    return first.splitlines()[0].lstrip("# ").strip()


def _forbidden_paths(book_html: Path) -> list[str]:
    """Paths of this machine that must not appear in a published page."""
    paths = {str(ROOT), str(book_html.resolve().parent), sys.prefix, f"{Path.home()}/"}
    if os.environ.get("MKDBOOK_HOME"):
        paths.add(str(Path(os.environ["MKDBOOK_HOME"]).resolve()))
    return sorted(paths)


def test_the_toc_lists_every_chapter():
    assert len(CHAPTERS) == len(list((ROOT / "book").glob("0*.ipynb"))) >= 8
    assert PAGES.index("book/instructors") == 1


@pytest.mark.parametrize("docname", PAGES)
def test_page_is_sound(browser, site, book_html, docname):
    pages.open_page(browser, f"{site}/{docname}.html")
    problems = (pages.console_errors(browser) + pages.unresolved(browser)
                + pages.broken_images(browser) + pages.math(browser)
                + pages.local_paths(browser, _forbidden_paths(book_html))
                + pages.glue(browser, f"{site}/_sources/{docname}{_source_suffix(docname)}"))
    assert problems == []


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_shows_its_figures(browser, site, book_html, docname):
    executed = book_html.parent / "jupyter_execute" / f"{docname}.ipynb"
    assert pages.notebook_images(executed) >= 1, f"{executed.name} draws no figure"
    pages.open_page(browser, f"{site}/{docname}.html")
    assert pages.figures(browser, executed) == []


def test_search_finds_a_chapter(browser, site):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chapter = CHAPTERS[-3]
    title = _title(chapter)
    pages.open_page(browser, f"{site}/search.html?q={quote_plus(title)}")
    WebDriverWait(browser, 60).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a"))
    links = [a.get_attribute("href") for a in
             browser.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a")]
    assert any(link.split("#")[0].split("?")[0].endswith(f"/{chapter}.html") for link in links), links
    assert pages.console_errors(browser) == []


def test_launch_buttons_point_at_the_published_repository(browser, site):
    chapter = CHAPTERS[0]
    pages.open_page(browser, f"{site}/{chapter}.html")
    links = browser.execute_script("return Array.from(document.links).map(a => a.href)")
    owner_name = REPOSITORY.removeprefix("https://github.com/")
    notebook = f"{chapter}.ipynb"
    assert f"https://colab.research.google.com/github/{owner_name}/blob/main/{notebook}" in links
    binder = [link for link in links if link.startswith("https://mybinder.org/")]
    assert binder and all(link.startswith(f"https://mybinder.org/v2/gh/{owner_name}/main?") for link in binder)
    assert any(quote_plus(notebook) in link or notebook in link for link in binder)
    assert REPOSITORY in links
    foreign = [link for link in links if "github.com" in link and not link.startswith(REPOSITORY)]
    assert foreign == []


def test_math_is_served_with_the_book(browser, site):
    # The browser resolves no host name: MathJax must come from the book itself.
    pages.open_page(browser, f"{site}/book/method.html")
    sources = browser.execute_script(
        "return Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s))")
    assert sources and all(src.startswith(f"{site}/_static/mathjax/") for src in sources)
    assert browser.execute_script("return document.querySelectorAll('mjx-container').length") > 0
    assert pages.math(browser) == []
    assert pages.console_errors(browser) == []


def test_no_local_path_in_any_published_file(book_html):
    # The pages, and everything else published with them: sources, search index, scripts.
    forbidden = [path.encode() for path in _forbidden_paths(book_html)]
    found = []
    for path in sorted(book_html.rglob("*")):
        if path.is_file() and path.suffix in {".html", ".js", ".txt", ".ipynb", ".md", ".json", ".css"}:
            data = path.read_bytes()
            found += [f"{path.relative_to(book_html)}: {p.decode()}" for p in forbidden if p in data]
    assert found == []


#: Puts a line far wider than the page into a cell's text output; returns its
#: scroll width and visible width, or null when the page has no text output.
LONG_LINE = """
const pre = document.querySelector('div.cell_output pre');
if (pre === null) return null;
pre.textContent = 'wrapped '.repeat(400) + 'x'.repeat(2000);
return [pre.scrollWidth, pre.clientWidth];
"""


def test_long_output_lines_wrap(browser, site):
    # book/_ext/long_lines.py: a long line wraps instead of running off the page.
    for chapter in CHAPTERS:
        pages.open_page(browser, f"{site}/{chapter}.html")
        widths = browser.execute_script(LONG_LINE)
        if widths is not None:
            scroll, visible = widths
            assert 0 < scroll <= visible, f"{chapter}: a {scroll}-pixel line in a {visible}-pixel output"
            return
    pytest.fail("no chapter has a text output to check")
