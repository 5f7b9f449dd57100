"""The set-up files agree with each other."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import tomllib
import types
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://github.com/mkdbook/mkdbook"


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _pyproject_requirements(*extras: str) -> dict[str, str]:
    """The package's requirements and those of ``extras`` (all extras by default)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra, entries in project["optional-dependencies"].items():
        if not extras or extra in extras:
            requirements += entries
    return dict(_split(r) for r in requirements)


def _environment_requirements(path: Path = ROOT / "environment.yml") -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    entries: list[str] = []
    for item in env["dependencies"]:
        if isinstance(item, dict):
            entries += [e for e in item["pip"] if not e.startswith("-")]
        elif item != "pip" and not item.startswith("python="):
            entries.append(item)
    return dict(_split(e) for e in entries)


def _constraints() -> dict[str, str]:
    lines = (ROOT / "tools" / "constraints.txt").read_text().splitlines()
    return dict(_split(line) for line in lines if line.strip() and not line.startswith("#"))


def _pinned_torch(spec: str) -> Version:
    """The release ``spec`` pins (``==2.13.0`` or ``==2.13.0+cpu``), without its local label."""
    assert spec.startswith("==") and "*" not in spec, f"torch is not pinned to one release: {spec!r}"
    return Version(Version(spec[2:]).public)


def _agrees_with_pyproject(environment: dict[str, str], pyproject: dict[str, str]) -> None:
    """Same packages and specifiers, except torch: pinned, to the constraint file's release."""
    assert sorted(environment) == sorted(pyproject)
    others = {name for name in pyproject if name != "torch"}
    assert {n: environment[n] for n in others} == {n: pyproject[n] for n in others}
    pinned = _pinned_torch(environment["torch"])
    assert pinned == _pinned_torch(_constraints()["torch"])
    assert pinned in Requirement("torch" + pyproject["torch"]).specifier


def test_environment_yml_matches_pyproject():
    _agrees_with_pyproject(_environment_requirements(), _pyproject_requirements())


def test_binder_environment_matches_pyproject():
    # Binder runs the chapters: the package's dependencies and the `book` extra.
    binder = _environment_requirements(ROOT / "binder" / "environment.yml")
    _agrees_with_pyproject(binder, _pyproject_requirements("book"))


def test_binder_environment_installs_nothing_local():
    # A local install would change the image layer with every commit.
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert not [e for e in pip if e.startswith("-e") or e.startswith(".") or "file:" in e]
    assert "download.pytorch.org/whl/cpu" in " ".join(pip)
    assert "python=3.11" in env["dependencies"]


def test_binder_scripts():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    start = (ROOT / "binder" / "start").read_text()
    assert "pip install --no-deps -e ." in post_build
    assert 'export MKDBOOK_PROFILE="${MKDBOOK_PROFILE:-fast}"' in start
    assert "export MKDBOOK_HOME=" in start and ".mkdbook-cache/book" in start
    assert start.rstrip().endswith('exec "$@"')
    for script in ("postBuild", "start"):
        path = ROOT / "binder" / script
        assert path.stat().st_mode & 0o111, f"binder/{script} is not executable"
        assert "set -euo pipefail" in path.read_text()


def test_package_admits_colab_pythons_and_a_torch_range():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    python = Requirement("python" + project["requires-python"]).specifier
    assert all(Version(v) in python for v in ("3.11", "3.12", "3.13"))
    assert Version("3.14") not in python
    torch = Requirement("torch" + _pyproject_requirements()["torch"]).specifier
    assert Version("2.4") in torch and Version("2.13.0") in torch and Version("3.0") not in torch


def test_set_up_script_installs_with_the_torch_constraint():
    script = (ROOT / "tools" / "setup-env.sh").read_text()
    assert "-c tools/constraints.txt" in script
    # A changed pin reinstalls.
    assert "tools/constraints.txt | sha256sum" in script
    assert set(_constraints()) == {"torch"}


