"""Writing a file so that it is either whole or absent.

Every file the package writes (simulated subjects, caches, checkpoints,
results) goes through :func:`write_atomically`, so an interrupted run never
leaves half a file for a later run to trust.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: Path | str, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` through a temporary sibling that is renamed into place.

    Parameters
    ----------
    path : path-like
        The file to (re)write.
    write : callable
        Called with the open binary stream, for example
        ``lambda f: torch.save(state, f)``.

    Notes
    -----
    A reader sees the old file or the complete new one, never a part. A
    failure removes the temporary file; a hard kill may leave one behind,
    under a hidden name that nothing reads.
    """
    path = Path(path)
    # Opened by hand rather than with tempfile, whose files are private (0600).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with temporary.open("xb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
