"""Stored results of cells: where a run's result lives, and how it is written and read back.

A cell (:class:`~mkdbook.training.runs.Cell`) is one method on one target,
fold and seed with everything else that decides its numbers; its result
lives in ``$MKDBOOK_HOME/results/<key>/``, where ``<key>`` is
:func:`~mkdbook.training.runs.cell_key` (a hash of the cell and of the
package source, so that changed code never shows stale numbers).

Each cell folder holds ``predictions.npz`` (test segment indices, subject,
trial, position, label, prediction, class probabilities), ``result.json``
(scores, learning curve, the configuration) and ``train/`` (the method's
working folder: ``best.pt`` and, for network methods, ``scaler.pt``; the
resumable ``last.pt`` and ``last.prev.pt`` only while the cell is unfinished),
each checkpoint with its SHA-256 beside it (``best.pt.sha256``, ...;
:mod:`mkdbook.training.checkpoints`), so that one whose bytes changed is
never loaded: its cell is computed again. A teacher's folder
also holds ``teacher_outputs/`` (:func:`mkdbook.distillation.teacher_outputs.teacher_outputs_dir`), its outputs on
a fold's training segments, written by its first student and read by the others. Files are written
to a temporary name and renamed into place, and ``result.json`` is written
last, so a cell is complete exactly when its ``result.json`` exists and
reads back (:func:`load_result`); anything unreadable counts as missing and
is computed again.

While a process computes a cell it holds the cell's lease,
``$MKDBOOK_HOME/results/<key>.lease`` (:func:`lease_path`,
:mod:`mkdbook.experiments.leases`), so that processes sharing one ``MKDBOOK_HOME`` never
compute a cell twice at once, nor resume another process's unfinished
``last.pt``.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mkdbook.core.atomic import write_atomically
from mkdbook.core.docstrings import fill_doc
from mkdbook.core.keys import package_fingerprint
from mkdbook.data.segments import SegmentSet
from mkdbook.splits import Split
from mkdbook.training.checkpoints import discard_resume_state
from mkdbook.training.runs import Cell, MethodResult

__all__ = ["CellResult", "StoredScores", "lease_path", "load_result", "store_result"]


def lease_path(folder: Path) -> Path:
    """The lease file of the cell stored in ``folder``: a sibling, ``<key>.lease``."""
    return folder.with_name(f"{folder.name}.lease")


@fill_doc
@dataclass(frozen=True)
class StoredScores:
    """Scores of a network on a set of segments, as a cell's ``result.json`` stores them.

    The scalar part of :class:`~mkdbook.training.metrics.Scores`. A
    distiller's scores of its teacher (:attr:`CellResult.teacher_before`, ...)
    hold the first four and (except EmotionKD's) ``f1``; the others are then
    ``None``.

    Attributes
    ----------
    %(score_loss_accuracy)s
    %(score_balanced_accuracy)s
    auc : float
        ROC AUC (NaN when the set holds one class only).
    f1 : float or None
        Macro-F1 over the classes present.
    n : int or None
        Segments scored.
    majority_class : int or None
        The training set's most frequent class.
    majority_rate : float or None
        Accuracy of always answering ``majority_class`` on this set.
    log_loss_gain : float or None
        Cross-entropy of the constant predictor that answers the training
        prior, minus ``loss``.
    """

    loss: float
    accuracy: float
    balanced_accuracy: float
    auc: float
    f1: float | None = None
    n: int | None = None
    majority_class: int | None = None
    majority_rate: float | None = None
    log_loss_gain: float | None = None

    @classmethod
    def from_record(cls, values: Mapping[str, Any]) -> StoredScores:
        """The scores of one entry of ``result.json`` (such as ``record["test"]``); other keys are ignored."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def as_dict(self) -> dict[str, float]:
        """The stored scores by name, those that are ``None`` left out."""
        return {name: value for name, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class CellResult:
    """A finished cell, as read back from its folder.

    What chapters read is a named attribute: :attr:`test` and :attr:`val`
    scores, :attr:`history`, :attr:`best_epoch`, :attr:`seconds`,
    :attr:`trials` and, for distillation methods, the teacher's scores
    before and after (:attr:`teacher_before`, ...) and the feedback log
    (:attr:`feedback_log`). :attr:`record` keeps all of ``result.json``.

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
        ``trials``, ``cell``, ``package_version``, ``package_source``.
    """

    cell: Cell
    folder: Path
    segments: pd.DataFrame = field(repr=False)
    record: dict[str, Any] = field(repr=False)

    @property
    def test(self) -> StoredScores:
        """The selected network's scores on the test segments (pooled over test subjects)."""
        return StoredScores.from_record(self.record["test"])

    @property
    def val(self) -> StoredScores:
        """The selected network's scores on the validation segments."""
        return StoredScores.from_record(self.record["val"])

    @property
    def history(self) -> list[dict[str, float]]:
        """One row per epoch: ``epoch``, the training terms, validation scores, ``seconds``, and what a method adds."""
        return self.record["history"]

    @property
    def best_epoch(self) -> int:
        """The epoch whose weights were kept (best validation score by ``TrainConfig.select``)."""
        return int(self.record["best_epoch"])

    @property
    def seconds(self) -> float:
        """Wall-clock seconds the cell took to compute."""
        return float(self.record["seconds"])

    @property
    def trials(self) -> dict[str, list[str]]:
        """The trials of each part of the split as ``"sNN:TT"``: train, quiz (if any), val, test."""
        return self.record["trials"]

    @property
    def extra(self) -> dict[str, Any]:
        """What the method added to its result (``MethodResult.extra``); empty for most networks."""
        return self.record["extra"]

    def _teacher(self, key: str) -> StoredScores | None:
        values = self.extra.get(key)
        return StoredScores.from_record(values) if values else None

    @property
    def teacher_before(self) -> StoredScores | None:
        """A distiller's teacher on the validation segments before distillation; ``None`` for other methods."""
        return self._teacher("teacher_before")

    @property
    def teacher_after(self) -> StoredScores | None:
        """The teacher on the validation segments after distillation (changed only by feedback methods)."""
        return self._teacher("teacher_after")

    @property
    def teacher_before_test(self) -> StoredScores | None:
        """The teacher on the test segments before distillation; ``None`` for methods without a teacher."""
        return self._teacher("teacher_before_test")

    @property
    def teacher_after_test(self) -> StoredScores | None:
        """The teacher on the test segments after distillation."""
        return self._teacher("teacher_after_test")

    @property
    def teaching_steps(self) -> int | None:
        """A distiller's teaching steps (optimiser steps of the student); ``None`` for other methods."""
        steps = self.extra.get("teaching_steps")
        return None if steps is None else int(steps)

    @property
    def feedback(self) -> dict[str, Any] | bool | None:
        """The method's feedback to its teacher; ``None`` for methods without any.

        ``FeedbackConfig`` as a dict for the paper's feedback methods,
        ``True`` or ``False`` for EmotionKD's teacher-side feedback.
        """
        return self.extra.get("feedback")

    @property
    def feedback_log(self) -> pd.DataFrame:
        """One row per teacher update of a feedback method (``FeedbackDistiller.feedback_log``); empty otherwise."""
        return pd.DataFrame(self.extra.get("feedback_log") or [])


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
    discard_resume_state(folder / "train" / "last.pt")


