"""Every number or word a chapter's prose glues is glued by the chapter's own code.

The prose of a chapter quotes its results through ``{glue:text}`name```
roles, never typed numbers; a role whose name no cell glues renders as a
warning and an empty gap, in whichever outcome the build happens to take.
The names are read from the code with :mod:`ast`: a literal name must be
glued literally, and a name such as ``gap_valence`` may come from an f-string
such as ``f"gap_{target}"``.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))
ROLE = re.compile(r"\{glue(?::\w+)?\}`([^`:]+)")


def _cells(notebook: dict, kind: str) -> list[str]:
    return ["".join(cell["source"]) for cell in notebook["cells"] if cell["cell_type"] == kind]


def glued_patterns(code: str) -> list[re.Pattern]:
    """A pattern per ``glue(name, ...)`` call of ``code``: the name, or its f-string with any text for each field."""
    patterns = []
    for node in ast.walk(ast.parse(code)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "glue"
                and node.args):
            continue
        name = node.args[0]
        if isinstance(name, ast.Constant) and isinstance(name.value, str):
            patterns.append(re.compile(re.escape(name.value)))
        elif isinstance(name, ast.JoinedStr):
            patterns.append(re.compile("".join(re.escape(part.value) if isinstance(part, ast.Constant) else ".+"
                                               for part in name.values)))
    return patterns


def unglued_names(notebook: dict) -> list[str]:
    """Names the notebook's Markdown glues that none of its code cells glues."""
    patterns = glued_patterns("\n".join(_cells(notebook, "code")))
    used = {name for text in _cells(notebook, "markdown") for name in ROLE.findall(text)}
    return sorted(name for name in used if not any(pattern.fullmatch(name) for pattern in patterns))


def _notebook(markdown: str, code: str) -> dict:
    return {"cells": [{"cell_type": "markdown", "source": [markdown]}, {"cell_type": "code", "source": [code]}]}


def test_a_role_without_its_glue_is_found():
    prose = "Gap {glue:text}`gap_valence`, share {glue:text}`share:.0%` and {glue:text}`missing`."
    code = 'for target in ("valence",):\n    glue(f"gap_{target}", 1, display=False)\nglue("share", 0.5)\n'
    assert unglued_names(_notebook(prose, code)) == ["missing"]
    assert unglued_names(_notebook("{glue:text}`gap_`", code)) == ["gap_"]  # a field stands for some text


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda path: path.stem)
def test_every_glued_name_in_a_chapter_is_glued_by_its_code(chapter):
    assert unglued_names(json.loads(chapter.read_text())) == []
