"""Wrap the long lines of cell outputs instead of cutting them off.

The theme shows a cell's text output in a ``<pre>`` that keeps each line
whole and scrolls sideways, so a long line (a wide table printed as text, a
warning, a list of numbers) is cut off at the edge of the page, and a reader
who does not think of scrolling never sees its end. ``static/long_lines.css``
wraps those lines at the width of the page; code cells keep their layout.
"""

from __future__ import annotations

from pathlib import Path

from sphinx.application import Sphinx

STATIC = Path(__file__).resolve().parent / "static"
STYLESHEET = "long_lines.css"


def add_static_folder(app: Sphinx) -> None:
    """Serve :data:`STATIC` with the pages' other static files."""
    app.config.html_static_path.append(str(STATIC))


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("builder-inited", add_static_folder)
    app.add_css_file(STYLESHEET)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
