"""Train / validation / test splits of a :class:`~mkdbook.data.SegmentSet`.

The unit of a split decides what a test score means. Segments of one trial
share the trial's label *and* everything else about that recording (electrode
impedances, the subject's state, the video), so a classifier can recognise the
trial instead of the emotion. The honest splits here hold out whole trials
(:func:`trial_split`), whole videos (:func:`video_split`) or whole subjects
(:func:`subject_split`), and are made on trial ids *before* any segment is used. :func:`leaky_split` splits segments
at random, as several published DEAP pipelines did, and exists only to show
how much that inflates accuracy.

All splits are k-fold rotations built on scikit-learn's group splitters: fold
``k`` is the test set, fold ``k + 1`` the validation set and the rest is for
training, so ``n_folds=10`` gives the paper's 8:1:1 proportions and looping
``fold`` over ``range(n_folds)`` tests every trial exactly once.

:func:`with_quiz` carves a *quiz* set out of the training trials, for the
feedback phase of :mod:`mkdbook.distillation.feedback`: the teacher is then updated on
labels that neither select checkpoints (validation) nor score them (test).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold

from mkdbook.core.checks import check_number, check_option
from mkdbook.data.segments import SegmentSet

#: The split protocols by name, as the command line accepts them.
SPLIT_KINDS: tuple[str, ...] = ("trial", "video", "subjects", "leaky")


@dataclass(frozen=True)
class Split:
    """Segment indices of the three sets, and whether they share trials.

    Attributes
    ----------
    kind : str
        One of :data:`SPLIT_KINDS`.
    fold, n_folds, seed : int
        Which rotation of which shuffled k-fold partition this is.
    train, val, test : ndarray of int
        Indices into the :class:`~mkdbook.data.SegmentSet`, sorted.
    shared_trials : int
        Trials with segments in more than one set. Zero for the honest splits;
        large for the leaky one.
    quiz : ndarray of int
        Segments carved out of the training trials by :func:`with_quiz` for
        the feedback phase; empty otherwise. Never in ``train``.
    """

    kind: str
    fold: int
    n_folds: int
    seed: int
    train: np.ndarray = field(repr=False)
    val: np.ndarray = field(repr=False)
    test: np.ndarray = field(repr=False)
    shared_trials: int
    quiz: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64), repr=False)

    @property
    def leaks(self) -> bool:
        """True when some trial has segments in two sets."""
        return self.shared_trials > 0

    def trials(self, data: SegmentSet) -> dict[str, list[str]]:
        """The trials of each part as ``"sNN:TT"`` strings (subject, 0-based trial): an audit trail.

        Written into every ``metrics.json`` and cached result, so anyone can
        check which trials trained, selected and tested a model. ``quiz`` is
        listed only when the split has one (:func:`with_quiz`).
        """
        return {part: sorted({f"s{s:02d}:{t:02d}" for s, t in zip(data.subject[rows].tolist(),
                                                                    data.trial[rows].tolist())})
                for part, rows in self.parts().items()}

    def parts(self) -> dict[str, np.ndarray]:
        """The non-empty parts by name: ``train``, ``quiz`` (when carved), ``val``, ``test``."""
        parts = {"train": self.train, "quiz": self.quiz, "val": self.val, "test": self.test}
        return {name: rows for name, rows in parts.items() if name != "quiz" or len(rows)}

    def describe(self) -> str:
        """One line for logs and captions."""
        quiz = f" / {len(self.quiz)} quiz" if len(self.quiz) else ""
        return (f"{self.kind} split, fold {self.fold + 1}/{self.n_folds} (seed {self.seed}): "
                f"{len(self.train)} train{quiz} / {len(self.val)} val / {len(self.test)} test segments, "
                f"{self.shared_trials} trials shared between sets")


def check_disjoint(split: Split, data: SegmentSet) -> None:
    """Refuse a split whose parts share a segment, or a trial unless the split is the leaky one.

    The commands call it before writing a result, whatever built the split.

    Raises
    ------
    ValueError
        Naming the two parts and how many segments or trials they share.
    """
    parts = list(split.parts().items())
    for i, (name_a, rows_a) in enumerate(parts):
        for name_b, rows_b in parts[i + 1:]:
            segments = np.intersect1d(rows_a, rows_b).size
            trials = 0 if split.kind == "leaky" else np.intersect1d(data.trial_id[rows_a],
                                                                    data.trial_id[rows_b]).size
            if segments or trials:
                raise ValueError(f"{split.describe()}: parts {name_a!r} and {name_b!r} share "
                                 f"{segments} segments and {trials} trials")


def _count_shared_trials(trial_id: np.ndarray, parts: tuple[np.ndarray, ...]) -> int:
    sets = [set(np.unique(trial_id[p]).tolist()) for p in parts]
    seen: set[int] = set()
    shared: set[int] = set()
    for trials in sets:
        shared |= seen & trials
        seen |= trials
    return len(shared)


def _rotate(fold_of: np.ndarray, fold: int, n_folds: int) -> tuple[np.ndarray, ...]:
    test = np.flatnonzero(fold_of == fold)
    val = np.flatnonzero(fold_of == (fold + 1) % n_folds)
    train = np.flatnonzero((fold_of != fold) & (fold_of != (fold + 1) % n_folds))
    return train, val, test


def _make(kind: str, data: SegmentSet, fold_of: np.ndarray, fold: int, n_folds: int,
          seed: int) -> Split:
    parts = _rotate(fold_of, fold, n_folds)
    # Invariants checked on every split, also under ``python -O``.
    if len(np.unique(np.concatenate(parts))) != len(data) or sum(map(len, parts)) != len(data):
        raise RuntimeError(f"{kind} split is not a partition of the segments")
    shared = _count_shared_trials(data.trial_id, parts)
    if kind != "leaky" and shared:
        raise RuntimeError(f"{kind} split shares {shared} trials between sets")
    return Split(kind, fold, n_folds, seed, *parts, shared_trials=shared)


def _check_fold(fold: int, n_folds: int, n_units: int, unit: str) -> None:
    if n_folds < 3:
        raise ValueError(f"n_folds must be at least 3 (train, validation, test), got {n_folds}")
    if n_folds > n_units:
        raise ValueError(f"n_folds={n_folds} exceeds the {n_units} {unit} available")
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds - 1}], got {fold}")


def trial_split(data: SegmentSet, *, fold: int = 0, n_folds: int = 10, seed: int = 0) -> Split:
    """Hold out whole trials, separately within each subject, then pool.

    Each subject's trials are dealt into ``n_folds`` groups with
    :class:`sklearn.model_selection.StratifiedGroupKFold`: the trial is the
    group, and the stratum is the trial's valence-arousal quadrant (high or
    low on each), so every fold gets a similar mix of classes for either
    target. Every subject contributes trials to train, validation and test,
    and no trial contributes segments to two of them.

    Parameters
    ----------
    data : SegmentSet
    fold : int
        Test fold; the next fold is validation.
    n_folds : int
        10 gives 8:1:1 (about 32/4/4 of a subject's 40 trials; stratifying
        can move a trial between folds).
    seed : int
        Shuffles which trials fall in which fold, differently for each subject.

    Returns
    -------
    Split

    Notes
    -----
    DEAP presents the videos in the same order to everyone, so the same
    trial index is the same video for every subject. Dealing every subject's
    trials with one shuffle would hold out the same few videos for all of
    them, and the test classes would follow those videos; hence a shuffle per
    subject, and the stratification.
    """
    n_trials = len(np.unique(data.trial))
    _check_fold(fold, n_folds, n_trials, "trials per subject")
    quadrant = 2 * data.labels("valence") + data.labels("arousal")
    fold_of = np.empty(len(data), np.int64)
    for subject in data.subjects:
        rows = np.flatnonzero(data.subject == subject)
        state = int(np.random.SeedSequence([seed, int(subject)]).generate_state(1)[0])
        fold_of[rows] = _deal_trials(data.trial[rows].astype(np.int64).tobytes(),
                                     quadrant[rows].astype(np.int64).tobytes(), n_folds, state)
    return _make("trial", data, fold_of, fold, n_folds, seed)


@lru_cache(maxsize=256)
def _deal_trials(trials: bytes, quadrants: bytes, n_folds: int, state: int) -> np.ndarray:
    """The fold of each of one subject's segments, from its segments' trials and quadrants (int64 bytes).

    Cached, because a cross-validation asks for the same dealing once per
    fold, and the splitter's cost grows with the number of folds.
    """
    groups, strata = np.frombuffer(trials, np.int64), np.frombuffer(quadrants, np.int64)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=state)
    fold_of = np.empty(len(groups), np.int64)
    with warnings.catch_warnings():
        # A quadrant rarer than n_folds is spread as well as it can be; that is fine.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for k, (_, test) in enumerate(splitter.split(groups, strata, groups=groups)):
            fold_of[test] = k
    fold_of.flags.writeable = False   # shared by every later call
    return fold_of


def video_split(data: SegmentSet, *, fold: int = 0, n_folds: int = 10, seed: int = 0) -> Split:
    """Hold out whole videos: the same videos for every subject (leave-video-out).

    DEAP stores each subject's trials in video order, so a trial index is a
    video. Under :func:`trial_split` a video tested for one subject is in
    other subjects' training data; because blinks and gaze are partly
    synchronised across viewers of the same film (Nakano et al., 2009; Dorr et
    al., 2010), a network may then recognise the film rather than the emotion.
    Here the videos are dealt into ``n_folds`` groups (shuffled by ``seed``),
    and a fold's videos are test videos for everybody.

    Parameters are those of :func:`trial_split`; the group is the video.
    """
    return _group_split("video", data, data.trial, "videos", fold, n_folds, seed)


def subject_split(data: SegmentSet, *, fold: int = 0, n_folds: int = 10, seed: int = 0) -> Split:
    """Hold out whole subjects (cross-subject generalisation).

    Parameters are those of :func:`trial_split`; the group is the subject.
    """
    return _group_split("subjects", data, data.subject, "subjects", fold, n_folds, seed)


def _group_split(kind: str, data: SegmentSet, groups: np.ndarray, unit: str, fold: int, n_folds: int,
                 seed: int) -> Split:
    """The split that deals whole groups (one label per segment) into ``n_folds`` shuffled folds.

    The k-fold of :func:`video_split` and :func:`subject_split`:
    :class:`sklearn.model_selection.GroupKFold` with ``shuffle=True`` and
    ``random_state=seed``, whose ``k``-th test set is fold ``k``.

    Parameters
    ----------
    kind : str
        The split's name, one of :data:`SPLIT_KINDS`.
    data : SegmentSet
    groups : ndarray of int, shape (n_segments,)
        The group of each segment: no group has segments in two folds.
    unit : str
        What a group is, plural, for the message when there are fewer groups than folds.
    fold, n_folds, seed : int
        As for :func:`trial_split`.

    Returns
    -------
    Split
    """
    _check_fold(fold, n_folds, len(np.unique(groups)), unit)
    fold_of = np.empty(len(data), np.int64)
    splitter = GroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(groups, groups=groups)):
        fold_of[test] = k
    return _make(kind, data, fold_of, fold, n_folds, seed)


def leaky_split(data: SegmentSet, *, fold: int = 0, n_folds: int = 10, seed: int = 0) -> Split:
    """Split *segments* at random, ignoring trials: the classic leak, for contrast only.

    Segments of one trial land in train and test alike, so test accuracy
    measures recognition of recordings already seen. Never use it to report
    a result; chapter 2 shows why.
    """
    _check_fold(fold, n_folds, len(data), "segments")
    fold_of = np.empty(len(data), np.int64)
    splitter = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for k, (_, test) in enumerate(splitter.split(np.arange(len(data)))):
        fold_of[test] = k
    return _make("leaky", data, fold_of, fold, n_folds, seed)


def make_split(data: SegmentSet, kind: str, *, fold: int = 0, n_folds: int = 10,
               seed: int = 0) -> Split:
    """Build a split by protocol name (one of :data:`SPLIT_KINDS`)."""
    builders = {"trial": trial_split, "video": video_split, "subjects": subject_split, "leaky": leaky_split}
    check_option("kind", kind, SPLIT_KINDS)
    return builders[kind](data, fold=fold, n_folds=n_folds, seed=seed)


def with_quiz(split: Split, data: SegmentSet, fraction: float = 0.125) -> Split:
    """Carve a quiz set out of each subject's training trials (trial-level).

    The quiz set is what the feedback phase (:mod:`mkdbook.distillation.feedback`) updates
    the teacher on, as MetaDistil (Zhou et al., 2022) holds its quiz set out
    of the training data: validation labels then only select checkpoints,
    and test labels only score them. The students of the feedback variants
    train on the remaining training trials.

    From every subject with training trials, ``round(fraction * n)`` of its
    ``n`` training trials (at least one, and at least one left for training)
    are taken: the trials are shuffled with a generator seeded by
    ``(split.seed, fold, subject)``, ordered by valence-arousal quadrant, and
    picked at evenly spaced positions, so every quadrant gives about its
    share.

    Parameters
    ----------
    split : Split
        Without a quiz set yet.
    data : SegmentSet
        The segments ``split`` indexes.
    fraction : float, default 1/8
        Share of each subject's training trials that go to the quiz set, in (0, 1).

    Returns
    -------
    Split
        ``split`` with ``train`` reduced and ``quiz`` set; validation and test unchanged.

    Raises
    ------
    ValueError
        If ``fraction`` is outside (0, 1), the split has a quiz set already,
        or a subject has fewer than two training trials.
    RuntimeError
        If a quiz trial also has segments in another part (an honest split
        never gives one).
    """
    if check_number("fraction", fraction, 0.0, strict=True) >= 1:
        raise ValueError(f"fraction must be a finite number in (0, 1), got {fraction!r}")
    if len(split.quiz):
        raise ValueError(f"{split.describe()}: already has a quiz set")
    quadrant = 2 * data.labels("valence") + data.labels("arousal")
    quiz_rows = []
    for subject in np.unique(data.subject[split.train]):
        rows = split.train[data.subject[split.train] == subject]
        trials = np.unique(data.trial[rows])
        if len(trials) < 2:
            raise ValueError(f"subject {subject} has {len(trials)} training trial(s); a quiz set "
                             f"needs at least one more than it takes")
        n_quiz = min(max(1, round(fraction * len(trials))), len(trials) - 1)
        rng = np.random.default_rng([split.seed, split.fold, int(subject), 0x0412])
        shuffled = rng.permutation(trials)
        first_row = {t: rows[data.trial[rows] == t][0] for t in shuffled.tolist()}
        order = shuffled[np.argsort([quadrant[first_row[t]] for t in shuffled.tolist()], kind="stable")]
        picked = order[((np.arange(n_quiz) + 0.5) * len(order) / n_quiz).astype(int)]
        quiz_rows.append(rows[np.isin(data.trial[rows], picked)])
    quiz = np.sort(np.concatenate(quiz_rows)) if quiz_rows else np.empty(0, np.int64)
    train = np.setdiff1d(split.train, quiz)
    parts = (train, quiz, split.val, split.test)
    shared = _count_shared_trials(data.trial_id, parts)
    if split.kind != "leaky" and shared:
        raise RuntimeError(f"{split.describe()}: the quiz set shares {shared} trials with other parts")
    return replace(split, train=train, quiz=quiz, shared_trials=shared)
