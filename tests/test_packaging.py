"""The set-up files agree with each other."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return dict(_split(r) for r in requirements)


def _environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    entries: list[str] = []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            entries += [e for e in item["pip"] if not e.startswith("-")]
        elif item != "pip" and not item.startswith("python="):
            entries.append(item)
    return dict(_split(e) for e in entries)


def test_environment_yml_matches_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_environment_pins_the_same_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"].startswith(">=3.11")


def test_jupyter_book_stays_below_2():
    # Jupyter Book 2 ignores _config.yml and _toc.yml; ~=1.0 means >=1.0, <2.
    assert _pyproject_requirements()["jupyter-book"] == "~=1.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tools/run-tests" in readme and "exec tools/run-tests" in ci
