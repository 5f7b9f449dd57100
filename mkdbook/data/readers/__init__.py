"""Readers of recorded data sets, and the registry of formats that ``--format`` names.

A reader (:class:`~mkdbook.data.readers.base.Reader`) finds the subjects of a
folder, says what they hold (a :class:`~mkdbook.data.layout.Layout`) and reads
one subject into signals and ratings. Two formats are registered:

:mod:`~mkdbook.data.readers.deap` (``"deap"``)
    DEAP's preprocessed Python files, read without running them
    (:mod:`~mkdbook.data.readers.safe_pickle`).
:mod:`~mkdbook.data.readers.bids` (``"bids"``)
    An EEG data set in BIDS, read with ``mne-bids``.

A folder's format is inferred (:func:`infer_format`: a folder with
``dataset_description.json`` is BIDS, one with ``sNN.dat`` files DEAP) or
named. A new format is a :class:`Reader` subclass passed to
:func:`register_format`; the README's "A new data set" shows one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from mkdbook.data.readers.base import (
    DataFormatError,
    Reader,
    SubjectRecording,
    SubjectSource,
    check_recording,
)
from mkdbook.data.readers.bids import BidsFormatError, BidsReader
from mkdbook.data.readers.deap import DeapFormatError, DeapReader

__all__ = [
    "BidsFormatError", "BidsReader", "DataFormatError", "DeapFormatError", "DeapReader", "FORMATS", "Reader",
    "SubjectRecording", "SubjectSource", "infer_format", "read_recordings", "reader_for", "register_format",
]

#: Format name -> reader class, in the order inference tries them.
FORMATS: dict[str, type[Reader]] = {"deap": DeapReader, "bids": BidsReader}


def register_format(reader_class: type[Reader]) -> type[Reader]:
    """Add a reader class to :data:`FORMATS` under its :attr:`~Reader.format` (usable as a decorator).

    Raises
    ------
    TypeError
        If ``reader_class`` is not a :class:`Reader` subclass.
    ValueError
        If its format name is empty or taken by another class.
    """
    if not (isinstance(reader_class, type) and issubclass(reader_class, Reader)):
        raise TypeError(f"a format must be a subclass of mkdbook.data.readers.Reader, got {reader_class!r}")
    name = getattr(reader_class, "format", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{reader_class.__name__}.format must be a non-empty string, got {name!r}")
    if FORMATS.get(name, reader_class) is not reader_class:
        raise ValueError(f"format {name!r} is taken by {FORMATS[name].__name__}")
    FORMATS[name] = reader_class
    return reader_class


def infer_format(folder: Path | str) -> str:
    """The one registered format that recognises ``folder``.

    Raises
    ------
    FileNotFoundError
        If ``folder`` is not a folder, or no format recognises it.
    ValueError
        If several do: the format must then be named.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; expected a data set ({_known()})")
    matches = [name for name, reader_class in FORMATS.items() if reader_class.recognises(folder)]
    if not matches:
        raise FileNotFoundError(f"{folder}: holds no data set that mkdbook can read; expected {_known()}")
    if len(matches) > 1:
        raise ValueError(f"{folder}: looks like {' and '.join(matches)} data at once; name its format "
                         f"(--format {' or --format '.join(matches)})")
    return matches[0]


def _known() -> str:
    described = {"deap": "DEAP's sNN.dat files", "bids": "a BIDS data set (dataset_description.json)"}
    return " or ".join(described.get(name, f"{name} data") for name in FORMATS)


def reader_for(folder: Path | str, reader: Reader | str | None = None) -> Reader:
    """The reader of ``folder``: ``reader`` itself, the registered format it names, or the inferred one.

    Parameters
    ----------
    folder : path-like
        The data folder.
    reader : Reader, str or None
        A reader, a key of :data:`FORMATS` (``"deap"``, ``"bids"``) read with
        its default options, or ``None`` to infer the format from the folder.

    Raises
    ------
    ValueError
        If ``reader`` names no registered format, or names one that does
        not recognise a folder that another format does (a mismatch).
    FileNotFoundError
        As :func:`infer_format`, when inferring.
    """
    if isinstance(reader, Reader):
        chosen = reader
    elif reader is None:
        return FORMATS[infer_format(folder)]()
    elif reader in FORMATS:
        chosen = FORMATS[reader]()
    else:
        raise ValueError(f"format must be one of {tuple(FORMATS)}, got {reader!r}")
    folder = Path(folder)
    if folder.is_dir() and not type(chosen).recognises(folder):
        others = [name for name, reader_class in FORMATS.items() if reader_class.recognises(folder)]
        if others:
            raise ValueError(f"{folder}: format {chosen.format!r} was asked for, but the folder holds "
                             f"{' and '.join(others)} data; drop the format to infer it, or give "
                             f"a {chosen.format} folder")
    return chosen


def read_recordings(folder: Path | str, subjects: Iterable[int] | None = None,
                    reader: Reader | str | None = None) -> Iterator[SubjectRecording]:
    """Read the subjects of any registered format, one after the other, checked against their layout.

    Parameters
    ----------
    folder : path-like
    subjects : iterable of int, optional
        All subjects by default.
    reader : Reader, str or None
        As :func:`reader_for`.

    Yields
    ------
    recording : SubjectRecording
        In subject order; ``recording.layout`` says what it holds.
    """
    chosen = reader_for(folder, reader)
    sources = chosen.find(Path(folder), subjects)
    layout = chosen.layout(Path(folder), sources)
    for source in sources:
        yield check_recording(chosen.read(source), layout)
