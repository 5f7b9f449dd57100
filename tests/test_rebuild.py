"""A rebuild rebuilds: a page shows the profile of the build that made it.

Sphinx re-reads only the sources that changed since the last build, so a
second build of an unchanged notebook under another ``MKDBOOK_PROFILE``
would keep the first build's page. ``tools/build-book`` passes options that
prevent it; this test builds a throw-away book of one notebook twice, with
the build options of ``tools/build-book`` and the ``execute`` settings of
``_config.yml``, and checks that the page follows the profile.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("jupyter_book")

ROOT = Path(__file__).resolve().parents[1]


def build_options() -> list[str]:
    """The options ``tools/build-book`` gives ``jupyter-book build .``."""
    script = (ROOT / "tools" / "build-book").read_text()
    match = re.search(r'^jupyter-book build \. (.*?) "\$@"$', script, re.MULTILINE)
    assert match, "tools/build-book no longer runs `jupyter-book build . OPTIONS \"$@\"`"
    return shlex.split(match.group(1))


def write_book(folder: Path) -> None:
    """A book of one notebook that prints ``MKDBOOK_PROFILE``, built as the real book is."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    (folder / "_config.yml").write_text(yaml.safe_dump({
        "title": "rebuild", "only_build_toc_files": True, "execute": config["execute"]}))
    (folder / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "profile"}))
    cells = [
        {"cell_type": "markdown", "id": "title", "metadata": {}, "source": "# Profile"},
        {"cell_type": "code", "id": "print", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import os\nprint('profile:', os.environ['MKDBOOK_PROFILE'])"},
    ]
    notebook = {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    (folder / "profile.ipynb").write_text(json.dumps(notebook))


def build(folder: Path, options: list[str], profile: str) -> str:
    """Build the book in ``folder`` under ``profile``; return its page's HTML."""
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    env = {**os.environ, "MKDBOOK_PROFILE": profile}
    result = subprocess.run([str(jupyter_book), "build", str(folder), *options],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return (folder / "_build" / "html" / "profile.html").read_text()


def test_build_book_reexecutes_every_page():
    assert "--all" in build_options()
    assert yaml.safe_load((ROOT / "_config.yml").read_text())["execute"]["execute_notebooks"] == "force"


def test_a_changed_profile_changes_the_page(tmp_path):
    write_book(tmp_path)
    options = build_options()
    assert "profile: fast" in build(tmp_path, options, "fast")
    page = build(tmp_path, options, "default")
    assert "profile: default" in page and "profile: fast" not in page
