"""One chapter-to-module table (mkdbook.book.chapters): the documents that show it, and the modules it must hold."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

import mkdbook
from mkdbook.book.chapters import CHAPTERS, ChapterRow, chapter_table, covered_by

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mkdbook.__file__).parent


def package_modules() -> list[str]:
    """Every module of the package by dotted name, packages included (``__main__`` and the root left out)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and parts[-1] != "__main__":
            names.append(".".join(parts))
    return names


def readme_layout() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize(("document", "style"), [("book/intro.md", "book"), ("book/api.md", "book")])
def test_book_pages_show_the_table(document, style):
    expected = chapter_table(style)
    assert expected in (ROOT / document).read_text(), f"{document} should hold, verbatim:\n{expected}"


def test_readme_layout_shows_the_table():
    expected = chapter_table("readme")
    assert expected in readme_layout(), f"README.md's section Layout should hold, verbatim:\n{expected}"


def test_readme_layout_names_the_layers_of_the_structure_test():
    from test_structure import LAYERS

    chain = " → ".join(f"`{layer.removeprefix('mkdbook.')}`" for layer in LAYERS)
    assert chain in " ".join(readme_layout().split())


def test_the_package_docstring_points_at_the_table_instead_of_repeating_it():
    assert "mkdbook.book.chapters" in mkdbook.__doc__
    assert not re.search(r"^=+\s+=+", mkdbook.__doc__, flags=re.M), "a table of its own in mkdbook/__init__.py"


def test_every_module_of_the_package_is_in_the_table():
    missing = [module for module in package_modules() if covered_by(module) is None]
    assert missing == [], f"add these to mkdbook.book.chapters.CHAPTERS: {missing}"


def test_every_listed_module_exists_and_is_listed_once():
    listed = [module for row in CHAPTERS for module in row.modules]
    assert len(listed) == len(set(listed))
    assert sorted(set(listed) - set(package_modules())) == []


def test_a_package_listed_alone_stands_for_its_modules_and_one_listed_with_some_needs_all(monkeypatch):
    import mkdbook.book.chapters as chapters

    rows = (ChapterRow("01_data", "The data", ("mkdbook.data", "mkdbook.data.layout", "mkdbook.data.simulate"), ""),)
    monkeypatch.setattr(chapters, "CHAPTERS", rows)
    assert covered_by("mkdbook.data.layout") == "mkdbook.data.layout"
    assert covered_by("mkdbook.data.simulate.cohort") == "mkdbook.data.simulate"
    assert covered_by("mkdbook.data.segments") is None  # mkdbook.data is listed with some of its modules
    assert covered_by("mkdbook.models.teacher") is None


def _page(row: ChapterRow) -> Path:
    notebook = ROOT / "book" / f"{row.page}.ipynb"
    return notebook if notebook.exists() else ROOT / "book" / f"{row.page}.md"


def _title(page: Path) -> str:
    if page.suffix == ".ipynb":
        import json

        text = "".join(json.loads(page.read_text())["cells"][0]["source"])
    else:
        text = page.read_text()
    return re.search(r"^# (.+)$", text, flags=re.M).group(1).strip()


@pytest.mark.parametrize("row", [row for row in CHAPTERS if row.page], ids=lambda row: row.page)
def test_rows_name_existing_pages_by_their_titles(row):
    assert _page(row).exists()
    assert _title(_page(row)) == row.title


def test_rows_follow_the_table_of_contents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [entry["file"].removeprefix("book/") for part in toc["parts"] for entry in part["chapters"]]
    rows = [row.page for row in CHAPTERS if row.page]
    assert rows == [page for page in pages if page in rows]
    # Every chapter is a row; pages that teach no module (for instructors, the API page) may be left out.
    assert {path.stem for path in (ROOT / "book").glob("0*.ipynb")} <= set(rows)


def test_chapter_table_refuses_an_unknown_style():
    with pytest.raises(ValueError, match="style"):
        chapter_table("html")


def _automodules() -> list[str]:
    return re.findall(r"^\.\. automodule:: ([\w.]+)\s*$", (ROOT / "book" / "api.md").read_text(), flags=re.M)


def test_api_page_documents_every_module():
    documented = set(_automodules())
    missing = [module for module in package_modules() if covered_by(module) not in documented]
    assert missing == [], f"book/api.md has no automodule entry for {missing} (or the package standing for it)"


def test_api_page_documents_the_modules_in_the_order_of_the_table():
    order = {module: rank for rank, module in enumerate(m for row in CHAPTERS for m in row.modules)}
    ranks = [order[covered_by(name)] for name in _automodules() if covered_by(name) in order]
    assert ranks == sorted(ranks)
