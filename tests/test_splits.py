"""Splits partition the segments; the honest ones never share a trial."""

from __future__ import annotations

import numpy as np
import pytest

from mkdbook.data.segments import SegmentSet
from mkdbook.splits import (
    SPLIT_KINDS,
    check_disjoint,
    leaky_split,
    make_split,
    subject_split,
    trial_split,
    video_split,
    with_quiz,
)

from conftest import make_segments


def fake_segments(n_subjects: int = 4) -> SegmentSet:
    """Four subjects who all watched the same 40 videos, ten per quadrant, in one order."""
    video_quadrant = np.repeat(np.arange(4), 10)  # like DEAP: trials in video order
    valence = np.where(video_quadrant // 2, 7.0, 3.0)
    arousal = np.where(video_quadrant % 2, 7.0, 3.0)
    per_trial = np.stack([valence, arousal, valence, arousal], 1)
    return make_segments(n_subjects, 40, 15, 1, ratings=np.tile(per_trial, (n_subjects, 1)), signals="zeros")


DATA = fake_segments()


def _trials(split, part):
    return set(DATA.trial_id[getattr(split, part)].tolist())


@pytest.mark.parametrize("fold", [0, 3, 9])
def test_trial_split_is_8_1_1_within_every_subject(fold):
    split = trial_split(DATA, fold=fold, seed=1)
    assert not split.leaks and split.shared_trials == 0
    for part, n_trials in (("train", 32), ("val", 4), ("test", 4)):
        for subject in DATA.subjects:
            rows = getattr(split, part)
            count = len(np.unique(DATA.trial[rows][DATA.subject[rows] == subject]))
            assert abs(count - n_trials) <= 2, (part, subject, count)
    assert not (_trials(split, "train") & _trials(split, "test"))
    assert not (_trials(split, "val") & (_trials(split, "train") | _trials(split, "test")))


@pytest.mark.parametrize("target", ["valence", "arousal"])
def test_trial_split_balances_the_classes_of_every_fold(target):
    labels = DATA.labels(target)
    for fold in range(10):
        split = trial_split(DATA, fold=fold, seed=3)
        # Half of the videos are high on each scale; every test fold should be near half.
        assert 0.3 <= labels[split.test].mean() <= 0.7, (fold, labels[split.test].mean())


def test_subjects_hold_out_different_videos():
    split = trial_split(DATA, fold=0, seed=0)
    held_out = [set(DATA.trial[split.test][DATA.subject[split.test] == s].tolist()) for s in DATA.subjects]
    assert len({frozenset(videos) for videos in held_out}) > 1


def test_kfold_by_trial_tests_every_trial_once():
    tested = np.concatenate([trial_split(DATA, fold=k, seed=2).test for k in range(10)])
    assert np.array_equal(np.sort(tested), np.arange(len(DATA)))


def test_whole_trials_stay_together():
    split = trial_split(DATA, fold=1)
    for part in ("train", "val", "test"):
        counts = np.bincount(DATA.trial_id[getattr(split, part)])
        assert set(counts[counts > 0].tolist()) == {15}


@pytest.mark.parametrize("fold", [0, 7])
def test_video_split_holds_out_the_same_videos_for_everyone(fold):
    split = video_split(DATA, fold=fold, seed=3)
    per_subject = {part: [frozenset(DATA.trial[getattr(split, part)][DATA.subject[getattr(split, part)] == s])
                          for s in DATA.subjects] for part in ("train", "val", "test")}
    for part, videos in per_subject.items():
        assert len(set(videos)) == 1, part  # the same videos for every subject
    test, val, train = (next(iter(per_subject[p])) for p in ("test", "val", "train"))
    assert len(test) == len(val) == 4 and len(train) == 32
    assert not (test & train) and not (val & train) and not (test & val) and not split.leaks
    tested = np.concatenate([video_split(DATA, fold=k, seed=3).test for k in range(10)])
    assert np.array_equal(np.sort(tested), np.arange(len(DATA)))


def test_subject_split_holds_out_subjects():
    split = subject_split(DATA, fold=0, n_folds=4)
    subjects = [set(DATA.subject[getattr(split, p)].tolist()) for p in ("train", "val", "test")]
    assert len(subjects[1]) == len(subjects[2]) == 1 and len(subjects[0]) == 2
    assert not (subjects[0] & subjects[2]) and not split.leaks


def test_leaky_split_shares_trials_and_says_so():
    split = leaky_split(DATA, fold=0)
    assert split.leaks and split.shared_trials > 0.9 * 160
    assert "trials shared" in split.describe()
    assert len(split.test) == len(DATA) // 10


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_splits_are_deterministic_partitions(kind):
    n_folds = 4 if kind == "subjects" else 10
    a = make_split(DATA, kind, fold=2, n_folds=n_folds, seed=5)
    b = make_split(DATA, kind, fold=2, n_folds=n_folds, seed=5)
    c = make_split(DATA, kind, fold=2, n_folds=n_folds, seed=6)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)
    union = np.concatenate([a.train, a.val, a.test])
    assert np.array_equal(np.sort(union), np.arange(len(DATA)))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kind must be one of .*got 'random'"):
        make_split(DATA, "random")
    with pytest.raises(ValueError, match=r"fold must be in \[0, 9\], got 10"):
        trial_split(DATA, fold=10)
    with pytest.raises(ValueError, match="exceeds the 4 subjects"):
        subject_split(DATA, n_folds=5)
    with pytest.raises(ValueError, match="at least 3"):
        trial_split(DATA, n_folds=2)


