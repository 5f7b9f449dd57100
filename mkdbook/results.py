"""Cells and their stored results: what identifies a run, and where its result lives.

A *cell* (:class:`Cell`) is one method on one target, one fold and one seed
of one split protocol, with everything else that decides its numbers. Its
result lives in ``$MKDBOOK_HOME/results/<key>/``, where ``<key>``
(:func:`cell_key`) is a SHA-256 of

* the cell's whole configuration (method, settings, target, fold, seed,
  split, training and segment configuration, the data's content
  fingerprint, and its teacher's configuration, recursively),
* the package version, and
* a hash of every ``.py`` file of the :mod:`mkdbook` package.

The last two exist because Jupyter Book's execution cache re-runs a notebook
only when its cells change: a notebook whose cells are unchanged but whose
imported package changed would otherwise show stale numbers. Here any change
to the package source gives new keys and so new runs. This is deliberately
conservative (editing a docstring re-runs everything); stale results are the
worse error. The source hash is computed once per Python process, matching
the code the process has imported.

Each cell folder holds ``predictions.npz`` (test segment indices, subject,
trial, position, label, prediction, class probabilities), ``result.json``
(scores, learning curve, the configuration) and ``train/`` (the method's
working folder: ``best.pt`` and, for network methods, ``scaler.pt``; the
resumable ``last.pt`` only while the cell is unfinished). A teacher's folder
also holds ``teacher_outputs/`` (:func:`teacher_outputs_dir`), its outputs on
a fold's training segments, written by its first student and read by the others. Files are written
to a temporary name and renamed into place, and ``result.json`` is written
last, so a cell is complete exactly when its ``result.json`` exists and
reads back (:func:`load_result`); anything unreadable counts as missing and
is computed again.

While a process computes a cell it holds the cell's lease,
``$MKDBOOK_HOME/results/<key>.lease`` (:func:`lease_path`,
:mod:`mkdbook.lease`), so that processes sharing one ``MKDBOOK_HOME`` never
compute a cell twice at once, nor resume another process's unfinished
``last.pt``.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import mkdbook
from mkdbook.atomic import write_atomically
from mkdbook.checks import check_option
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.paths import home
from mkdbook.splits import SPLIT_KINDS, Split
from mkdbook.train import TrainConfig, TrainResult

__all__ = [
    "Cell",
    "CellResult",
    "MethodResult",
    "Options",
    "cell_key",
    "freeze_options",
    "lease_path",
    "load_result",
    "package_fingerprint",
    "results_dir",
    "store_result",
    "teacher_outputs_dir",
]

#: A method's settings as sorted ``(name, value)`` pairs: hashable and order-independent.
Options = tuple[tuple[str, Any], ...]

def freeze_options(settings: Mapping[str, Any] | None) -> Options:
    """Sorted ``(name, value)`` pairs of a settings dict (:attr:`Cell.options`)."""
    return tuple(sorted((settings or {}).items()))


@dataclass(frozen=True)
class Cell:
    """Everything that decides one run's result.

    Attributes
    ----------
    method : str
        A method of :data:`mkdbook.methods.METHODS`.
    target : str
        Rating scale that gives the binary labels (``"valence"``, ``"arousal"``).
    fold : int
        Test fold of the split (0-based); the next fold is validation.
    seed : int
        Seeds the split's shuffling, the initial weights and the training
        order; must equal ``train.seed``. Different seeds are therefore
        different repetitions of the whole k-fold protocol.
    split_kind : str, default "trial"
        ``"trial"``, ``"subjects"`` or ``"leaky"`` (:func:`mkdbook.splits.make_split`).
    n_folds : int, default 10
        Folds of the split (10 gives the paper's 8:1:1).
    train : TrainConfig, default TrainConfig()
        How the network is trained. Every field is part of the cache key,
        ``progress`` and ``device`` included, because the trainer refuses to
        resume a checkpoint written under another configuration.
    segments : SegmentConfig, default SegmentConfig()
        Segment length, baseline and label threshold of the data.
    data_source : str, default ""
        What the data is, in words (:func:`mkdbook.data.describe_source`).
    data_fingerprint : str, default ""
        Hash of the data's content (:func:`mkdbook.data.fingerprint.fingerprint_data`).
    options : tuple of (str, value) pairs, default ()
        Method settings, sorted by name; values must be JSON-serialisable.
        The supervised methods pass them to :func:`~mkdbook.models.build_model`
        as configuration overrides; a distillation method reads its own (for
        example a feedback interval). Build them from a dict with
        ``Cell(..., options=tuple(sorted(d.items())))`` or through :class:`mkdbook.experiments.Grid`.
    teacher : Cell or None, default None
        The teacher's cell, for methods that need one; it is part of this
        cell's identity, so a different teacher gives a different key.
    """

    method: str
    target: str
    fold: int
    seed: int
    split_kind: str = "trial"
    n_folds: int = 10
    train: TrainConfig = TrainConfig()
    segments: SegmentConfig = SegmentConfig()
    data_source: str = ""
    data_fingerprint: str = ""
    options: Options = ()
    teacher: Cell | None = None

    def __post_init__(self) -> None:
        check_option("target", self.target, DEAP.rating_scales)
        check_option("split_kind", self.split_kind, SPLIT_KINDS)
        if not 0 <= self.fold < self.n_folds:
            raise ValueError(f"fold must be in [0, {self.n_folds - 1}], got {self.fold}")
        if self.train.seed != self.seed:
            raise ValueError(f"train.seed ({self.train.seed}) must equal seed ({self.seed})")

    @property
    def settings(self) -> dict[str, Any]:
        """:attr:`options` as a dict."""
        return dict(self.options)

    def describe(self) -> str:
        """One line for logs and progress bars."""
        return (f"{self.method} on {self.target}, {self.split_kind} fold {self.fold + 1}/{self.n_folds}, "
                f"seed {self.seed}")


@lru_cache(maxsize=1)
def package_fingerprint() -> tuple[str, str]:
    """Return the package version and a SHA-256 of every ``.py`` file of :mod:`mkdbook`.

    Computed once per process: the hash then describes the code this
    process imported, even if files change on disk afterwards.
    """
    root = Path(mkdbook.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return mkdbook.__version__, digest.hexdigest()


def cell_key(cell: Cell) -> str:
    """Return the cache key of a cell: a hash of its configuration and of the package.

    Raises
    ------
    ValueError
        If an option value cannot be written as JSON.
    """
    version, source = package_fingerprint()
    payload = {"cell": asdict(cell), "package_version": version, "package_source": source}
    try:
        text = json.dumps(payload, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{cell.describe()}: options must be JSON-serialisable ({err})") from err
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def results_dir() -> Path:
    """The folder of cached cell results, ``$MKDBOOK_HOME/results``."""
    return home() / "results"


def teacher_outputs_dir(cell: Cell) -> Path | None:
    """Where the students of a cell's teacher share its stored outputs (:mod:`mkdbook.teacher_outputs`).

    ``teacher_outputs/`` in the teacher's cell folder; ``None`` for a cell without a teacher.
    """
    return results_dir() / cell_key(cell.teacher) / "teacher_outputs" if cell.teacher is not None else None


def lease_path(folder: Path) -> Path:
    """The lease file of the cell stored in ``folder``: a sibling, ``<key>.lease``."""
    return folder.with_name(f"{folder.name}.lease")


@dataclass(frozen=True)
class MethodResult:
    """What a method's run function may return when it has more to say than a TrainResult.

    Attributes
    ----------
    train : TrainResult
        ``train.test`` must hold the predictions of the segments of
        ``split.test``, in that order.
    extra : dict, default {}
        JSON-serialisable information stored in ``result.json`` under
        ``"extra"`` (for example the teacher's accuracy after feedback).
    split : Split or None
        The split the method trained on when it is not the cell's: the same
        validation and test segments, training segments possibly split
        further (a quiz set, :func:`mkdbook.splits.with_quiz`). Its parts
        are what ``result.json`` lists under ``trials``.
    """

    train: TrainResult
    extra: Mapping[str, Any] = field(default_factory=dict)
    split: Split | None = None


@dataclass(frozen=True)
class CellResult:
    """A finished cell, as read back from its folder.

    Attributes
    ----------
    cell : Cell
    folder : Path
        ``results_dir() / cell_key(cell)``.
    segments : DataFrame
        One row per test segment: ``segment`` (index into the segment set),
        ``subject``, ``trial``, ``position``, ``label``, ``prediction`` and
        ``p0``, ``p1``, ... (class probabilities).
    record : dict
        The contents of ``result.json``: ``test`` and ``val`` scores,
        ``best_epoch``, ``history``, ``extra``, ``seconds``, ``split``,
        ``cell``, ``package_version``, ``package_source``.
    """

    cell: Cell
    folder: Path
    segments: pd.DataFrame = field(repr=False)
    record: dict[str, Any] = field(repr=False)


def load_result(cell: Cell, folder: Path) -> CellResult | None:
    """The cached result in ``folder``, or ``None`` when the cell is not complete."""
    if not (folder / "result.json").is_file():
        return None
    try:
        record = json.loads((folder / "result.json").read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("test"), dict):
            raise ValueError("result.json is not a result record")
        with np.load(folder / "predictions.npz") as stored:
            arrays = {name: stored[name] for name in stored.files}
        probabilities = arrays.pop("probabilities")
        if probabilities.ndim != 2 or any(len(v) != len(probabilities) for v in arrays.values()):
            raise ValueError("predictions.npz holds arrays of different lengths")
    except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile) as err:
        # Atomic writes make this a damaged disk or a hand edit, not an interruption.
        warnings.warn(f"cached result {folder} is unreadable ({err}); computing it again", stacklevel=3)
        return None
    segments = pd.DataFrame(arrays)
    for k in range(probabilities.shape[1]):
        segments[f"p{k}"] = probabilities[:, k]
    return CellResult(cell, folder, segments, record)


def store_result(cell: Cell, folder: Path, data: SegmentSet, split: Split, output: MethodResult,
                 seconds: float) -> None:
    """Write a finished cell's ``predictions.npz`` and, last, its ``result.json``."""
    test = output.train.test
    if output.split is not None:
        if not (np.array_equal(output.split.val, split.val) and np.array_equal(output.split.test, split.test)):
            raise RuntimeError(f"{cell.describe()}: the method changed the validation or test segments")
        split = output.split
    if len(test.predictions) != len(split.test):
        raise RuntimeError(f"{cell.describe()}: {len(test.predictions)} test predictions for "
                           f"{len(split.test)} test segments")
    arrays = {
        "segment": split.test, "subject": data.subject[split.test], "trial": data.trial[split.test],
        "position": data.position[split.test], "label": data.labels(cell.target)[split.test],
        "prediction": np.asarray(test.predictions), "probabilities": np.asarray(test.probabilities),
    }
    version, source = package_fingerprint()
    record = {
        "test": test.summary(), "val": output.train.val.summary(),
        "best_epoch": int(output.train.best_epoch), "history": output.train.history,
        "extra": dict(output.extra), "seconds": seconds,
        "split": {**{part: len(rows) for part, rows in split.parts().items()},
                  "shared_trials": split.shared_trials},
        "trials": split.trials(data),
        "cell": asdict(cell), "package_version": version, "package_source": source,
    }
    try:
        text = json.dumps(record, indent=1)  # fails here, before any file is written
    except TypeError as err:
        raise TypeError(f"{cell.describe()}: the method's extra information must be "
                        f"JSON-serialisable ({err})") from err
    write_atomically(folder / "predictions.npz", lambda f: np.savez(f, **arrays))
    # Written last: its presence marks the cell complete.
    write_atomically(folder / "result.json", lambda f: f.write(text.encode()))
    # The resume state (weights and optimiser) is useless once the cell is done.
    (folder / "train" / "last.pt").unlink(missing_ok=True)


