"""Checkpoint files that carry their checksum, and are trusted only when it matches.

Every ``.pt`` file the package writes (``best.pt``, ``last.pt``,
``scaler.pt``, ``teacher_final.pt``, ``hints.pt``) goes through
:func:`save_checkpoint`, and every one it reads through
:func:`load_checkpoint` or :func:`read_checkpoint`:

* the state is serialised in memory, its SHA-256 taken, and the file
  written atomically (:func:`~mkdbook.core.atomic.write_atomically`);
* only then is the checksum written, atomically too, beside it as
  ``<name>.sha256`` (one line in ``sha256sum`` format, so
  ``sha256sum -c best.pt.sha256`` checks it by hand);
* a load hashes the file's bytes and unpickles them (``weights_only=True``)
  only when the digest matches.

A file is therefore *verified* exactly when its bytes hash to the digest
recorded beside it. A file without a checksum (a crash between the two
writes, or a file from an older version of the package), with a checksum
that does not match (flipped bytes, a truncated copy) or that does not
unpickle is *unverified*, and the work it held is done again; nothing is
ever computed from it.

The resumable ``last.pt`` is rewritten every epoch, so its previous good
state is kept as ``last.prev.pt`` (:func:`save_resume_state`): if the new
``last.pt`` is unverified (a crash between the file and its checksum, or
damage), :func:`load_resume_state` resumes from the epoch before instead.
"""

from __future__ import annotations

import io
import os
import uuid
import warnings
from pathlib import Path
from typing import Any

import torch

from mkdbook.core.atomic import write_atomically
from mkdbook.core.keys import bytes_digest

__all__ = [
    "CHECKSUM_SUFFIX",
    "DamagedCheckpointError",
    "checksum_path",
    "discard_resume_state",
    "load_checkpoint",
    "load_resume_state",
    "previous_path",
    "read_checkpoint",
    "save_checkpoint",
    "save_resume_state",
    "verified_digest",
]

#: Added to a checkpoint's name to name the file that holds its SHA-256.
CHECKSUM_SUFFIX = ".sha256"


class DamagedCheckpointError(ValueError):
    """A checkpoint that is present but unverified: no checksum, a wrong one, or unreadable bytes."""


def checksum_path(path: Path | str) -> Path:
    """The file that holds the SHA-256 of checkpoint ``path``: ``<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def previous_path(path: Path | str) -> Path:
    """Where :func:`save_resume_state` keeps the previous good state of ``path``: ``last.pt`` -> ``last.prev.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def _recorded_digest(path: Path) -> str:
    """The digest recorded for ``path``; raises :class:`DamagedCheckpointError` without a valid record."""
    try:
        text = checksum_path(path).read_text(encoding="ascii")
    except FileNotFoundError:
        raise DamagedCheckpointError(f"{path}: no checksum beside it ({checksum_path(path).name} is "
                                     f"missing), so it cannot be verified") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DamagedCheckpointError(f"{path}: its checksum cannot be read ({err})") from None
    digest = text.split(maxsplit=1)[0] if text.strip() else ""
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise DamagedCheckpointError(f"{path}: {checksum_path(path).name} holds no SHA-256")
    return digest


