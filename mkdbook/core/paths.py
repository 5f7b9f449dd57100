"""Where the package keeps what it writes: one folder, chosen by ``MKDBOOK_HOME``.

A leaf module (it imports nothing from the package), so the data layer can
find its cache folder without depending on the run profiles.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Return the folder for simulated cohorts, caches and results (``MKDBOOK_HOME``).

    Returns
    -------
    Path
        ``$MKDBOOK_HOME`` with ``~`` expanded, ``~/.cache/mkdbook`` when unset.
    """
    return Path(os.environ.get("MKDBOOK_HOME", Path.home() / ".cache" / "mkdbook")).expanduser()


def results_dir() -> Path:
    """The folder of cached cell results, ``$MKDBOOK_HOME/results``."""
    return home() / "results"
