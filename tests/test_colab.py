"""Chapter 1 runs on Colab from nothing but its first cell.

Colab ships Python with torch, numpy, pandas, matplotlib, seaborn, scipy,
scikit-learn, statsmodels, ipykernel and tqdm, and imports ``google.colab``
when its kernel starts; it has no mkdbook. The test builds that environment:
a fresh virtual environment that sees only what Colab ships (and what those
packages need), linked from the test's own environment, which
``tools/setup-env.sh`` installs from ``tools/requirements.lock``; a kernel of
it that imports a stub ``google.colab`` at start-up; and chapter 1 executed
by nbclient with its Colab cell as committed, except that the cell's pip
requirement points at a copy of this checkout instead of the repository.
Before the chapter starts, the test checks that the environment has none of
what the cell must install. A last cell imports every module that any
chapter imports, so a module the cell does not install fails here rather
than in a reader's Colab session.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbclient
import nbformat
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
#: The packages Colab ships that mkdbook's chapters use (Colab's own list is longer).
COLAB_SHIPS = ("torch", "numpy", "pandas", "matplotlib", "seaborn", "scipy", "scikit-learn",
               "statsmodels", "ipykernel", "tqdm")
#: What the Colab cell installs from; the test installs from a copy of the checkout instead.
REPOSITORY_SPEC = re.compile(r"git\+https://github\.com/mkdbook/mkdbook@[\w.-]+")
#: Packages the cell must install: none of them may be there before it runs.
NOT_ON_COLAB = ("mkdbook", "myst_nb", "mne", "mne_bids", "pybv", "onnx", "onnxruntime")
KERNEL = "colab-emulation"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    return Path(subprocess.run([_python(venv), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())


def _colab_ships(folder: Path) -> Path:
    """A folder of links to what Colab ships, and to what those need, from this environment.

    This environment is installed from the lock file, so the links hold the
    lock's releases; nothing else of it (mkdbook, myst-nb, mne) is linked.
    """
    folder.mkdir()
    todo, seen = list(COLAB_SHIPS), set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = metadata.distribution(name)
        todo += [r.name for r in map(Requirement, dist.requires or [])
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
        # Top-level packages, modules and the .dist-info folder pip reads;
        # not the scripts (../../bin) nor the caches many modules share.
        tops = {Path(f).parts[0] for f in dist.files or []} - {"..", "__pycache__"}
        for top in tops:
            if not (folder / top).exists():
                (folder / top).symlink_to(dist.locate_file(top))
    return folder


def _source_copy(folder: Path) -> Path:
    """The package's sources, as ``git+...`` would fetch them (no .venv, no caches)."""
    folder.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder)
    shutil.copytree(ROOT / "mkdbook", folder / "mkdbook", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def _chapter_imports() -> list[str]:
    """Every import statement of every chapter's setup cell (the second code cell)."""
    statements: list[str] = []
    for path in sorted(BOOK.glob("*.ipynb")):
        cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
        for node in ast.parse(cells[1].source).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                statements.append(ast.unparse(node))
    return list(dict.fromkeys(statements))


@pytest.fixture
def colab(tmp_path, monkeypatch) -> Path:
    """A fresh Colab-like environment with a Jupyter kernel that imports ``google.colab`` at start."""
    ships = _colab_ships(tmp_path / "colab-ships")
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    (_site_packages(venv) / "colab_ships.pth").write_text(f"{ships}\n")
    stub = tmp_path / "stub" / "google" / "colab"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text('"""Stands in for Colab\'s own module."""\n')
    kernel = tmp_path / "jupyter" / "kernels" / KERNEL
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(_python(venv)), "-m", "ipykernel_launcher", "-f", "{connection_file}",
                 "--IPKernelApp.exec_lines=import google.colab"],
        "display_name": "Colab emulation", "language": "python",
        "env": {"PYTHONPATH": str(tmp_path / "stub")},
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # The Colab cell chooses the profile, as on Colab.
    monkeypatch.delenv("MKDBOOK_PROFILE", raising=False)
    return venv


def test_chapter_1_runs_on_colab_and_every_chapter_import_resolves(colab, tmp_path):
    missing = subprocess.run(
        [_python(colab), "-c", "import importlib.util, sys; "
         f"print(*[m for m in {NOT_ON_COLAB!r} if importlib.util.find_spec(m)])"],
        capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert missing == [], f"the emulated Colab has {missing} before the Colab cell runs"
    notebook = nbformat.read(BOOK / "01_data.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code")
    source = _source_copy(tmp_path / "source")
    cell.source, count = REPOSITORY_SPEC.subn(source.as_uri(), cell.source)
    assert count == 1, "the Colab cell names no git+https://github.com/mkdbook/mkdbook@REF"
    notebook.cells.append(nbformat.v4.new_code_cell("\n".join(
        _chapter_imports() + ["import os", "assert os.environ['MKDBOOK_PROFILE'] == 'fast'"])))
    work = tmp_path / "work"
    work.mkdir()
    client = nbclient.NotebookClient(notebook, kernel_name=KERNEL, timeout=900,
                                     resources={"metadata": {"path": str(work)}})
    client.execute()
    installed = subprocess.run(
        [_python(colab), "-c", "import mkdbook, myst_nb, onnxruntime; print(mkdbook.__file__)"],
        capture_output=True, text=True, check=True, cwd=work).stdout
    # The chapter ran on the package the cell installed, not on the checkout.
    assert Path(installed.strip()).is_relative_to(_site_packages(colab))
