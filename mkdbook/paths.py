"""Where the package keeps what it computes: ``MKDBOOK_HOME``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home"]


def home() -> Path:
    """Return the folder for simulated cohorts, caches and results (``MKDBOOK_HOME``).

    Defaults to ``~/.cache/mkdbook``.
    """
    return Path(os.environ.get("MKDBOOK_HOME", Path.home() / ".cache" / "mkdbook")).expanduser()
