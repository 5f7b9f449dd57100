"""Every chapter follows the book's conventions (CONTRIBUTING.md)."""

from __future__ import annotations

import json
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


def test_there_are_nine_chapters():
    assert len(CHAPTERS) == 9
