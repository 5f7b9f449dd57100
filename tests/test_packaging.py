"""The set-up files agree with each other."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
import types
from pathlib import Path

import yaml
import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REPOSITORY = "https://github.com/mkdbook/mkdbook"


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _lock_tool():
    """``tools/lock_environments.py``, which writes the conda environments from the lock file."""
    spec = importlib.util.spec_from_file_location("lock_environments",
                                                  ROOT / "tools" / "lock_environments.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _locked() -> dict[str, Version]:
    """Each package of ``tools/requirements.lock`` and its release."""
    pins = _lock_tool().locked_pins((ROOT / "tools" / "requirements.lock").read_text())
    return {canonicalize_name(name): Version(release)
            for name, release in (pin.split("==") for pin in pins)}


def _constraints() -> dict[str, str]:
    lines = (ROOT / "tools" / "constraints.txt").read_text().splitlines()
    return dict(_split(line) for line in lines if line.strip() and not line.startswith("#"))


def test_lock_file_holds_every_requirement_at_an_admitted_release():
    project = _project()
    requirements = list(project["dependencies"])
    for entries in project["optional-dependencies"].values():
        requirements += entries
    locked = _locked()
    # An extra that names another (mkdbook[deploy]) is resolved through that one.
    for requirement in (r for r in map(Requirement, requirements) if r.name != project["name"]):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"tools/requirements.lock has no {name}"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"tools/requirements.lock: {name}=={locked[name]} is outside {requirement.specifier}")
    # The releases tools/constraints.txt pins; torch's is PyTorch's CPU build.
    constraints = _constraints()
    assert "torch" in constraints and locked["torch"].local == "cpu"
    for name, spec in constraints.items():
        assert spec == f"=={locked[name]}", f"tools/requirements.lock: {name}=={locked[name]}"


def test_every_locked_release_carries_its_hashes():
    text = (ROOT / "tools" / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert len(blocks) == len(_locked()) > 100
    for block in blocks:
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), block.splitlines()[0]


def test_lock_script_resolves_every_extra_with_the_torch_pin():
    script = (ROOT / "tools" / "lock").read_text()
    extras = set(re.findall(r"--extra (\w+)", script))
    assert extras == set(_project()["optional-dependencies"])
    assert f"--python-version {_lock_tool().PYTHON}" in script
    for option in ("--constraint tools/constraints.txt", "--generate-hashes",
                   "--output-file tools/requirements.lock", "python3 tools/lock_environments.py"):
        assert option in script


def test_environment_files_are_written_from_the_lock_file():
    tool = _lock_tool()
    for path, text in tool.environments().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)}: run tools/lock"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    pinned = {canonicalize_name(e.split("==")[0]): Version(e.split("==")[1])
              for e in pip if "==" in e}
    assert pinned == _locked() and pip[-1] == "-e ."
    assert f"python={tool.PYTHON}" in env["dependencies"]
    assert _project()["requires-python"].startswith(f">={tool.PYTHON}")


def test_binder_environment_installs_nothing_local():
    # A local install would change the image layer with every commit.
    env = yaml.safe_load((ROOT / "binder" / "environment.yml").read_text())
    pip = next(item["pip"] for item in env["dependencies"] if isinstance(item, dict))
    assert not [e for e in pip if e.startswith("-e") or e.startswith(".") or "file:" in e]
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip


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
    project = _project()
    python = Requirement("python" + project["requires-python"]).specifier
    assert all(Version(v) in python for v in ("3.11", "3.12", "3.13", "3.14"))
    torch = Requirement("torch" + dict(map(_split, project["dependencies"]))["torch"]).specifier
    assert Version("2.4") in torch and Version("2.13.0") in torch and Version("3.0") not in torch


def test_license_is_an_spdx_expression():
    # A table (`{ text = ... }`) is deprecated by setuptools, and an error from 2027-02-18.
    assert _project()["license"] == "BSD-3-Clause"


#: What setuptools prints for the project table's deprecated forms.
DEPRECATIONS = ("SetuptoolsDeprecationWarning", "License classifiers",
                "project.license` as a TOML table")


def _interpreter(version: str) -> str:
    """A ``python<version>`` that runs: the one on PATH, or one that pyenv installed."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = shutil.which("pyenv")
    if pyenv:
        # pyenv's shim on PATH runs only the versions pyenv selects for the folder.
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        installed = subprocess.run([pyenv, "versions", "--bare"], capture_output=True,
                                   text=True).stdout.split()
        candidates += [f"{root}/versions/{v}/bin/python{version}" for v in installed
                       if v.startswith(f"{version}.")]
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    pytest.fail(f"no python{version} runs here (the workflow installs 3.11 and 3.13)")