def test_the_audit_trail_names_every_trial_once():
    split = trial_split(DATA, fold=0, seed=0)
    trials = split.trials(DATA)
    assert set(trials) == {"train", "val", "test"}
    every = trials["train"] + trials["val"] + trials["test"]
    assert len(every) == len(set(every)) == 4 * 40 and "s01:00" in every and "s04:39" in every
    leaky = leaky_split(DATA, fold=0).trials(DATA)
    assert set(leaky["train"]) & set(leaky["test"])  # the leak is visible in the trail


@pytest.mark.parametrize("kind", ["trial", "video", "subjects"])
def test_the_quiz_set_is_an_eighth_of_every_subjects_training_trials(kind):
    split = make_split(DATA, kind, fold=1, n_folds=4 if kind == "subjects" else 10, seed=2)
    quizzed = with_quiz(split, DATA)
    np.testing.assert_array_equal(quizzed.val, split.val)
    np.testing.assert_array_equal(quizzed.test, split.test)
    np.testing.assert_array_equal(np.sort(np.concatenate([quizzed.train, quizzed.quiz])), split.train)
    assert quizzed.shared_trials == 0
    trials = quizzed.trials(DATA)
    assert list(trials) == ["train", "quiz", "val", "test"]
    assert all(not set(trials[a]) & set(trials[b]) for a in trials for b in trials if a < b)
    for subject in np.unique(DATA.subject[split.train]):
        n_train = len(np.unique(DATA.trial[split.train][DATA.subject[split.train] == subject]))
        n_quiz = len(np.unique(DATA.trial[quizzed.quiz][DATA.subject[quizzed.quiz] == subject]))
        assert n_quiz == round(n_train / 8), (subject, n_train, n_quiz)
    check_disjoint(quizzed, DATA)
    assert "quiz" in quizzed.describe()


def test_the_quiz_set_follows_the_quadrants_and_the_seed():
    quadrant = 2 * DATA.labels("valence") + DATA.labels("arousal")
    quizzed = with_quiz(trial_split(DATA, fold=0, seed=0), DATA)
    for subject in DATA.subjects:
        rows = quizzed.quiz[DATA.subject[quizzed.quiz] == subject]
        assert sorted(np.unique(quadrant[rows]).tolist()) == [0, 1, 2, 3]  # 4 quiz trials, one per quadrant
    again = with_quiz(trial_split(DATA, fold=0, seed=0), DATA)
    other = with_quiz(trial_split(DATA, fold=0, seed=1), DATA)
    np.testing.assert_array_equal(quizzed.quiz, again.quiz)
    assert not np.array_equal(quizzed.quiz, other.quiz)


def test_quiz_arguments_and_overlaps_are_refused():
    split = trial_split(DATA, fold=0, seed=0)
    for fraction in (0.0, 1.0, float("nan")):
        with pytest.raises(ValueError, match="fraction"):
            with_quiz(split, DATA, fraction)
    with pytest.raises(ValueError, match="already has a quiz set"):
        with_quiz(with_quiz(split, DATA), DATA)
    from dataclasses import replace
    overlapping = replace(with_quiz(split, DATA), quiz=split.val)
    with pytest.raises(ValueError, match="'quiz' and 'val' share"):
        check_disjoint(overlapping, DATA)
    check_disjoint(leaky_split(DATA, fold=0), DATA)  # shares trials by design, never segments


#: The groups of each fold (videos of a 5-fold video split, subjects of a
#: 4-fold subject split) by seed, as the splits dealt them before both were
#: built on one grouped k-fold: a refactoring must not move a segment.
DEALT = {
    ("video", 0): [[4, 10, 11, 15, 20, 22, 25, 28], [2, 18, 27, 29, 30, 35, 37, 39], [5, 8, 13, 14, 16, 17, 34, 36],
                   [1, 7, 12, 24, 26, 31, 32, 33], [0, 3, 6, 9, 19, 21, 23, 38]],
    ("video", 1): [[2, 3, 21, 22, 27, 29, 31, 39], [17, 19, 26, 28, 30, 32, 33, 36], [4, 10, 14, 20, 23, 24, 34, 35],
                   [1, 6, 7, 13, 16, 18, 25, 38], [0, 5, 8, 9, 11, 12, 15, 37]],
    ("video", 7): [[1, 2, 17, 18, 22, 32, 34, 37], [5, 9, 13, 15, 21, 27, 29, 36], [0, 11, 12, 16, 20, 24, 30, 39],
                   [6, 7, 8, 10, 26, 31, 33, 38], [3, 4, 14, 19, 23, 25, 28, 35]],
    ("subjects", 0): [[3], [4], [2], [1]],
    ("subjects", 1): [[4], [3], [1], [2]],
    ("subjects", 7): [[3], [2], [1], [4]],
}


@pytest.mark.parametrize(("kind", "seed"), sorted(DEALT))
def test_grouped_splits_deal_the_same_groups_as_before(kind, seed):
    dealt = DEALT[kind, seed]
    group = DATA.trial if kind == "video" else DATA.subject
    for fold in range(len(dealt)):
        split = make_split(DATA, kind, fold=fold, n_folds=len(dealt), seed=seed)
        assert np.unique(group[split.test]).tolist() == dealt[fold]
        assert np.unique(group[split.val]).tolist() == dealt[(fold + 1) % len(dealt)]
        assert len(split.train) + len(split.val) + len(split.test) == len(DATA)
