"""Installing a complete folder atomically while other processes may build or read the same one.

A build writes into a temporary sibling of the target folder (:func:`sibling`)
and :func:`install` renames it into place, so the target is at every instant
the old folder, absent, or complete; a folder that a concurrent build
installed meanwhile is kept. The temporary and set-aside siblings name their
host and process, so that later callers can remove those of killed builds
(:func:`remove_abandoned`) and leave those of running ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import time
import uuid
from pathlib import Path

#: A temporary folder untouched for this long is abandoned even if a process
#: with its PID runs (PIDs are reused, and another host's PIDs mean nothing here).
_ABANDONED_AFTER_S = 24 * 3600

#: A folder's device and inode: what tells one folder from another put at the same path.
Identity = tuple[int, int]


def identity(folder: Path) -> Identity | None:
    """The device and inode of ``folder``, which change when another folder is put in its place.

    Parameters
    ----------
    folder : Path

    Returns
    -------
    Identity or None
        ``None`` when nothing is at that path.
    """
    try:
        stat = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return stat.st_dev, stat.st_ino


def _host() -> str:
    # Dashes separate the fields of a temporary folder's name.
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())


def sibling(folder: Path, kind: str) -> Path:
    """A new sibling of ``folder`` that names this host and process, for :func:`remove_abandoned`.

    Parameters
    ----------
    folder : Path
        The folder to be installed.
    kind : {"tmp", "old"}
        ``"tmp"`` for a folder being built, ``"old"`` for one set aside.

    Returns
    -------
    Path
        ``<folder>.<kind>-<host>-<pid>-<random>``, not yet created.
    """
    return folder.with_name(f"{folder.name}.{kind}-{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # no harmless liveness test elsewhere; the age limit still applies
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _last_write(folder: Path) -> float:
    # A running build keeps writing signals.npy, not the folder itself.
    with contextlib.suppress(OSError):
        return max([folder.stat().st_mtime] + [p.stat().st_mtime for p in folder.iterdir()])
    return time.time()


def _abandoned(path: Path, prefix: str) -> bool:
    """Whether ``path``, a temporary folder named ``prefix`` + owner, belongs to no running build."""
    owner = path.name[len(prefix):].split("-")
    if len(owner) == 1:
        host, pid = _host(), owner[0]  # ``<name>.tmp-<pid>`` of earlier versions
    elif len(owner) == 3:
        host, pid = owner[0], owner[1]
    else:
        return False
    if not pid.isdigit():
        return False
    if host == _host() and not _alive(int(pid)):
        return True
    return time.time() - _last_write(path) > _ABANDONED_AFTER_S


def remove_abandoned(folder: Path) -> None:
    """Delete the temporary and set-aside copies of ``folder`` left by killed builds.

    A copy is abandoned when its process, on this host, no longer runs, or
    when nothing in it was written for a day;
    the copies of running builds stay.

    Parameters
    ----------
    folder : Path
        The installed folder, present or not; its parent need not exist.
    """
    try:
        siblings = list(folder.parent.iterdir())
    except OSError:
        return  # no cache folder yet, so nothing left over either
    for path in siblings:
        for kind in ("tmp", "old"):
            prefix = f"{folder.name}.{kind}-"
            if path.name.startswith(prefix) and _abandoned(path, prefix):
                shutil.rmtree(path, ignore_errors=True)


def cannot_write(folder: Path, err: OSError) -> OSError:
    """The error to raise when ``folder`` cannot be written, naming the path at fault.

    Parameters
    ----------
    folder : Path
        The folder that was to be written.
    err : OSError
        What the failed write raised.

    Returns
    -------
    OSError
        With ``err``'s error number and a one-line message that names
        ``folder`` and the path at fault: the nearest existing ancestor when
        it is a file, else the path ``err`` names.
    """
    # os.path rather than Path: an unsearchable folder must not raise in here.
    existing = next(p for p in folder.absolute().parents if os.path.exists(p))
    if not os.path.isdir(existing):
        why = f"{existing} is a file, not a folder"
    else:
        why = f"{err.strerror} ({err.filename or existing})"
    return OSError(err.errno, f"cannot write the segment cache {folder}: {why}")


def _set_aside(folder: Path, aside: Path, judged: Identity) -> None:
    """Rename the judged cache ``folder`` to ``aside``, putting back any other cache."""
    try:
        os.rename(folder, aside)
    except FileNotFoundError:
        return  # a concurrent build set it aside already
    if identity(aside) != judged:
        # A concurrent build installed this cache after the judgement: it stays.
        with contextlib.suppress(OSError):
            os.rename(aside, folder)


def install(tmp: Path, folder: Path, judged: Identity | None) -> None:
    """Move the complete cache ``tmp`` to ``folder`` unless another build installed one first.

    The old cache is renamed aside and deleted only after the new one is in
    place, so ``folder`` is at every instant the old cache, absent, or a
    complete cache; a rename onto a cache that a concurrent build installed
    meanwhile fails (the folder is not empty) and that cache is kept.

    Parameters
    ----------
    tmp : Path
        The complete new folder, a :func:`sibling` of ``folder``.
    folder : Path
        Where it goes.
    judged : Identity or None
        The :func:`identity` of the folder found unusable (``None`` if there
        was none): only that very folder is replaced.

    Raises
    ------
    OSError
        From :func:`cannot_write`, if the rename fails and no other build
        installed a folder meanwhile; ``tmp`` is then left in place.
    """
    aside = sibling(folder, "old")
    try:
        if judged is not None and identity(folder) == judged:
            _set_aside(folder, aside, judged)
        os.rename(tmp, folder)
    except OSError as err:
        if identity(folder) in (None, judged):
            raise cannot_write(folder, err) from err
    finally:
        shutil.rmtree(aside, ignore_errors=True)

