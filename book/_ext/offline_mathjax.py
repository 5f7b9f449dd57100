"""Serve MathJax with the book, so that its pages render math without a network.

Sphinx loads MathJax from a CDN by default. ``_config.yml`` points
``mathjax_path`` at ``mathjax/tex-mml-chtml.js`` (relative to ``_static``),
and this extension copies MathJax 3 there at the end of every HTML build,
from the ``django-static-mathjax`` package (MathJax's own ``es5``
distribution as a Python package; Django itself is not needed). Only the
bundle the book loads is copied, with the fonts, input extensions and
accessibility components it loads on demand.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx

#: The MathJax bundle the pages load; the other top-level bundles are not copied.
BUNDLE = "tex-mml-chtml.js"


def mathjax_source() -> Path:
    """Return the folder of MathJax's ``es5`` distribution shipped by ``django-static-mathjax``."""
    import mathjax

    return Path(mathjax.__file__).parent / "static" / "mathjax" / "es5"


def _skip_other_bundles(folder: str, names: list[str]) -> list[str]:
    if Path(folder) != mathjax_source():
        return []
    return [name for name in names if name.endswith(".js") and name != BUNDLE]


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy MathJax into ``_static/mathjax`` of a finished HTML build."""
    if exception is not None or app.builder.format != "html":
        return
    source = mathjax_source()
    if not (source / BUNDLE).is_file():
        raise FileNotFoundError(f"{source / BUNDLE}: MathJax not found; install django-static-mathjax")
    target = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(source, target, ignore=_skip_other_bundles, dirs_exist_ok=True)
    licence = source.parent / "LICENSE"  # MathJax's Apache 2.0 licence
    if licence.is_file():
        shutil.copy2(licence, target / "LICENSE")


def setup(app: Sphinx) -> dict[str, bool]:
    app.connect("build-finished", copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
