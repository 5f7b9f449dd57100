"""Reading DEAP's preprocessed Python files safely and checking what they hold.

Each ``sNN.dat`` of ``data_preprocessed_python/`` is a Python-2 pickle of a
dict with ``data`` (40 trials x 40 channels x 8064 samples) and ``labels``
(40 trials x 4 ratings). A pickle can name any callable and run it while it
loads, so the files are read by :func:`mkdbook.data.readers.safe_pickle.loads`, which
interprets the pickle itself and builds nothing but containers and plain
numpy arrays.

Files are memory-mapped, not read: the checksum and the parser then see the
page cache's own bytes, and a Python-2 file's array is a view of them, so
preparing the segment cache copies each byte once, into the cache. The price:
a file truncated by another process while it is mapped ends this one with
SIGBUS instead of an error, a risk only for files being rewritten in place.
"""

from __future__ import annotations

import mmap
import os
import re
import stat
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.readers.base import (
    DataFormatError,
    Reader,
    SubjectRecording,
    SubjectSource,
    check_ratings,
    check_samples,
)
from mkdbook.data.readers.safe_pickle import UnsafePickleError, loads

__all__ = ["SUBJECTS", "DeapFormatError", "DeapReader", "SubjectRecording", "find_subject_files",
           "read_subject_file", "subject_number"]

#: DEAP's subjects are numbered 1 to 32.
SUBJECTS: range = range(1, 33)

_SUBJECT_FILE = re.compile(r"^s(\d{2})\.dat$")


class DeapFormatError(DataFormatError):
    """A file is not a valid DEAP preprocessed subject file.

    The message is one line that names the file and what was expected, so
    the command line can print it as it is.
    """


def subject_number(path: Path | str) -> int:
    """Return the subject number encoded in a DEAP file name (``s01.dat`` -> 1).

    Raises
    ------
    DeapFormatError
        If the name is not ``sNN.dat`` with NN from 01 to 32.
    """
    match = _SUBJECT_FILE.match(Path(path).name)
    if not match or int(match.group(1)) not in SUBJECTS:
        raise DeapFormatError(path, "file name must be sNN.dat with NN from 01 to 32, for example s01.dat")
    return int(match.group(1))


