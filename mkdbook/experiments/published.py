"""Published results: a book build's finished cells as one archive with a SHA-256 manifest.

The main-branch build of the book trains every network its chapters show
(in the default profile); :func:`publish` packs what it stored so that a
reader's ``mkdbook fetch`` (:mod:`mkdbook.experiments.fetch`) can install it
into their own ``MKDBOOK_HOME`` and open a chapter in a minute instead of
training for a quarter of an hour. Two files, written side by side:

``results.tar.gz``
    Members named relative to ``MKDBOOK_HOME``: every finished cell folder
    ``results/<key>/`` (``result.json``, ``predictions.npz``, the
    checkpoints in ``train/`` with their checksums, a teacher's
    ``teacher_outputs/``) and the chapters' stored tables
    ``results/tables/<key>.json``.
``manifest.json``
    The package version and source digest of the build
    (:func:`~mkdbook.core.keys.package_fingerprint`), the archive's size
    and SHA-256, and the size and SHA-256 of every member.

Left out: the checkpoints no chapter loads from a finished cell
(:data:`UNLOADED`, more than half the bytes of the default profile's cells),
simulated cohorts, segment caches and the sweeps' band-power
features (re-made from their seeds in less time than they take to
download), leases, temporary files, unfinished cells and cells stored by
another version of the package source (a build's cache is restored from the
previous build's, so it holds the cells of older code too, which no reader
could ever hit). Stored tables record no package, so all of them are packed:
a few kilobytes each, and those of older code are never hit either.

Why a stale archive can never give a wrong number: every published file
lives under a key that hashes the package source (a cell's
:func:`~mkdbook.training.runs.cell_key`, a stored table's key in
:func:`mkdbook.book.chapter.stored_table`; a teacher's stored outputs live
in its cell's folder), so code that differs from the build's never finds
them. ``mkdbook fetch`` therefore compares the manifest's fingerprint with
the installed package's first and installs nothing on a mismatch: files
that could only miss are not worth downloading.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from mkdbook.core.atomic import write_atomically
from mkdbook.core.keys import bytes_digest, package_fingerprint
from mkdbook.core.paths import home
from mkdbook.training.checkpoints import CHECKSUM_SUFFIX

__all__ = ["ARCHIVE", "FORMAT", "MANIFEST", "UNLOADED", "check_manifest", "publish", "published_files"]

#: The manifest's file name, and the archive's, in the folder they are published in.
MANIFEST = "manifest.json"
ARCHIVE = "results.tar.gz"
#: Version of the manifest's layout; a reader refuses any other.
FORMAT = 1

#: Checkpoints of a finished cell that nothing reads back: the teacher after a
#: feedback phase (``teacher_final.pt``, kept for whoever wants to inspect it)
#: and FitNets' stage 1 (``hints.pt``, read only while its cell trains).
#: They are not published, nor their checksums.
UNLOADED = ("teacher_final.pt", "hints.pt")

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _finished_here(folder: Path, fingerprint: tuple[str, str]) -> bool:
    """Whether ``folder`` is a finished cell stored by this package's source (``result.json`` says so)."""
    try:
        record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unfinished (absent) or unreadable: recomputed anyway
        return False
    return isinstance(record, dict) and (record.get("package_version"), record.get("package_source")) == fingerprint


def _regular_files(folder: Path) -> list[Path]:
    # Temporary files of interrupted writes start with a dot (core.atomic); links are never published.
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts)
                  and p.name.removesuffix(CHECKSUM_SUFFIX) not in UNLOADED)


def published_files(root: Path | None = None) -> list[str]:
    """The files of ``root`` that :func:`publish` packs, as sorted POSIX paths relative to it.

    Parameters
    ----------
    root : Path, optional
        An ``MKDBOOK_HOME`` (:func:`mkdbook.core.paths.home` by default).
    """
    root = Path(root) if root is not None else home()
    results = root / "results"
    fingerprint = package_fingerprint()
    files: list[Path] = []
    for entry in sorted(results.iterdir()) if results.is_dir() else ():
        if entry.name == "tables" and entry.is_dir():
            files += [p for p in _regular_files(entry) if p.suffix == ".json"]
        elif entry.is_dir() and not entry.is_symlink() and _finished_here(entry, fingerprint):
            files += _regular_files(entry)
    return [p.relative_to(root).as_posix() for p in files]


