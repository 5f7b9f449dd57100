"""What every reader of a data set provides: the :class:`Reader` protocol and what it hands on.

A reader knows one file format. It finds the recordings (one per subject)
in a folder (:meth:`Reader.find`), says what they hold without reading their
samples (:meth:`Reader.layout`, a :class:`~mkdbook.data.layout.Layout`), and
reads one subject into signals and ratings (:meth:`Reader.read`). The segment
cache (:func:`mkdbook.data.load_segments`) takes any reader, so a new data set
needs a reader and nothing else; :mod:`mkdbook.data.readers` keeps the
registry of formats that the command line's ``--format`` names.

Bad input raises a :class:`DataFormatError`: one line naming the file and
what was expected, which the command line prints as it is.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mkdbook.data.layout import DEAP, Layout

__all__ = ["DataFormatError", "Reader", "SubjectRecording", "SubjectSource", "check_recording", "check_samples"]

# The cache stores float32, so larger finite values would become infinite there.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataFormatError(ValueError):
    """A file does not hold what its format says it should.

    The message is one line that names the file and what was expected, so
    the command line can print it as it is.

    Parameters
    ----------
    path : path-like
        The file (or folder) at fault.
    problem : str
        What is wrong and what was expected.
    """

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class SubjectSource:
    """Where one subject's recording lies: its number and every file it is read from.

    Attributes
    ----------
    subject : int
        Subject number, >= 1 (``s07.dat`` and ``sub-07`` are 7).
    files : tuple of Path
        Every file whose content the reader uses, the main one first (the
        one messages name); the segment cache records their sizes, times
        and checksums to tell when a cache is stale.
    """

    subject: int
    files: tuple[Path, ...]

    def __post_init__(self) -> None:
        if isinstance(self.subject, bool) or not isinstance(self.subject, int) or self.subject < 1:
            raise ValueError(f"subject must be an integer >= 1, got {self.subject!r}")
        object.__setattr__(self, "files", tuple(Path(path) for path in self.files))
        if not self.files:
            raise ValueError(f"subject {self.subject} must have at least one file")

    @property
    def path(self) -> Path:
        """The main file, named in messages."""
        return self.files[0]


@dataclass(frozen=True)
class SubjectRecording:
    """One subject's trials and ratings, as a reader hands them on.

    Attributes
    ----------
    subject : int
        Subject number (``s07.dat`` is 7).
    data : ndarray, shape (layout.n_trials, len(layout.channels), layout.n_samples)
        Trials x channels x samples, channels in ``layout.channels`` order
        (DEAP: 40 x 40 x 8064). Read-only for DEAP files (it may be a view of
        the file's bytes).
    labels : ndarray, shape (layout.n_trials, len(layout.rating_scales))
        The ratings of every trial, in ``layout.rating_scales`` order (DEAP:
        valence, arousal, dominance and liking, 1-9).
    path : Path
        The file it came from (the main one, for messages).
    crc32 : int or None
        CRC-32 of ``path``'s bytes (:func:`zlib.crc32`) when the reader
        computed it while reading; ``None`` lets the segment cache compute it.
    layout : Layout
        What the recording holds; :data:`~mkdbook.data.layout.DEAP` by default.
    """

    subject: int
    data: np.ndarray
    labels: np.ndarray
    path: Path
    crc32: int | None = None
    layout: Layout = DEAP


def check_samples(path: Path | str, value: object, key: str, shape: tuple[int, ...],
                  error: type[DataFormatError] = DataFormatError) -> np.ndarray:
    """Return ``value`` if it is a finite floating-point array of ``shape`` that float32 can hold.

    Parameters
    ----------
    path : path-like
        The file it came from, for the message.
    value : object
    key : str
        What the array is, for the message (``'data'``, ``'labels'``).
    shape : tuple of int
    error : type
        The :class:`DataFormatError` subclass to raise.

    Raises
    ------
    DataFormatError
        If not, naming ``path`` and what was expected.
    """
    if not isinstance(value, np.ndarray):
        raise error(path, f"{key!r} must be a numpy array, got {type(value).__name__}")
    if value.shape != shape:
        raise error(path, f"{key!r} must have shape {shape}, got {value.shape}")
    if value.dtype.kind != "f":
        raise error(path, f"{key!r} must hold floating-point numbers, got dtype {value.dtype}")
    # Two passes over the data, not four: max and min propagate NaN, and an
    # infinity is its own peak, so a finite peak means every value is finite.
    peak = float(max(value.max(), -value.min()))
    if not np.isfinite(peak):
        bad = int(np.size(value) - np.isfinite(value).sum())
        raise error(path, f"{key!r} holds {bad} NaN or infinite values")
    if peak > _FLOAT32_MAX:
        raise error(path, f"{key!r} holds values up to {peak:g} in size, beyond float32's "
                          f"{_FLOAT32_MAX:.4g} (the cache's type)")
    return value


def check_ratings(path: Path | str, labels: np.ndarray, layout: Layout, what: str = "'labels'",
                  error: type[DataFormatError] = DataFormatError) -> np.ndarray:
    """Return ``labels`` if every rating lies in ``layout.rating_range``; raise ``error`` naming ``path`` if not."""
    low, high = layout.rating_range
    if labels.size and (labels.min() < low or labels.max() > high):
        raise error(path, f"{what} must lie in [{low:g}, {high:g}], got [{labels.min():g}, {labels.max():g}]")
    return labels


def check_recording(recording: SubjectRecording, layout: Layout) -> SubjectRecording:
    """Check that a reader's recording has the shapes and ratings ``layout`` promises.

    The segment cache calls it on every recording, so a reader's mistake is
    one line naming the file rather than a wrong cache.

    Raises
    ------
    DataFormatError
        Naming ``recording.path``: another layout, shape, non-finite or
        oversized samples, or ratings outside ``layout.rating_range``.
    """
    path = recording.path
    if recording.layout != layout:
        raise DataFormatError(path, f"holds the layout of {recording.layout.name}; expected that of "
                                    f"{layout.name}, like the other recordings of its folder")
    check_samples(path, recording.data, "data", (layout.n_trials, len(layout.channels), layout.n_samples))
    labels = check_samples(path, recording.labels, "labels", (layout.n_trials, len(layout.rating_scales)))
    check_ratings(path, labels, layout)
    return recording


class Reader(ABC):
    """A file format: find subjects in a folder, say what they hold, read one.

    A subclass sets :attr:`format` (the name ``--format`` takes) and
    implements the four methods below; registering it
    (:func:`mkdbook.data.readers.register_format`) lets
    :func:`~mkdbook.data.load_segments` infer it from a folder. Options
    that change what is read belong in fields of a frozen dataclass: they
    are part of the segment cache's key (:meth:`key`).
    """

    #: The format's name, as ``--format`` and ``load_segments(reader=...)`` take it.
    format: ClassVar[str]

    @classmethod
    @abstractmethod
    def recognises(cls, folder: Path) -> bool:
        """Whether ``folder`` looks like a data set of this format (cheap: names only, no reading)."""

    @abstractmethod
    def find(self, folder: Path, subjects: Iterable[int] | None = None) -> list[SubjectSource]:
        """List the subjects of ``folder`` (those in ``subjects``, all by default), in subject order.

        Raises
        ------
        FileNotFoundError
            If the folder, or a requested subject, is missing.
        DataFormatError
            If a file is misnamed or unreadable.
        """

    @abstractmethod
    def layout(self, folder: Path, sources: Sequence[SubjectSource]) -> Layout:
        """The layout the recordings of ``sources`` share, from their metadata (no samples read).

        Raises
        ------
        DataFormatError
            If the metadata is missing, malformed, or differs between subjects.
        """

    @abstractmethod
    def read(self, source: SubjectSource, *, mapped: bool = False) -> SubjectRecording:
        """Read one subject's trials and ratings.

        ``mapped`` lets a reader hand on a view of a memory-mapped file
        (the segment cache asks for it while it copies); others ignore it.

        Raises
        ------
        DataFormatError
            Naming the file: what it holds is not what the format says.
        """

    def describe(self, folder: Path) -> str:
        """Say in a few words what ``folder`` holds, for figure captions."""
        return f"{self.format} data ({Path(folder).name})"

    def key(self) -> dict[str, Any]:
        """The format and its options, as JSON values: what makes two readings of a folder the same."""
        options = dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}
        return {"format": self.format, "options": options}