def _verified_bytes(path: Path) -> bytes:
    expected = _recorded_digest(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DamagedCheckpointError(f"{path}: cannot be read ({err})") from None
    if bytes_digest(data) != expected:
        raise DamagedCheckpointError(f"{path}: its SHA-256 does not match {checksum_path(path).name} "
                                     f"(damaged or truncated)")
    return data


def verified_digest(path: Path | str) -> str | None:
    """The SHA-256 of checkpoint ``path`` if it is present and verified, ``None`` otherwise."""
    path = Path(path)
    try:
        return bytes_digest(_verified_bytes(path))
    except DamagedCheckpointError:
        return None


def save_checkpoint(path: Path | str, state: dict[str, Any]) -> str:
    """Write ``state`` to ``path`` atomically, then its checksum beside it; return the digest.

    Parameters
    ----------
    path : path-like
        The checkpoint (its folder must exist).
    state : dict
        What :func:`torch.save` writes: tensors, numbers, strings, lists
        and dicts of them, so that a ``weights_only`` load reads it back.

    Notes
    -----
    The checksum is written second, so a crash between the two writes
    leaves a checkpoint whose checksum is missing or stale: unverified,
    never trusted.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    digest = bytes_digest(data)
    write_atomically(path, lambda stream: stream.write(data))
    _write_checksum(path, digest)
    return digest


def _write_checksum(path: Path, digest: str) -> None:
    line = f"{digest}  {path.name}\n".encode("ascii")
    write_atomically(checksum_path(path), lambda stream: stream.write(line))


def read_checkpoint(path: Path | str, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a verified checkpoint (``weights_only=True``).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    DamagedCheckpointError
        If it is unverified: no checksum, a checksum that does not match,
        or bytes that do not unpickle to a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    data = _verified_bytes(path)
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    # Verified bytes that still fail to load were written by another version of
    # PyTorch or of the package: unusable all the same, whatever the exception.
    except Exception as err:
        raise DamagedCheckpointError(f"{path}: cannot be loaded ({type(err).__name__}: "
                                     f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict):
        raise DamagedCheckpointError(f"{path}: holds a {type(state).__name__}, not a checkpoint")
    return state


def load_checkpoint(path: Path | str, map_location: torch.device | str = "cpu", *,
                    redo: str = "it is computed again") -> dict[str, Any] | None:
    """A verified checkpoint, or ``None`` (with a warning naming the file if it is unverified).

    Parameters
    ----------
    path : path-like
    map_location : device or str
        Where its tensors are loaded.
    redo : str
        What the caller does instead, for the warning.

    Returns
    -------
    dict or None
        ``None`` when the file is absent (silently) or unverified (with a
        :class:`UserWarning`).
    """
    try:
        return read_checkpoint(path, map_location)
    except FileNotFoundError:
        return None
    except DamagedCheckpointError as err:
        warnings.warn(f"{err}; {redo}", stacklevel=2)
        return None


def save_resume_state(path: Path | str, state: dict[str, Any]) -> None:
    """Rewrite a resumable checkpoint, keeping its previous verified state as ``last.prev.pt``.

    The current file becomes the previous state (a hard link, or a copy
    where links are not supported) only when it verifies, with its
    checksum written after it; then :func:`save_checkpoint` writes the new
    one. At every point of the sequence one of the two files verifies.
    """
    path = Path(path)
    digest = verified_digest(path)
    if digest is not None:
        previous = previous_path(path)
        _link_or_copy(path, previous)
        _write_checksum(previous, digest)
    save_checkpoint(path, state)


def _link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source``'s bytes, atomically; a hard link costs no copy."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        os.link(source, temporary)
        os.replace(temporary, target)
    except OSError:
        temporary.unlink(missing_ok=True)
        data = source.read_bytes()
        write_atomically(target, lambda stream: stream.write(data))


def load_resume_state(path: Path | str, map_location: torch.device | str = "cpu") -> dict[str, Any] | None:
    """The newest verified resumable state: ``path``, else its previous state, else ``None``.

    An unverified file is named in a warning and passed over, never loaded.
    """
    path = Path(path)
    state = load_checkpoint(path, map_location, redo="resuming from the previous epoch's state if "
                                                     "it verifies, from the start otherwise")
    if state is None:
        state = load_checkpoint(previous_path(path), map_location, redo="training from the start")
    return state


def discard_resume_state(path: Path | str) -> None:
    """Remove a resumable checkpoint, its previous state and both checksums (once a run is stored)."""
    path = Path(path)
    for checkpoint in (path, previous_path(path)):
        checkpoint.unlink(missing_ok=True)
        checksum_path(checkpoint).unlink(missing_ok=True)
