"""Chapter support: showing real source code, and the chapters' one-line setup."""

from __future__ import annotations

import ast
import importlib.util
import os
import random
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("IPython")

from IPython.display import Code  # noqa: E402

from mkdbook import book  # noqa: E402
from mkdbook.book import chapter  # noqa: E402
from mkdbook.core.profiles import PROFILES, active_profile  # noqa: E402


def documented(x: int) -> int:
    """Add one.

    A second paragraph, so the docstring spans several lines.
    """
    # a comment that must survive
    return x + 1


def only_a_docstring():
    """Nothing else here."""


def one_liner(): "Short."; return 1  # noqa: E702,E704


class Documented:
    """A class whose method has a docstring of its own."""

    size: int = 3

    def grow(self, by: int) -> int:
        """Grow by ``by``."""
        return self.size + by


def test_show_returns_highlighted_code_with_the_def_line():
    shown = book.show(documented)
    assert isinstance(shown, Code)
    assert "def documented(x: int) -> int:" in shown.data
    assert "Add one." in shown.data


def test_show_drops_the_docstring_and_keeps_everything_else():
    text = book.show(documented, docstring=False).data
    assert "Add one" not in text and "second paragraph" not in text
    assert text.splitlines() == [
        "def documented(x: int) -> int:",
        "    # a comment that must survive",
        "    return x + 1",
    ]
    ast.parse(text)


def test_show_dedents_methods():
    text = book.show(Documented.grow).data
    assert text.startswith("def grow(self, by: int) -> int:")
    assert 'Grow by' in text
    expected = "def grow(self, by: int) -> int:\n    return self.size + by\n"
    assert book.show(Documented.grow, docstring=False).data == expected


def test_show_drops_only_the_class_docstring():
    text = book.show(Documented, docstring=False).data
    assert "A class whose method" not in text
    assert "Grow by" in text
    assert text.startswith("class Documented:\n    size: int = 3\n")
    ast.parse(text)


def test_show_keeps_a_body_valid_when_only_the_docstring_was_there():
    assert book.show(only_a_docstring, docstring=False).data == "def only_a_docstring():\n    ...\n"
    text = book.show(one_liner, docstring=False).data
    assert "Short" not in text and "return 1" in text
    ast.parse(text)


def test_start_seeds_and_loads_the_cohort_without_simulating(monkeypatch, tmp_path, capsys):
    class FakeData:
        source = "a test cohort"

    calls = {}

    def fake_cohort(variant, *, profile=None):
        calls["variant"], calls["profile"] = variant, profile
        return tmp_path

    def fake_load(folder, *, progress=True):
        calls["folder"], calls["progress"] = Path(folder), progress
        return FakeData()

    monkeypatch.setenv("MKDBOOK_PROFILE", "fast")
    monkeypatch.delenv("MKDBOOK_WORKERS", raising=False)
    monkeypatch.setattr(chapter, "book_cohort", fake_cohort)
    monkeypatch.setattr(chapter, "load_segments", fake_load)

    profile, data = book.start(7, variant="null")
    draws = random.random(), np.random.random(), torch.rand(1).item()
    book.start(7, variant="null")
    assert draws == (random.random(), np.random.random(), torch.rand(1).item())

    assert profile == PROFILES["fast"]
    assert isinstance(data, FakeData)
    assert calls == {"variant": "null", "profile": PROFILES["fast"], "folder": tmp_path, "progress": False}
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "profile: fast; data: a test cohort"


def test_book_cohort_uses_the_real_folder_for_the_default_variant(monkeypatch, tmp_path):
    monkeypatch.setenv("MKDBOOK_DEAP_DIR", str(tmp_path))
    assert book.book_cohort("default") == tmp_path


def test_the_active_profile_carries_the_worker_count(monkeypatch):
    monkeypatch.setenv("MKDBOOK_PROFILE", "fast")
    monkeypatch.delenv("MKDBOOK_WORKERS", raising=False)
    assert active_profile() == PROFILES["fast"] and PROFILES["fast"].workers == 1
    monkeypatch.setenv("MKDBOOK_WORKERS", "3")
    assert active_profile() == replace(PROFILES["fast"], workers=3)
    for value in ("0", "two", ""):
        monkeypatch.setenv("MKDBOOK_WORKERS", value)
        with pytest.raises(ValueError, match=f"MKDBOOK_WORKERS={value!r} is not a number of processes"):
            active_profile()