@pytest.mark.parametrize("version", ["3.11", "3.13"])
def test_package_builds_and_installs_without_deprecations(version, tmp_path):
    interpreter = _interpreter(version)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source)
    shutil.copytree(ROOT / "mkdbook", source / "mkdbook",
                    ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([interpreter, "-m", "venv", venv], check=True)
    # --no-deps: the package's own build and metadata; its dependencies are
    # the lock file's business.
    build = subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "--no-deps",
                            "--verbose", source], capture_output=True, text=True, cwd=tmp_path)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-3000:]
    assert not [line for line in log.splitlines() if any(d in line for d in DEPRECATIONS)]
    # Outside the checkout, whose mkdbook.egg-info the interpreter would read.
    metadata = json.loads(subprocess.run(
        [venv / "bin" / "python", "-c",
         "import importlib.metadata as m, json; d = m.metadata('mkdbook');"
         "print(json.dumps([d['Requires-Python'], d['License-Expression']]))"],
        capture_output=True, text=True, check=True, cwd=tmp_path).stdout)
    assert SpecifierSet(metadata[0]) == SpecifierSet(_project()["requires-python"])
    assert metadata[1] == "BSD-3-Clause"


def test_set_up_script_installs_the_lock_file_with_its_hashes():
    script = (ROOT / "tools" / "setup-env.sh").read_text()
    assert "--require-hashes --no-deps" in script and "-r tools/requirements.lock" in script
    assert "--no-deps -e ." in script
    # A changed lock file or pyproject.toml reinstalls.
    assert "cat pyproject.toml tools/requirements.lock | sha256sum" in script


def test_jupyter_book_stays_below_2():
    # Jupyter Book 2 ignores _config.yml and _toc.yml; ~=1.0 means >=1.0, <2.
    book = dict(_split(r) for r in _project()["optional-dependencies"]["book"])
    assert book["jupyter-book"] == "~=1.0"
    assert _locked()["jupyter-book"].major == 1


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


def _colab_spec() -> str:
    return re.search(r'"(mkdbook\S* @ [^"]+)"', _colab_cell()).group(1)


def test_colab_cell_installs_the_colab_extra_and_keeps_colab_torch(monkeypatch):
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: calls.append(command))
    monkeypatch.delenv("MKDBOOK_PROFILE", raising=False)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(_colab_cell(), {})
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "install"]
    assert _colab_spec() in command
    assert Requirement(_colab_spec()).extras == {"colab"}
    # Nothing that would replace Colab's torch.
    assert not {"-U", "--upgrade", "--force-reinstall"} & set(command)
    assert not [c for c in command if c.startswith("torch")]
    assert os.environ["MKDBOOK_PROFILE"] == "fast"


def test_colab_cell_installs_from_the_ref_the_colab_button_opens():
    # Jupyter Book's Colab link opens {repository.url}/blob/{repository.branch}/<notebook>:
    # the cell installs the package from that same repository and ref.
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]
    assert Requirement(_colab_spec()).url == f"git+{repository['url']}@{repository['branch']}"


def _workflow() -> dict:
    return yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())


def _steps(job: dict) -> dict[str, dict]:
    return {step.get("uses", step.get("run", "")).split("@")[0]: step for step in job["steps"]}


#: The newest major release of each action the workflow uses.
ACTION_MAJORS = {"actions/checkout": "v6", "actions/setup-python": "v6",
                 "actions/cache/restore": "v5", "actions/cache/save": "v5",
                 "actions/upload-pages-artifact": "v5", "actions/deploy-pages": "v5"}


