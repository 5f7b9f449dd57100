"""Write ``environment.yml`` and ``binder/environment.yml`` from ``tools/requirements.lock``.

Both conda environments take Python from conda-forge and every other package
from pip, at the releases the lock file pins, so that a conda or Binder
session computes with the same releases as the book build. ``tools/lock``
runs this after it writes the lock file; ``tests/test_packaging.py`` checks
that the files on disk are what :func:`render` gives.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "tools" / "requirements.lock"
#: The Python release ``tools/lock`` resolves for.
PYTHON = "3.11"
#: Where pip finds the CPU build of torch that the lock file pins.
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"

CONDA_HEADER = """\
# conda environment for mkdbook, written by tools/lock from
# tools/requirements.lock (do not edit): Python from conda-forge, every
# package at the release the lock file pins, torch's CPU build included.
"""
BINDER_HEADER = """\
# Binder (repo2docker) environment for mkdbook, written by tools/lock from
# tools/requirements.lock (do not edit): the releases the book is built
# with. It holds no local install (no `-e .`), so the image layer it builds
# stays cached between commits until the lock file changes; binder/postBuild
# installs the package itself. torch is PyTorch's CPU build (Binder has no
# GPU; the CUDA build is several GB).
"""


def locked_pins(lock_text: str) -> list[str]:
    """The ``name==release`` lines of a lock file written by ``uv pip compile``, in its order."""
    return re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*==[^\s\\]+)", lock_text, re.MULTILINE)


def render(pins: list[str], header: str, install_checkout: bool) -> str:
    """A conda environment file that installs ``pins`` with pip (and the checkout, editable)."""
    lines = [header.rstrip("\n"), "name: mkdbook", "channels:", "  - conda-forge",
             "dependencies:", f"  - python={PYTHON}", "  - pip", "  - pip:",
             f"      - --extra-index-url {PYTORCH_CPU_INDEX}"]
    lines += [f"      - {pin}" for pin in pins]
    if install_checkout:
        lines.append("      - -e .")
    return "\n".join(lines) + "\n"


def environments() -> dict[Path, str]:
    """Each environment file's path and the text the lock file gives it."""
    pins = locked_pins(LOCK.read_text())
    return {
        ROOT / "environment.yml": render(pins, CONDA_HEADER, install_checkout=True),
        ROOT / "binder" / "environment.yml": render(pins, BINDER_HEADER, install_checkout=False),
    }


if __name__ == "__main__":
    for path, text in environments().items():
        path.write_text(text)
