"""What the browser tests check on a page of the built book.

Each check takes a Selenium driver that has loaded the page with
:func:`open_page` and returns a list of problems (empty when the page is
fine), so that a test can assert on it and show every problem at once.
:mod:`tests.browser.test_checks` runs the checks on small pages made broken on
purpose; :mod:`tests.browser.test_pages` runs them on the built book.

How Sphinx, myst-parser, myst-nb and sphinxcontrib-bibtex render what they
cannot resolve (the build warns, and ``-W`` fails it, but a warning can be
suppressed in ``_config.yml``):

* an unknown label, document or equation keeps the role's text in an element
  of class ``xref`` outside any link (a resolved one is inside an ``<a>``).
  References to Python objects (class ``py``) are left out: Sphinx links
  those it knows and leaves the others, such as another library's classes
  named in a docstring, as plain code;
* a MyST link ``[](#target)`` to an unknown target links to ``#target``,
  an anchor missing from the page;
* a numbered reference without a number shows ``?``;
* a citation with an unknown key leaves ``<span class="bibtex-citation">``
  without a link (``[]`` or nothing);
* a ``{glue}`` role with an unknown key leaves nothing at all: the check
  counts the glue roles of the page's source (``_sources/``) against the
  pasted values on the page.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.request import urlopen

#: Console messages that are not the page's fault: the browser asks every
#: site for /favicon.ico, and the book has none.
IGNORED_CONSOLE = ("/favicon.ico - Failed to load resource",)

GLUE_ROLE = re.compile(r"\{glue(?::(?:any|text))?\}`[^`]+`")
UNPARSED_ROLE = re.compile(r"\{(?:glue|cite|ref|numref|eq|doc|term|download)(?::[a-z]+)?\}`")
#: reST that a docstring left unparsed: a role or a double-backquoted literal shown as text.
RAW_REST = re.compile(r":(?:func|class|meth|mod|attr|data|math|ref|doc|py:[a-z]+):`|``[^`\s][^`]*``")
TRACEBACK = "Traceback (most recent call last)"
#: Image outputs of a notebook cell, as myst-nb shows them in a page.
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
#: Cell tags that keep a cell's outputs out of the page.
HIDING_TAGS = {"remove-output", "remove_output", "remove-cell", "remove_cell"}


def open_page(driver, url: str, *, timeout: float = 60) -> None:
    """Load ``url`` and wait until it has loaded its images and typeset its math."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # forget the messages of earlier pages
    driver.get(url)
    wait = WebDriverWait(driver, timeout)
    wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
    wait.until(lambda d: d.execute_script(
        "return Array.from(document.images).every(i => i.complete)"))
    if driver.execute_script("return document.querySelector('.math') !== null"
                             " && document.querySelector('script[src*=\"mathjax\" i]') !== null"):
        wait.until(lambda d: d.execute_script(
            "return !!(window.MathJax && MathJax.startup && MathJax.startup.promise)"))
        driver.set_script_timeout(timeout)
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "MathJax.startup.promise.then(() => done(true), e => done(String(e)));")


def console_errors(driver) -> list[str]:
    """Messages of level SEVERE in the browser's console since :func:`open_page`."""
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE" and not any(i in entry["message"] for i in IGNORED_CONSOLE)]


def broken_images(driver) -> list[str]:
    """Images of the page that did not load (``naturalWidth`` 0)."""
    return [f"image did not load: {src}" for src in driver.execute_script(
        "return Array.from(document.images)"
        ".filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")]


def output_images(driver) -> int:
    """Number of images among the page's cell outputs."""
    return driver.execute_script("return document.querySelectorAll('.cell_output img').length")


def notebook_images(notebook: Path) -> int:
    """Number of image outputs an executed notebook shows in its page.

    Outputs of cells tagged ``remove-output`` or ``remove-cell`` and glue
    outputs (pasted elsewhere by a ``{glue}`` role) are not counted.
    """
    count = 0
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] != "code" or HIDING_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            continue
        for output in cell.get("outputs", []):
            if "scrapbook" in output.get("metadata", {}):
                continue
            if any(mime in output.get("data", {}) for mime in IMAGE_MIMES):
                count += 1
    return count


