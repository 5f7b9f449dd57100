"""Runs: what identifies one training run (a :class:`Cell`), its key, and what a method returns.

A *cell* is one method on one target, one fold and one seed of one split
protocol, with everything else that decides its numbers. Its key
(:func:`cell_key`) is a SHA-256 of

* the cell's whole configuration (method, settings, target, fold, seed,
  split, training and segment configuration, the data's content
  fingerprint, and its teacher's configuration, recursively),
* the package version, and
* a hash of every ``.py`` file of the :mod:`mkdbook` package
  (:func:`mkdbook.core.keys.package_fingerprint`, which says why).

The cell lives here, below the distillation methods that receive one, and
its stored result in :mod:`mkdbook.experiments.results`, above them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from mkdbook.core.checks import check_option
from mkdbook.core.keys import json_key, package_fingerprint
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentConfig
from mkdbook.splits import SPLIT_KINDS, Split
from mkdbook.training.trainer import TrainConfig, TrainResult

__all__ = ["Cell", "MethodResult", "Options", "cell_key", "freeze_options"]

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
        A method of :data:`mkdbook.experiments.methods.METHODS`.
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
        ``Cell(..., options=tuple(sorted(d.items())))`` or through :class:`mkdbook.experiments.grids.Grid`.
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
        return json_key(payload, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{cell.describe()}: options must be JSON-serialisable ({err})") from err


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