def test_environment_pins_the_same_python():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "python=3.11" in env["dependencies"]
    assert project["requires-python"].startswith(">=3.11")


def test_jupyter_book_stays_below_2():
    # Jupyter Book 2 ignores _config.yml and _toc.yml; ~=1.0 means >=1.0, <2.
    assert _pyproject_requirements()["jupyter-book"] == "~=1.0"


def test_launch_buttons_point_at_the_published_repository():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == REPOSITORY
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    workflow = (ROOT / ".github" / "workflows" / "book.yml").read_text()
    # The workflow refuses to publish from another repository.
    assert f"github.repository == '{REPOSITORY.removeprefix('https://github.com/')}'" in workflow
    for path in ("README.md", "CONTRIBUTING.md", "book/intro.md", "book/instructors.md"):
        for url in re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", (ROOT / path).read_text()):
            assert url.removesuffix(".git") == REPOSITORY, f"{path}: {url}"


def test_build_and_lab_share_the_book_cache():
    build = (ROOT / "tools" / "build-book").read_text()
    lab = (ROOT / "tools" / "lab").read_text()
    line = 'export MKDBOOK_HOME="${MKDBOOK_HOME:-$PWD/.mkdbook-cache/book}"'
    profile = 'export MKDBOOK_PROFILE="${MKDBOOK_PROFILE:-default}"'
    assert line in build and line in lab
    assert profile in build and profile in lab


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tools/run-tests" in readme and "exec tools/run-tests" in ci


def _colab_cell() -> str:
    text = (ROOT / "CONTRIBUTING.md").read_text()
    match = re.search(r"```python\n(\s*# Colab: install mkdbook.*?)```", text, re.DOTALL)
    assert match, "CONTRIBUTING.md has no Colab cell"
    return textwrap.dedent(match.group(1))


def test_colab_cell_does_nothing_outside_colab(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda *args, **kwargs: calls.append(args))
    monkeypatch.delenv("MKDBOOK_PROFILE", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(_colab_cell(), {})
    assert calls == [] and "MKDBOOK_PROFILE" not in os.environ


def test_colab_cell_installs_this_release_and_keeps_colab_torch(monkeypatch):
    import mkdbook

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    monkeypatch.delenv("MKDBOOK_PROFILE", raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(_colab_cell(), {})
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "install"]
    assert f"mkdbook @ git+{REPOSITORY}@v{mkdbook.__version__}" in command
    # Nothing that would replace Colab's torch.
    assert not {"-U", "--upgrade", "--force-reinstall"} & set(command)
    assert not [c for c in command if c.startswith("torch")]
    assert os.environ["MKDBOOK_PROFILE"] == "fast"


def test_workflow_builds_caches_and_publishes_the_book():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    build = workflow["jobs"]["build"]
    assert build["env"]["MKDBOOK_PROFILE"] == (
        "${{ github.event_name == 'pull_request' && 'fast' || 'default' }}")
    steps = {step.get("uses", step.get("run", "")).split("@")[0]: step for step in build["steps"]}
    assert "tools/build-book" in steps
    cache = steps["actions/cache"]["with"]
    assert cache["path"] == ".mkdbook-cache/book"
    assert "hashFiles('mkdbook/**', 'book/**', 'pyproject.toml')" in cache["key"]
    assert steps["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert [step["uses"].split("@")[0] for step in deploy["steps"]] == ["actions/deploy-pages"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_the_workflow_tags_the_release_the_colab_cell_installs():
    import mkdbook

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    release = workflow["jobs"]["release"]
    assert release["permissions"] == {"contents": "write"} and release["needs"] == "build"
    script = release["steps"][-1]["run"]
    version = re.search(r"sed -n '(.*?)' ([\w/.]+)", script)
    found = subprocess.run(["sed", "-n", version.group(1), version.group(2)], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == mkdbook.__version__
    assert 'git tag "v$version"' in script and f"@v{mkdbook.__version__}" in _colab_cell()