def figures(driver, notebook: Path) -> list[str]:
    """Problems with the figures: a missing or broken image among the outputs."""
    expected, shown = notebook_images(notebook), output_images(driver)
    problems = broken_images(driver)
    if shown != expected:
        problems.append(f"{shown} images in the page's cell outputs, {expected} in {notebook.name}")
    return problems


def unresolved(driver) -> list[str]:
    """Tracebacks and unresolved references, citations and MyST roles in the page."""
    found = driver.execute_script("""
        const main = document.querySelector('main') || document.body;
        const text = el => el.textContent.trim().slice(0, 80);
        const out = [];
        main.querySelectorAll('.xref:not(.py)').forEach(el => {
            if (!el.closest('a')) out.push('unresolved reference: ' + text(el)); });
        main.querySelectorAll('a[href^="#"]').forEach(a => {
            const id = decodeURIComponent(a.getAttribute('href').slice(1));
            if (id && !document.getElementById(id))
                out.push('link to a missing anchor: #' + id); });
        main.querySelectorAll('a.reference').forEach(a => {
            if (/(^|\\s)\\?$/.test(a.textContent.trim()))
                out.push('reference without a number: ' + text(a)); });
        main.querySelectorAll('.bibtex-citation').forEach(el => {
            if (!el.querySelector('a')) out.push('unresolved citation: "' + text(el) + '"'); });
        main.querySelectorAll('.output.traceback, .output.error, .system-message, .problematic')
            .forEach(el => out.push('error output: ' + text(el)));
        return out;""")
    body = driver.execute_script("return document.body.innerText")
    if TRACEBACK in body:
        found.append("a traceback in the page")
    prose = driver.execute_script("""
        const main = (document.querySelector('main') || document.body).cloneNode(true);
        main.querySelectorAll('pre, code').forEach(el => el.remove());
        return main.textContent;""")
    found += [f"MyST role left as text: {m}" for m in UNPARSED_ROLE.findall(prose)]
    found += [f"reST left as text: {m}" for m in RAW_REST.findall(prose)]
    return found


def glue(driver, source_url: str) -> list[str]:
    """Problems with glued values: a ``{glue}`` role of the source that shows nothing.

    Parameters
    ----------
    driver : selenium.webdriver.Remote
        A driver that has loaded the page.
    source_url : str
        The page's source as the site serves it (``_sources/book/<page>.ipynb``).
    """
    with urlopen(source_url) as response:
        source = response.read().decode()
    if source_url.endswith(".ipynb"):
        source = "\n".join("".join(cell["source"]) for cell in json.loads(source)["cells"]
                           if cell["cell_type"] == "markdown")
    roles = len(GLUE_ROLE.findall(source))
    pasted = driver.execute_script(
        "return document.querySelectorAll('.pasted-text, .pasted-inline').length")
    if pasted != roles:
        return [f"{roles} glue roles in the source, {pasted} pasted values in the page"]
    return []


def local_paths(driver, forbidden: list[str]) -> list[str]:
    """Paths of the machine that built the book, found in the page's HTML."""
    html = driver.page_source
    return [f"local path in the page: {path}" for path in forbidden if path and path in html]


def math(driver) -> list[str]:
    """Problems with the page's mathematics: not typeset, typeset with an error, or cut off.

    A display equation wider than the text column is cut off on the right
    (or needs a scroll bar nobody sees): break it over lines instead.
    """
    n_math, n_typeset, n_errors, source, too_wide = driver.execute_script("""
        const sources = Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s));
        return [document.querySelectorAll('.math').length,
                document.querySelectorAll('mjx-container').length,
                document.querySelectorAll('mjx-merror').length,
                sources.join(' '),
                Array.from(document.querySelectorAll('mjx-container[display="true"]'))
                    .filter(e => e.scrollWidth > e.clientWidth + 1)
                    .map(e => `${e.scrollWidth} px wide in ${e.clientWidth} px: `
                              + e.textContent.slice(0, 60))];""")
    problems = []
    if n_math and n_typeset < n_math:
        problems.append(f"{n_math} math elements, {n_typeset} typeset by MathJax ({source or 'no MathJax'})")
    if n_errors:
        problems.append(f"{n_errors} MathJax errors")
    problems += [f"display equation cut off, {wide}" for wide in too_wide]
    return problems