def publish(out: Path | str, root: Path | None = None) -> dict[str, Any]:
    """Write ``results.tar.gz`` and, last, ``manifest.json`` into the folder ``out``.

    Parameters
    ----------
    out : path-like
        An existing folder (the book's HTML holds it as ``results/<version>/``).
    root : Path, optional
        The ``MKDBOOK_HOME`` to publish (:func:`mkdbook.core.paths.home` by default).

    Returns
    -------
    dict
        The manifest, as written.
    """
    root = Path(root) if root is not None else home()
    out = Path(out)
    files = {}
    for name in published_files(root):
        data = (root / name).read_bytes()
        files[name] = {"sha256": bytes_digest(data), "bytes": len(data)}

    def write(stream: Any) -> None:
        with tarfile.open(fileobj=stream, mode="w:gz") as archive:
            for name in files:
                archive.add(root / name, arcname=name, recursive=False, filter=_anonymous)

    write_atomically(out / ARCHIVE, write)
    data = (out / ARCHIVE).read_bytes()
    version, source = package_fingerprint()
    manifest = {"format": FORMAT, "package_version": version, "package_source": source,
                "archive": {"name": ARCHIVE, "sha256": bytes_digest(data), "bytes": len(data)}, "files": files}
    text = json.dumps(manifest, indent=1, sort_keys=True)
    # Written last: a folder holds a manifest only when its archive is whole.
    write_atomically(out / MANIFEST, lambda stream: stream.write(text.encode()))
    return manifest


def _anonymous(member: tarfile.TarInfo) -> tarfile.TarInfo:
    # Who built the book is nobody's business; modes are the reader's umask's.
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mode = 0o755 if member.isdir() else 0o644
    return member


def check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """Return ``manifest`` if it has the layout :func:`publish` writes; raise otherwise.

    Every member must be a relative path under ``results/`` without ``..``,
    empty or hidden parts, with a size and a SHA-256.

    Parameters
    ----------
    manifest : object
        The parsed ``manifest.json``.
    where : str
        Where it came from, for the message.

    Raises
    ------
    ValueError
        One line naming ``where`` and what is wrong.
    """
    def refuse(what: str) -> ValueError:
        return ValueError(f"{where}: not a manifest of published results ({what})")

    if not isinstance(manifest, Mapping) or manifest.get("format") != FORMAT:
        raise refuse(f"format must be {FORMAT}")
    for name in ("package_version", "package_source"):
        if not isinstance(manifest.get(name), str):
            raise refuse(f"{name} must be a string")
    archive = manifest.get("archive")
    if not isinstance(archive, Mapping) or archive.get("name") != ARCHIVE or not _sized_digest(archive):
        raise refuse(f"archive must name {ARCHIVE} with its bytes and sha256")
    files = manifest.get("files")
    if not isinstance(files, Mapping):
        raise refuse("files must map member names to their bytes and sha256")
    for name, entry in files.items():
        parts = PurePosixPath(name).parts
        if (len(parts) < 2 or parts[0] != "results" or "\\" in name or name != PurePosixPath(name).as_posix()
                or any(part in ("..", "") or part.startswith(".") for part in parts)):
            raise refuse(f"member {name!r} is not a relative path under results/")
        if not _sized_digest(entry):
            raise refuse(f"member {name!r} needs its bytes and sha256")
    return dict(manifest)


def _sized_digest(entry: Any) -> bool:
    return (isinstance(entry, Mapping) and isinstance(entry.get("sha256"), str)
            and _SHA256.fullmatch(entry["sha256"]) is not None
            and isinstance(entry.get("bytes"), int) and not isinstance(entry["bytes"], bool) and entry["bytes"] >= 0)
