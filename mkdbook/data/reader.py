"""Reading DEAP's preprocessed Python files safely and checking what they hold.

Each ``sNN.dat`` of ``data_preprocessed_python/`` is a Python-2 pickle of a
dict with ``data`` (40 trials x 40 channels x 8064 samples) and ``labels``
(40 trials x 4 ratings). A pickle can name any callable and run it while it
loads, so :class:`NumpyOnlyUnpickler` admits the handful of globals that
rebuild numpy arrays and refuses everything else *before* it is called.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mkdbook.data.layout import DEAP

#: Ratings in DEAP are continuous on the self-assessment manikin scale 1-9.
RATING_RANGE: tuple[float, float] = (1.0, 9.0)

_SUBJECT_FILE = re.compile(r"^s(\d{2})\.dat$")


class DeapFormatError(ValueError):
    """A file is not a valid DEAP preprocessed subject file.

    The message is one line that names the file and what was expected, so
    the command line can print it as it is.
    """

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _numpy_globals() -> dict[tuple[str, str], object]:
    # numpy pickles name ``numpy.core.multiarray``; numpy 2 moved it to
    # ``numpy._core`` and warns on the old name, so both resolve to the new one.
    from numpy._core import multiarray

    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # Python 3 writes bytes in protocol-2 pickles as _codecs.encode(str, "latin1").
        ("_codecs", "encode"): __import__("codecs").encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    return allowed


class NumpyOnlyUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and plain containers, nothing else.

    Any other global (``os.system``, ``builtins.eval``, a class of some
    package...) raises :class:`pickle.UnpicklingError` when the pickle names
    it, so nothing it refers to is ever called.
    """

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:  # noqa: D102
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load global {module}.{name}: only numpy arrays are allowed"
            ) from None


@dataclass(frozen=True)
class SubjectRecording:
    """One subject's 40 trials, as read from ``sNN.dat``.

    Attributes
    ----------
    subject : int
        Subject number from the file name (``s07.dat`` is 7).
    data : ndarray, shape (40, 40, 8064)
        Trials x channels x samples, channels in ``DEAP.channels`` order.
    labels : ndarray, shape (40, 4)
        Valence, arousal, dominance and liking ratings, 1-9.
    path : Path
        The file it came from.
    """

    subject: int
    data: np.ndarray
    labels: np.ndarray
    path: Path


def subject_number(path: Path | str) -> int:
    """Return the subject number encoded in a DEAP file name (``s01.dat`` -> 1).

    Raises
    ------
    DeapFormatError
        If the name is not ``sNN.dat``.
    """
    match = _SUBJECT_FILE.match(Path(path).name)
    if not match:
        raise DeapFormatError(path, "file name must be sNN.dat, for example s01.dat")
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
    """
    folder = Path(deap_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder; expected DEAP's data_preprocessed_python/")
    found = {subject_number(p): p for p in folder.iterdir() if _SUBJECT_FILE.match(p.name)}
    if not found:
        raise FileNotFoundError(f"{folder}: no sNN.dat files; expected DEAP's data_preprocessed_python/")
    if subjects is None:
        return [found[s] for s in sorted(found)]
    wanted = sorted(set(subjects))
    missing = [s for s in wanted if s not in found]
    if missing:
        names = ", ".join(f"s{s:02d}.dat" for s in missing)
        raise FileNotFoundError(f"{folder}: missing {names}")
    return [found[s] for s in wanted]


def _check_array(path: Path, value: object, key: str, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise DeapFormatError(path, f"{key!r} must be a numpy array, got {type(value).__name__}")
    if value.shape != shape:
        raise DeapFormatError(path, f"{key!r} must have shape {shape}, got {value.shape}")
    if value.dtype.kind != "f":
        raise DeapFormatError(path, f"{key!r} must hold floating-point numbers, got dtype {value.dtype}")
    if not np.isfinite(value).all():
        bad = int(np.size(value) - np.isfinite(value).sum())
        raise DeapFormatError(path, f"{key!r} holds {bad} NaN or infinite values")
    return value


def read_subject_file(path: Path | str) -> SubjectRecording:
    """Read and validate one DEAP subject file.

    Parameters
    ----------
    path : path-like
        An ``sNN.dat`` file of DEAP's preprocessed Python release.

    Returns
    -------
    SubjectRecording

    Raises
    ------
    DeapFormatError
        If the file is truncated, is not a pickle, names a global other than
        numpy's array constructors, or holds keys, shapes, dtypes, values or
        ratings other than DEAP's.
    FileNotFoundError
        If the file does not exist.
    """
    path = Path(path)
    subject = subject_number(path)
    with path.open("rb") as stream:
        try:
            content = NumpyOnlyUnpickler(stream, encoding="latin1").load()
        except pickle.UnpicklingError as err:
            raise DeapFormatError(path, f"not a DEAP pickle ({err})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as err:
            raise DeapFormatError(path, f"truncated or corrupt pickle ({type(err).__name__}: {err})") from None
    if not isinstance(content, dict):
        raise DeapFormatError(path, f"expected a dict with 'data' and 'labels', got {type(content).__name__}")
    if set(content) != {"data", "labels"}:
        raise DeapFormatError(path, f"expected keys ['data', 'labels'], got {sorted(map(str, content))}")
    data = _check_array(path, content["data"], "data", (DEAP.n_trials, len(DEAP.channels), DEAP.n_samples))
    labels = _check_array(path, content["labels"], "labels", (DEAP.n_trials, len(DEAP.rating_scales)))
    low, high = RATING_RANGE
    if labels.min() < low or labels.max() > high:
        raise DeapFormatError(
            path, f"'labels' must lie in [{low:g}, {high:g}], got [{labels.min():g}, {labels.max():g}]"
        )
    return SubjectRecording(subject=subject, data=data, labels=labels, path=path)
