"""Chapters and documents import from where things are defined, and a chapter's imports sit in its setup cell.

A name is imported from the module that defines it, or from a subpackage's
``__init__`` that lists it in ``__all__`` (the one kind of re-export the
package has); a module imported from its package is fine. Attribute access
through an imported module (``feedback.FeedbackConfig``) is held to the same
rule. The code read is every code cell of every chapter, the Python blocks in
their Markdown cells (exercise solutions) and in the book's pages, the
README and CONTRIBUTING.md.
"""

from __future__ import annotations

import ast
import json
import re
from functools import cache
from pathlib import Path

import pytest

import mkdbook

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mkdbook.__file__).parent
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))
DOCUMENTS = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "book").glob("*.md"))]


def _source_file(module: str) -> Path | None:
    """The file of a module of the package (its ``__init__.py`` for a package), ``None`` if there is none."""
    if module != "mkdbook" and not module.startswith("mkdbook."):
        return None
    base = PACKAGE.parent / module.replace(".", "/")
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _bound_names(statements: list[ast.stmt]) -> set[str]:
    """Names that top-level statements define (functions, classes, assignments), imports left out."""
    names: set[str] = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try, ast.With)):
            for block in ("body", "orelse", "finalbody"):
                names |= _bound_names(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                names |= _bound_names(handler.body)
    return names


@cache
def _defines(module: str) -> frozenset[str]:
    """What ``from module import name`` may take from ``module``: its own names, or a package's ``__all__``."""
    path = _source_file(module)
    tree = ast.parse(path.read_text(), str(path))
    if path.name == "__init__.py":
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
                return frozenset(ast.literal_eval(node.value))
        return frozenset()
    return frozenset(_bound_names(tree.body))


def _problem(module: str, name: str) -> str | None:
    if _source_file(f"{module}.{name}") is not None:
        return None  # a submodule, imported from its package
    if _source_file(module) is None:
        return f"{module} is no module of the package"
    if name in _defines(module):
        return None
    where = "not in its __all__" if _source_file(module).name == "__init__.py" else "not defined there"
    return f"{module}.{name}: {where}"


def import_problems(code: str) -> list[str]:
    """Imports from the package in ``code`` that do not name where a thing is defined, and why."""
    tree = ast.parse(code)
    problems: list[str] = []
    aliases: dict[str, str] = {}  # local name -> module of the package it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mkdbook":
            for alias in node.names:
                if (problem := _problem(node.module, alias.name)) is not None:
                    problems.append(problem)
                elif _source_file(f"{node.module}.{alias.name}") is not None:
                    aliases[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "mkdbook":
                    continue
                if _source_file(alias.name) is None:
                    problems.append(f"{alias.name} is no module of the package")
                elif alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and isinstance(node.ctx, ast.Load)):
            if (problem := _problem(aliases[node.value.id], node.attr)) is not None:
                problems.append(problem)
    return sorted(set(problems))


def _python(code: str) -> str:
    # IPython's magics and shell escapes are not Python; nothing of the package is imported by them.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())


def _fenced_python(markdown: str) -> list[str]:
    return [re.sub(r"(?m)^" + indent, "", block) for indent, block in
            re.findall(r"(?ms)^([ \t]*)```python\n(.*?)^[ \t]*```", markdown)]


def _cells(chapter: Path) -> list[dict]:
    return json.loads(chapter.read_text())["cells"]


def _code_of(chapter: Path) -> list[tuple[str, str]]:
    """(where, code) of every code cell and every Python block of a Markdown cell of a chapter."""
    pieces = []
    for number, cell in enumerate(_cells(chapter)):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code":
            pieces.append((f"cell {number}", _python(text)))
        elif cell["cell_type"] == "markdown":
            pieces += [(f"cell {number} (Markdown)", block) for block in _fenced_python(text)]
    return pieces


def test_import_problems_finds_re_exports_and_missing_names():
    assert import_problems("from mkdbook.data.segments import SegmentSet") == []
    assert import_problems("from mkdbook.data import load_segments, simulate") == []  # __all__, a submodule
    assert import_problems("from mkdbook.experiments.grids import run_cell") == []
    # Defined in another module and only imported into this one.
    assert import_problems("from mkdbook.experiments.grids import Cell") == [
        "mkdbook.experiments.grids.Cell: not defined there"]
    assert import_problems("from mkdbook.data import no_such_name") == [
        "mkdbook.data.no_such_name: not in its __all__"]
    assert import_problems("from mkdbook.distillation import feedback\nfeedback.Distiller") == [
        "mkdbook.distillation.feedback.Distiller: not defined there"]
    assert import_problems("import mkdbook.nowhere") == ["mkdbook.nowhere is no module of the package"]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapters_import_from_where_things_are_defined(chapter):
    problems = [f"{where}: {problem}" for where, code in _code_of(chapter) for problem in import_problems(code)]
    assert problems == []


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_documents_import_from_where_things_are_defined(document):
    blocks = _fenced_python(document.read_text())
    problems = [f"block {k}: {problem}" for k, block in enumerate(blocks) for problem in import_problems(block)]
    assert problems == []


def _imports(code: str) -> list[str]:
    return [ast.unparse(node) for node in ast.walk(ast.parse(code)) if isinstance(node, (ast.Import, ast.ImportFrom))]


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_import_of_a_chapter_sits_in_its_setup_cell(chapter):
    code_cells = [cell for cell in _cells(chapter) if cell["cell_type"] == "code"]
    colab, setup, *rest = code_cells
    assert "hide-input" in setup["metadata"].get("tags", [])
    assert "book.start(" in "".join(setup["source"])
    elsewhere = {cell.get("id", number): imports for number, cell in enumerate(rest)
                 if (imports := _imports(_python("".join(cell["source"]))))}
    assert elsewhere == {}, "move these imports to the setup cell"
