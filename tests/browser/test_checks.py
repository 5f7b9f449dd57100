"""The page checks find what they look for: a sound page passes, a broken one fails.

A small site is written to a temporary folder, shaped like a page of the
built book (a cell output with a figure, a citation, a glued value,
mathematics typeset by the MathJax the book serves, the page's source under
``_sources/``), once sound and once broken on purpose, and served over HTTP.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

import pages

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "book" / "_ext"))
from offline_mathjax import BUNDLE, mathjax_source  # noqa: E402

# A 1x1 PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==")

SOUND = """
<p>As {author} showed <span class="bibtex-citation">[<a class="reference internal" href="#cite-1">A20</a>]</span>,
the accuracy was <span class="pasted-text">0.61</span>; see
<a class="reference internal" href="#fig"><span class="std std-numref">Fig. 1</span></a>.</p>
<p>It returns a <code class="xref py py-class docutils literal">numpy.ndarray</code>.</p>
<p><span class="math notranslate nohighlight">\\(a^2 + b^2 = c^2\\)</span></p>
<div class="cell_output docutils container" id="fig"><img alt="figure" src="../_images/figure.png"/></div>
<div class="citation" id="cite-1">A. Author. A title. 2020.</div>
<div class="math notranslate nohighlight">\\[E = m c^2\\]</div>
"""

BROKEN = """
<p>As shown <span class="bibtex-citation">[]</span>, the accuracy was .
See <span class="xref std std-ref">missing-label</span> and
<a class="reference internal" href="#fig-x"><code class="xref myst">fig-x</code></a>, and
<a class="reference internal" href="#fig"><span class="std std-numref">Fig. ?</span></a>.
Also {{cite:p}}`unparsed`, and a docstring's (see :func:`f`, the ``"x"`` preset).</p>
<div class="cell_output docutils container" id="fig"><img alt="figure" src="../_images/missing.png"/></div>
<div class="output traceback highlight-ipythontb"><pre>Traceback (most recent call last)</pre></div>
<p>Cached in {local}</p>
<script>console.error("an error in the page's script");</script>
"""


def page(body: str, *, mathjax: bool) -> str:
    script = f'<script defer src="../_static/mathjax/{BUNDLE}"></script>' if mathjax else ""
    return f"<!DOCTYPE html><html><head><title>t</title>{script}</head><body><main>{body}</main></body></html>"


def notebook(n_images: int, markdown: str) -> dict:
    image = {"output_type": "display_data", "metadata": {},
             "data": {"image/png": base64.b64encode(PNG).decode(), "text/plain": "<Figure>"}}
    hidden = {"cell_type": "code", "metadata": {"tags": ["remove-output"]}, "source": "", "outputs": [image]}
    glued = {**image, "metadata": {"scrapbook": {"name": "fig", "mime_prefix": ""}}}
    cells = [{"cell_type": "markdown", "metadata": {}, "source": markdown},
             {"cell_type": "code", "metadata": {}, "source": "", "outputs": [image] * n_images + [glued]},
             hidden]
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory, server):
    """A site with a sound and a broken page, served over HTTP; yields (url, folder)."""
    folder = tmp_path_factory.mktemp("site")
    (folder / "_images").mkdir()
    (folder / "_images" / "figure.png").write_bytes(PNG)
    shutil.copytree(mathjax_source(), folder / "_static" / "mathjax",
                    ignore=lambda d, names: [n for n in names if n.endswith(".js") and n != BUNDLE
                                             and Path(d) == mathjax_source()])
    (folder / "book").mkdir()
    (folder / "_sources" / "book").mkdir(parents=True)
    (folder / "book" / "sound.html").write_text(page(SOUND.format(author="Author"), mathjax=True))
    (folder / "book" / "broken.html").write_text(
        page(BROKEN.format(local=folder), mathjax=False) + "<p><span class='math'>\\(x\\)</span></p>")
    (folder / "book" / "wide.html").write_text(page(
        '<div style="width: 200px" class="math">\\[' + " + ".join(f"x_{{{i}}}" for i in range(60)) + '\\]</div>',
        mathjax=True))
    (folder / "book" / "sound.ipynb").write_text(json.dumps(notebook(1, "It was {glue:text}`acc`.")))
    (folder / "book" / "broken.ipynb").write_text(json.dumps(notebook(2, "It was {glue:text}`acc`.")))
    for name in ("sound", "broken"):
        shutil.copy(folder / "book" / f"{name}.ipynb", folder / "_sources" / "book" / f"{name}.ipynb")
    with server(folder) as url:
        yield url, folder


def test_a_sound_page_passes_every_check(browser, crafted):
    url, folder = crafted
    pages.open_page(browser, f"{url}/book/sound.html")
    assert pages.console_errors(browser) == []
    assert pages.unresolved(browser) == []
    assert pages.figures(browser, folder / "book" / "sound.ipynb") == []
    assert pages.glue(browser, f"{url}/_sources/book/sound.ipynb") == []
    assert pages.local_paths(browser, [str(folder)]) == []
    assert pages.math(browser) == []
    assert browser.execute_script("return document.querySelectorAll('mjx-container').length") == 2


def test_an_equation_wider_than_its_column_is_found(browser, crafted):
    url, _ = crafted
    pages.open_page(browser, f"{url}/book/wide.html")
    problems = pages.math(browser)
    assert len(problems) == 1 and problems[0].startswith("display equation cut off")


def test_a_broken_page_fails_every_check(browser, crafted):
    url, folder = crafted
    pages.open_page(browser, f"{url}/book/broken.html")
    errors = pages.console_errors(browser)
    assert any("an error in the page's script" in e for e in errors)
    assert any("missing.png" in e for e in errors)  # the failed request is logged too
    problems = "\n".join(pages.unresolved(browser))
    for expected in ("unresolved reference: missing-label", "link to a missing anchor: #fig-x",
                     "reference without a number: Fig. ?", 'unresolved citation: "[]"',
                     "error output: Traceback", "a traceback in the page",
                     "MyST role left as text: {cite:p}`", "reST left as text: :func:`",
                     'reST left as text: ``"x"``'):
        assert expected in problems
    figures = pages.figures(browser, folder / "book" / "broken.ipynb")
    assert any("image did not load" in p and "missing.png" in p for p in figures)
    assert "1 images in the page's cell outputs, 2 in broken.ipynb" in figures
    assert pages.glue(browser, f"{url}/_sources/book/broken.ipynb") == [
        "1 glue roles in the source, 0 pasted values in the page"]
    assert pages.local_paths(browser, [str(folder)]) == [f"local path in the page: {folder}"]
    assert pages.math(browser) == ["1 math elements, 0 typeset by MathJax (no MathJax)"]