def test_workflow_uses_current_action_majors():
    used = [step["uses"] for job in _workflow()["jobs"].values()
            for step in job["steps"] if "uses" in step]
    assert {u.split("@")[0] for u in used} == set(ACTION_MAJORS)
    for action in used:
        name, major = action.split("@")
        assert major == ACTION_MAJORS[name], action


def test_workflow_builds_caches_and_publishes_the_book():
    workflow = _workflow()
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in triggers and triggers["push"]["branches"] == ["main"]
    build = workflow["jobs"]["build"]
    assert build["env"]["MKDBOOK_PROFILE"] == (
        "${{ github.event_name == 'pull_request' && 'fast' || 'default' }}")
    assert build["env"]["PIP_EXTRA_INDEX_URL"] == _lock_tool().PYTORCH_CPU_INDEX
    order = [step.get("uses", step.get("run", "")).split("@")[0] for step in build["steps"]]
    steps = _steps(build)
    restore, save = steps["actions/cache/restore"], steps["actions/cache/save"]
    assert restore["with"]["path"] == save["with"]["path"] == ".mkdbook-cache/book"
    assert "hashFiles('mkdbook/**', 'book/**', 'pyproject.toml')" in restore["with"]["key"]
    # Saved whatever became of the build, under the key restore computed.
    assert save["if"].startswith("always()")
    assert save["with"]["key"] == f"${{{{ steps.{restore['id']}.outputs.cache-primary-key }}}}"
    assert order.index("actions/cache/restore") < order.index("tools/build-book")
    assert order.index("actions/cache/save") > order.index("tools/build-book")
    # No Chrome: a clear failure before the hour-long build.
    chrome = next(s for s in build["steps"] if "google-chrome" in s.get("run", ""))
    assert "::error::" in chrome["run"] and build["steps"].index(chrome) < order.index("tools/build-book")
    # The downloads the introduction links to, published beside the pages.
    runs = "\n".join(step.get("run", "") for step in build["steps"])
    assert "tools/notebook-archive _build/html/mkdbook-notebooks.zip" in runs
    assert "--builder pdflatex" in runs and "cp _build/latex/mkdbook.pdf _build/html/mkdbook.pdf" in runs
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["latex"]["latex_documents"]["targetname"] == "mkdbook.tex"
    intro = (ROOT / "book" / "intro.md").read_text()
    assert '<a href="mkdbook-notebooks.zip">' in intro and '<a href="mkdbook.pdf">' in intro
    assert steps["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert [step["uses"].split("@")[0] for step in deploy["steps"]] == ["actions/deploy-pages"]
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}


def test_pull_requests_run_the_unit_tests_and_the_chapters():
    tests = _workflow()["jobs"]["tests"]
    assert tests["if"] == "github.event_name == 'pull_request'"
    assert tests["env"]["MKDBOOK_PROFILE"] == "fast"
    assert "3.13" in _steps(tests)["actions/setup-python"]["with"]["python-version"]
    runs = [step["run"] for step in tests["steps"] if "run" in step]
    assert any("pytest tests --ignore=tests/browser" in run for run in runs)
    assert any("pytest book --nbval-lax --nbval-current-env" in run for run in runs)
    assert all(run.startswith("source tools/setup-env.sh") for run in runs)


def test_the_workflow_tags_each_version():
    import mkdbook

    release = _workflow()["jobs"]["release"]
    assert release["permissions"] == {"contents": "write"} and release["needs"] == "build"
    script = release["steps"][-1]["run"]
    version = re.search(r"sed -n '(.*?)' ([\w/.]+)", script)
    found = subprocess.run(["sed", "-n", version.group(1), version.group(2)], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == mkdbook.__version__
    assert 'git tag "v$version"' in script


def test_notebook_archive_holds_every_chapter(tmp_path):
    import zipfile

    archive = tmp_path / "notebooks.zip"
    subprocess.run([ROOT / "tools" / "notebook-archive", archive], check=True, cwd=tmp_path)
    with zipfile.ZipFile(archive) as zipped:
        assert zipped.testzip() is None
        names = zipped.namelist()
        assert names == sorted(p.name for p in (ROOT / "book").glob("*.ipynb"))
        for name in names:
            assert zipped.read(name) == (ROOT / "book" / name).read_bytes()
