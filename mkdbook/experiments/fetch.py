"""Install published results (:mod:`mkdbook.experiments.published`) into ``MKDBOOK_HOME``.

:func:`fetch` trusts nothing it downloads until it is checked:

1. the manifest is read and its layout checked
   (:func:`~mkdbook.experiments.published.check_manifest`); when its
   package version or source digest differs from the installed package's,
   nothing more is downloaded and nothing installed: its cells' keys could
   never match (a :class:`Fetched` with ``stale`` set says so);
2. the archive is downloaded into a hidden staging folder inside
   ``MKDBOOK_HOME`` and its size and SHA-256 compared with the manifest's
   (a truncated or altered download is refused);
3. its members are extracted with :mod:`tarfile`'s ``data`` filter (no
   absolute paths, no ``..``, nothing outside the staging folder, no
   device files) and, besides, only regular files and folders the manifest
   lists, each of the size it records; links are refused;
4. every extracted file's SHA-256 is compared with the manifest's, and a
   file the manifest lists but the archive lacks is refused too;
5. only then are the cell folders and stored tables moved into
   ``$MKDBOOK_HOME/results``, each by one rename, so a cell is either
   wholly installed or absent. Cells already there are kept as they are.

Any refusal raises :class:`ValueError` with one line and leaves
``MKDBOOK_HOME`` as it was; the staging folder is removed in every case.
Checkpoints of installed cells are read later like any other, through
:func:`~mkdbook.training.checkpoints.read_checkpoint` (their SHA-256
sidecars come with them, and loads use ``weights_only=True``).

To train a fetched cell again, delete its folder
(:attr:`CellResult.folder <mkdbook.experiments.results.CellResult>`); to
train everything, point ``MKDBOOK_HOME`` at another folder.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mkdbook import __version__
from mkdbook.core.keys import bytes_digest, package_fingerprint
from mkdbook.core.paths import home
from mkdbook.experiments.published import ARCHIVE, MANIFEST, check_manifest

__all__ = ["PAGES_URL", "Fetched", "default_url", "fetch"]

#: Where the book is published; its main-branch build puts each version's results under ``results/<version>/``.
PAGES_URL = "https://mkdbook.github.io/mkdbook/"

_CHUNK = 1 << 20
#: Bytes a manifest may have: some hundred bytes per member, for an archive of at most thousands.
_MANIFEST_LIMIT = 16 << 20


def default_url() -> str:
    """The published results of the installed package's version: ``PAGES_URL + "results/<version>/"``."""
    return f"{PAGES_URL}results/{__version__}/"


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch` did.

    Attributes
    ----------
    url : str
        The folder the manifest and archive were read from.
    cells, tables : int
        Cell folders and stored tables installed.
    kept : int
        Cells and tables left as they were because ``MKDBOOK_HOME`` held them already.
    stale : str or None
        Why nothing was installed when the archive was built by other
        package source, ``None`` otherwise.
    """

    url: str
    cells: int = 0
    tables: int = 0
    kept: int = 0
    stale: str | None = None

    def describe(self, folder: Path) -> str:
        """One line for the command line."""
        if self.stale is not None:
            return f"ignored {self.url}: {self.stale}; nothing installed"
        return (f"installed {self.cells} cells and {self.tables} stored tables from {self.url} into {folder}"
                f" ({self.kept} already there, kept)")


def fetch(url: str | None = None, root: Path | None = None, *, timeout: float = 60.0) -> Fetched:
    """Download published results and install what verifies into ``root``.

    Parameters
    ----------
    url : str, optional
        The folder holding ``manifest.json`` and ``results.tar.gz`` (any URL
        :mod:`urllib.request` opens, ``file://`` included); :func:`default_url` by default.
    root : Path, optional
        The ``MKDBOOK_HOME`` to fill (:func:`mkdbook.core.paths.home` by default).
    timeout : float, default 60
        Seconds a connection may stay silent.

    Returns
    -------
    Fetched

    Raises
    ------
    ValueError
        One line, when the manifest or archive cannot be downloaded or fails
        a check; ``root`` is then left as it was.
    """
    url = url or default_url()
    url = url if url.endswith("/") else url + "/"
    root = Path(root) if root is not None else home()
    where = url + MANIFEST
    text = _download(where, timeout, _MANIFEST_LIMIT)
    try:
        parsed = json.loads(text)
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"{where}: not JSON ({err})") from None
    manifest = check_manifest(parsed, where)
    built = (manifest["package_version"], manifest["package_source"])
    installed = package_fingerprint()
    if built != installed:
        return Fetched(url, stale=f"built by mkdbook {built[0]} (source {built[1][:12]}), but this is "
                                  f"mkdbook {installed[0]} (source {installed[1][:12]}): its cells' keys can "
                                  f"never match")
    root.mkdir(parents=True, exist_ok=True)  # the staging folder's parent, on the same filesystem
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=root))
    try:
        archive = staging / ARCHIVE
        _download_to(url + ARCHIVE, archive, manifest["archive"], timeout)
        tree = staging / "tree"
        _extract(archive, tree, manifest["files"], url + ARCHIVE)
        return _install(tree, root, url)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download(url: str, timeout: float, limit: int | None = None, stream: Any = None) -> bytes:
    """The bytes at ``url`` (written to ``stream`` instead when given); at most ``limit`` + 1 of them."""
    received = bytearray()
    count = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                count += len(chunk)
                if limit is not None and count > limit:
                    raise ValueError(f"{url}: more than the {limit} bytes expected")
                if stream is None:
                    received += chunk
                else:
                    stream.write(chunk)
    except (OSError, http.client.HTTPException) as err:  # urllib's URLError and HTTPError are OSErrors
        # "HTTP Error 404: Not Found", "[Errno 111] Connection refused", "IncompleteRead(...)".
        detail = err if isinstance(err, urllib.error.HTTPError) else getattr(err, "reason", None) or repr(err)
        raise ValueError(f"{url}: cannot be downloaded ({detail})") from None
    return bytes(received)


def _download_to(url: str, path: Path, expected: dict[str, Any], timeout: float) -> None:
    with path.open("wb") as stream:
        _download(url, timeout, expected["bytes"], stream)
    data = path.read_bytes()
    if len(data) != expected["bytes"]:
        raise ValueError(f"{url}: truncated ({len(data)} of the {expected['bytes']} bytes the manifest records)")
    if bytes_digest(data) != expected["sha256"]:
        raise ValueError(f"{url}: its SHA-256 does not match the manifest's (altered or damaged)")


def _extract(archive: Path, tree: Path, files: dict[str, dict[str, Any]], where: str) -> None:
    folders = {parent.as_posix() for name in files for parent in Path(name).parents}

    def listed(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        member = tarfile.data_filter(member, path)  # refuses absolute paths, "..", links leaving the folder
        if member.isdir() and member.name in folders:
            return member
        if not member.isfile():
            raise tarfile.FilterError(f"{member.name!r} is not a regular file")
        if member.name not in files or member.size != files[member.name]["bytes"]:
            raise tarfile.FilterError(f"{member.name!r} is not in the manifest, or not of the size it records")
        return member

    if not hasattr(tarfile, "data_filter"):  # PEP 706, in Python 3.11.4 and later
        raise ValueError(f"{where}: extracting it safely needs Python 3.11.4 or later (tarfile's data filter)")
    try:
        with tarfile.open(archive, "r:gz") as stream:
            stream.extractall(tree, filter=listed)
    except (tarfile.TarError, EOFError, OSError) as err:  # FilterError is a TarError
        raise ValueError(f"{where}: refused ({type(err).__name__}: {err})") from None
    for name, entry in files.items():
        path = tree / name
        if not path.is_file():
            raise ValueError(f"{where}: member {name} that the manifest lists is missing")
        if bytes_digest(path.read_bytes()) != entry["sha256"]:
            raise ValueError(f"{where}: member {name} does not match its SHA-256 in the manifest")


def _install(tree: Path, root: Path, url: str) -> Fetched:
    """Move each cell folder and stored table of ``tree/results`` to ``root/results`` unless already there."""
    counts = {"cells": 0, "tables": 0, "kept": 0}
    results = root / "results"
    staged = tree / "results"
    if not staged.is_dir():  # an archive of a build that stored nothing
        return Fetched(url, **counts)
    moves = [(entry, "cells") for entry in sorted(staged.iterdir()) if entry.name != "tables"]
    results.mkdir(exist_ok=True)  # only now: a refused archive leaves no trace
    if (staged / "tables").is_dir():
        (results / "tables").mkdir(exist_ok=True)
        moves += [(entry, "tables") for entry in sorted((staged / "tables").iterdir())]
    for entry, kind in moves:
        target = results / entry.relative_to(staged)
        if target.exists():
            counts["kept"] += 1
            continue
        # One rename per cell: it is whole or absent, never partly there.
        try:
            os.rename(entry, target)
        except OSError:
            if not target.exists():
                raise
            counts["kept"] += 1  # another process stored it meanwhile
            continue
        counts[kind] += 1
    return Fetched(url, **counts)
