"""Every chapter follows the book's conventions (CONTRIBUTING.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_packaging import _colab_cell

CHAPTERS = sorted((Path(__file__).resolve().parents[1] / "book").glob("0*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_installs_itself_on_colab(chapter):
    first, setup = _code_cells(chapter)[:2]
    assert "".join(first["source"]).strip() == _colab_cell().strip()
    assert "remove-cell" in first["metadata"].get("tags", [])
    assert "book.start(SEED)" in "".join(setup["source"])


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_are_committed_without_outputs_and_name_their_kernel(chapter):
    notebook = json.loads(chapter.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    assert all(not c["outputs"] and c["execution_count"] is None for c in _code_cells(chapter))


def test_there_are_ten_chapters():
    assert len(CHAPTERS) == 10  # 01 to 09, and 07b after 07


def test_the_bibliography_parses_and_holds_every_cited_key():
    from pybtex.database import parse_file

    bib = Path(__file__).parents[1] / "references.bib"
    entries = parse_file(bib).entries
    # pybtex folds an entry that lost its closing brace into the previous one; count them apart.
    assert len(entries) == len(re.findall(r"^@", bib.read_text(), flags=re.M))
    pages = [*Path(__file__).parents[1].glob("book/*.ipynb"), *Path(__file__).parents[1].glob("book/*.md")]
    cited = {key.strip() for page in pages
             for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", page.read_text())
             for key in group.split(",")}
    assert cited and cited <= set(entries), sorted(cited - set(entries))