def test_book_cohort_simulates_on_the_profiles_workers(monkeypatch, tmp_path):
    from mkdbook.data import simulate

    calls = {}

    def fake_simulate(folder, **arguments):
        calls.update(arguments)

    monkeypatch.delenv("MKDBOOK_DEAP_DIR", raising=False)
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))
    monkeypatch.setenv("MKDBOOK_WORKERS", "5")  # the argument wins: nothing reads the variable here
    monkeypatch.setattr(simulate, "simulate_cohort", fake_simulate)
    folder = book.book_cohort("null", profile=replace(PROFILES["fast"], workers=3))
    # The book reports on its own cohort seed, not on the development cohorts' seed.
    assert book.COHORT_SEED != book.DEVELOPMENT_COHORT_SEED
    assert calls == {"n_subjects": PROFILES["fast"].n_subjects, "variant": "null", "seed": book.COHORT_SEED,
                     "workers": 3}
    assert f"seed{book.COHORT_SEED}-" in folder.name
    development = book.book_cohort("null", seed=book.DEVELOPMENT_COHORT_SEED, profile=PROFILES["fast"])
    assert calls["seed"] == book.DEVELOPMENT_COHORT_SEED and development != folder


def _tqdm_import_warnings(first: str) -> str:
    """Import ``tqdm.auto`` the way a notebook kernel does, after ``first``; return stderr."""
    code = textwrap.dedent(f"""
        import warnings
        import ipykernel.zmqshell  # tqdm.auto takes its presence for a notebook kernel
        warnings.simplefilter("always")
        {first}
        import tqdm.auto
    """)
    root = Path(book.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=300, check=True)
    return done.stderr


def test_importing_book_keeps_the_tqdm_notebook_warning_away():
    pytest.importorskip("ipykernel")
    if importlib.util.find_spec("ipywidgets") is not None:
        pytest.skip("with ipywidgets installed tqdm has no warning to give")
    assert "IProgress not found" in _tqdm_import_warnings("pass")  # the warning this is about
    assert "IProgress not found" not in _tqdm_import_warnings("import mkdbook.book.chapter")


def test_comparison_grid_runs_every_method_of_the_table_on_the_baselines_grid():
    from mkdbook.experiments.grids import make_grid
    from mkdbook.experiments.methods import method_names

    grid = book.comparison_grid(PROFILES["fast"])
    assert grid.methods == method_names()
    assert grid == replace(make_grid("baselines", PROFILES["fast"]), methods=grid.methods)


def test_method_table_follows_the_method_table_and_cites_its_references():
    from mkdbook.experiments.methods import METHODS, method_named

    table = book.method_table()
    assert list(table.index) == [m.name for m in METHODS]
    assert list(table.columns) == ["role", "description", "teacher", "reference"]
    cgan = method_named("cgan")
    assert table.loc["cgan", "reference"] == "{cite:p}`" + ",".join(cgan.references) + "`"
    assert table.loc["student", "teacher"] == "" and table.loc["hinton", "teacher"] == "teacher"
    assert list(book.method_table(["hinton", "eeg"]).index) == ["hinton", "eeg"]
    with pytest.raises(ValueError, match="method must be one of"):
        book.method_table(["nope"])


def test_markdown_table_writes_a_pipe_table_with_escapes():
    import pandas as pd

    frame = pd.DataFrame({"a": ["x|y"], "b": ["two\nlines"]}, index=pd.Index(["r"], name="row"))
    text = book.markdown_table(frame).data
    assert text.splitlines() == ["| row | a | b |", "| --- | --- | --- |", "| r | x\\|y | two lines |"]
    assert book.markdown_table(frame, index=False).data.splitlines()[0] == "| a | b |"


def _two_rows(scale: float) -> pd.DataFrame:
    return pd.DataFrame({"name": ["a", "b"], "value": [scale / 3, 2 * scale / 3], "n": [1, 2]})


def test_stored_table_computes_once_per_settings_and_reads_back_the_same_table(monkeypatch, tmp_path):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))
    calls = []

    def compute(scale: float) -> pd.DataFrame:
        calls.append(scale)
        return _two_rows(scale)

    def one() -> pd.DataFrame:
        return compute(1.0)

    first = book.stored_table("toy", one, scale=1.0, weights=np.arange(3.0))
    again = book.stored_table("toy", one, scale=1.0, weights=np.arange(3.0))
    pd.testing.assert_frame_equal(first, again)
    assert calls == [1.0]
    book.stored_table("toy", lambda: compute(2.0), scale=2.0, weights=np.arange(3.0))
    book.stored_table("toy", one, scale=1.0, weights=np.arange(4.0))
    assert calls == [1.0, 2.0, 1.0]
    assert len(list((tmp_path / "results" / "tables").glob("*.json"))) == 3


def test_stored_table_keys_on_the_code_it_calls_and_refuses_unknown_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))
    code = chapter._chapter_code(lambda: _two_rows(1.0))
    assert any("def _two_rows" in source for source in code)
    with pytest.raises(TypeError, match="cannot identify a setting of type object"):
        book.stored_table("toy", lambda: _two_rows(1.0), what=object())