def find_subject_files(deap_dir: Path | str, subjects: Iterable[int] | None = None) -> list[Path]:
    """List the ``sNN.dat`` files of a DEAP folder, in subject order.

    Parameters
    ----------
    deap_dir : path-like
        A ``data_preprocessed_python/`` folder (real or simulated).
    subjects : iterable of int, optional
        Subject numbers to keep; all files present when omitted.

    Returns
    -------
    list of Path

    Raises
    ------
    FileNotFoundError
        If the folder does not exist, holds no ``sNN.dat`` file, or lacks a
        requested subject.
    DeapFormatError
        If a file is named ``sNN.dat`` with NN outside 1-32, or a listed
        ``sNN.dat`` is not a regular file (a folder, a FIFO, a device, a
        socket, a symbolic-link loop).
    """
    folder = Path(deap_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; expected DEAP's data_preprocessed_python/")
    found = {subject_number(p): p for p in folder.iterdir() if _SUBJECT_FILE.match(p.name)}
    if not found:
        raise FileNotFoundError(f"{folder}: no sNN.dat files; expected DEAP's data_preprocessed_python/")
    wanted = sorted(found) if subjects is None else sorted(set(subjects))
    missing = [s for s in wanted if s not in found]
    if missing:
        names = ", ".join(f"s{s:02d}.dat" for s in missing)
        raise FileNotFoundError(f"{folder}: missing {names}")
    chosen = [found[s] for s in wanted]
    for path in chosen:
        with _os_errors(path):
            _check_regular(path, path.stat())
    return chosen


@contextmanager
def _os_errors(path: Path) -> Iterator[None]:
    """Turn the operating system's errors about ``path`` into one line naming it."""
    try:
        yield
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except OSError as err:  # permission denied, a symbolic-link loop...
        raise DeapFormatError(path, f"cannot be read ({err.strerror or err})") from None


def _check_regular(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
        raise DeapFormatError(path, f"expected a regular file, found {kind}")


def _map(path: Path) -> bytes | mmap.mmap:
    """The file's bytes as a read-only memory map (``b""`` for an empty file, which cannot be mapped)."""
    with _os_errors(path):
        # Checked before opening: opening a FIFO for reading waits for a writer.
        _check_regular(path, path.stat())
        # O_NONBLOCK: should the path become a FIFO after the check, opening it
        # still returns at once (and fstat refuses it); regular files ignore the flag.
        with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as stream:
            info = os.fstat(stream.fileno())
            _check_regular(path, info)
            if info.st_size == 0:
                return b""
            # The map outlives the descriptor and lives as long as a view of it.
            return mmap.mmap(stream.fileno(), info.st_size, access=mmap.ACCESS_READ)


def read_subject_file(path: Path | str, *, mapped: bool = False) -> SubjectRecording:
    """Read and validate one DEAP subject file.

    Parameters
    ----------
    path : path-like
        An ``sNN.dat`` file of DEAP's preprocessed Python release.
    mapped : bool
        Leave ``data`` a view of the file's memory map where it is one (a
        Python-2 file's), even a misaligned one: no copy, which is what the
        segment cache wants for the moment it takes to segment a subject.
        Such a view must not outlive the file's content: truncating the file
        under it ends the process (SIGBUS). By default the arrays own their
        memory.

    Returns
    -------
    SubjectRecording
        Its arrays are read-only.

    Raises
    ------
    DeapFormatError
        If the name is not ``s01.dat`` to ``s32.dat``, the path is not a
        readable regular file, or the file is truncated, is not a pickle,
        names a global other than numpy's array constructors, breaks
        :mod:`~mkdbook.data.readers.safe_pickle`'s bounds, or holds keys, shapes,
        dtypes, values or ratings other than DEAP's.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    subject = subject_number(path)
    raw = _map(path)
    crc = zlib.crc32(raw)
    content = _load(path, raw, aligned=not mapped)
    if not isinstance(content, dict):
        raise DeapFormatError(path, f"expected a dict with 'data' and 'labels', got {type(content).__name__}")
    if set(content) != {"data", "labels"}:
        raise DeapFormatError(path, f"expected keys ['data', 'labels'], got {sorted(map(str, content))}")
    data = check_samples(path, content["data"], "data", (DEAP.n_trials, len(DEAP.channels), DEAP.n_samples),
                         DeapFormatError)
    labels = check_samples(path, content["labels"], "labels", (DEAP.n_trials, len(DEAP.rating_scales)),
                           DeapFormatError)
    check_ratings(path, labels, DEAP, error=DeapFormatError)
    if not mapped and _views_map(data):
        data = data.copy()
        data.flags.writeable = False
    return SubjectRecording(subject=subject, data=data, labels=labels, path=path, crc32=crc)


def _views_map(array: np.ndarray) -> bool:
    """Whether ``array`` is a view of a memory map (its chain of bases ends in one)."""
    base: object = array
    while isinstance(base, np.ndarray):
        base = base.base
    return isinstance(base, memoryview) and isinstance(base.obj, mmap.mmap)


def _load(path: Path, raw: bytes | mmap.mmap, aligned: bool) -> object:
    try:
        return loads(raw, aligned=aligned)
    except UnsafePickleError as err:
        raise DeapFormatError(path, f"not a DEAP pickle ({err})") from None
    except (MemoryError, RecursionError) as err:
        raise DeapFormatError(path, f"not a DEAP pickle ({type(err).__name__} while loading)") from None


@dataclass(frozen=True)
class DeapReader(Reader):
    """DEAP's preprocessed Python release: one ``sNN.dat`` per subject, layout :data:`~mkdbook.data.layout.DEAP`.

    >>> DeapReader().layout(Path("data_preprocessed_python"), []).name
    'DEAP'
    """

    format = "deap"

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """Whether ``folder`` holds a file named like DEAP's (``sNN.dat``)."""
        try:
            with os.scandir(folder) as entries:
                return any(_SUBJECT_FILE.match(entry.name) for entry in entries)
        except OSError:
            return False

    def find(self, folder: Path, subjects: Iterable[int] | None = None) -> list[SubjectSource]:
        """The ``sNN.dat`` files of ``folder`` (:func:`find_subject_files`), one source each."""
        return [SubjectSource(subject_number(path), (path,)) for path in find_subject_files(folder, subjects)]

    def layout(self, folder: Path, sources: Sequence[SubjectSource]) -> Layout:
        """Always :data:`~mkdbook.data.layout.DEAP`."""
        return DEAP

    def read(self, source: SubjectSource, *, mapped: bool = False) -> SubjectRecording:
        """:func:`read_subject_file` of the source's file."""
        return read_subject_file(source.path, mapped=mapped)

    def describe(self, folder: Path) -> str:
        """``"DEAP (<folder name>)"``."""
        return f"DEAP ({Path(folder).name})"
