"""Information levels: how much each modality tells a fixed band-power classifier about each target.

The level of a modality is the segment ROC AUC of chapter 2's band-power
logistic regression under the trial split, with every subject's features
standardised by statistics of that subject's training trials only, and the
test predictions of all folds pooled so that every segment is tested once.
The simulated cohort's levels are fixed before any distillation result is
looked at (:data:`TARGET_LEVELS`): a student can only learn what its own
input holds, so the level of the EOG is the ceiling of every EOG-only method.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from mkdbook.analysis.band_power import BANDS, band_power, make_classifier, standardise_features
from mkdbook.data.segments import SegmentSet
from mkdbook.splits import make_split


@dataclass(frozen=True)
class TargetLevels:
    """The information levels the simulated cohort is built to have (default cohort, trial split).

    Attributes
    ----------
    eog_auc : (float, float)
        Range of the EOG's segment AUC, on valence and on arousal.
    eeg_over_eog_valence : float
        Least margin of the EEG's AUC over the EOG's on valence.
    fusion_over_best : float
        Least margin of EEG+EOG over the better single modality, per target.
    """

    eog_auc: tuple[float, float] = (0.56, 0.64)
    eeg_over_eog_valence: float = 0.03
    fusion_over_best: float = 0.01


#: The levels of the 12-subject default cohort.
TARGET_LEVELS = TargetLevels()


def cross_validated_scores(features: np.ndarray, labels: np.ndarray, data: SegmentSet, *,
                           split: str = "trial", n_folds: int = 10, seed: int = 0) -> np.ndarray:
    """Out-of-fold decision scores of the band-power logistic regression, every segment tested once.

    Each fold trains on ``split.train`` only (nothing is tuned, as in chapter
    2) after per-subject standardisation with training statistics.

    Returns
    -------
    ndarray, shape (n_segments,)
        The decision function on each segment, from the fold that tested it.
    """
    scores = np.full(len(labels), np.nan)
    for fold in range(n_folds):
        part = make_split(data, split, fold=fold, n_folds=n_folds, seed=seed)
        scaled = standardise_features(features, data, part, "subject")
        model = make_classifier("logistic").fit(scaled[part.train], labels[part.train])
        scores[part.test] = model.decision_function(scaled[part.test])
    return scores


def subject_bootstrap_auc(labels: np.ndarray, scores: np.ndarray, subject: np.ndarray, *,
                          n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Pooled AUC with a percentile interval from resampling subjects with replacement.

    Subjects, not segments, are the independent units: segments of one trial
    share its label and its recording, and trials of one subject their person.

    Returns
    -------
    (auc, low, high)
    """
    auc = float(roc_auc_score(labels, scores))
    people = np.unique(subject)
    rows = [np.flatnonzero(subject == person) for person in people]
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        index = np.concatenate([rows[i] for i in rng.integers(len(people), size=len(people))])
        if np.unique(labels[index]).size == 2:
            draws.append(roc_auc_score(labels[index], scores[index]))
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return auc, float(low), float(high)


def _band_powers(data: SegmentSet, modality: str) -> np.ndarray:
    """(n_segments, n_channels, n_bands) log band power of one modality."""
    return band_power(data.modality(modality), data.sfreq, BANDS)


def information_levels(data: SegmentSet, *, targets: Iterable[str] = ("valence", "arousal"),
                       modalities: Iterable[str] = ("eeg", "eog", "eeg+eog"), per_band: bool = False,
                       split: str = "trial", n_folds: int = 10, seed: int = 0,
                       n_boot: int = 1000) -> pd.DataFrame:
    """Segment AUC of the band-power logistic regression per modality and target (and band).

    Parameters
    ----------
    data : SegmentSet
    targets : iterable of str
        Rating scales.
    modalities : iterable of str
        Modality names of the layout, or two joined by ``"+"`` (features stacked).
    per_band : bool
        Also score every band alone (rows with ``band`` set to its name).
    split : str
        A split of :func:`~mkdbook.splits.make_split`: ``"trial"`` (the
        levels' protocol) or ``"video"``.
    n_folds, seed : int
        Cross-validation folds and split seed.
    n_boot : int
        Subject resamples for the interval.

    Returns
    -------
    DataFrame
        One row per (modality, band, target): ``auc``, ``ci_low``,
        ``ci_high`` (95 %, subjects resampled), ``balanced_accuracy`` (at
        the decision threshold), ``n_subjects``; ``band`` is ``"all"`` for
        all bands together.
    """
    modalities, targets = tuple(modalities), tuple(targets)
    powers = {name: _band_powers(data, name) for name in sorted({m for key in modalities for m in key.split("+")})}
    band_choices = {"all": list(range(len(BANDS)))}
    if per_band:
        band_choices.update({name: [index] for index, name in enumerate(BANDS)})
    rows = []
    for modality in modalities:
        for band, columns in band_choices.items():
            features = np.hstack([powers[m][:, :, columns].reshape(len(data), -1) for m in modality.split("+")])
            for target in targets:
                labels = data.labels(target)
                scores = cross_validated_scores(features, labels, data, split=split, n_folds=n_folds, seed=seed)
                auc, low, high = subject_bootstrap_auc(labels, scores, data.subject, n_boot=n_boot, seed=seed)
                rows.append({"modality": modality, "band": band, "target": target, "auc": auc,
                             "ci_low": low, "ci_high": high,
                             "balanced_accuracy": balanced_accuracy_score(labels, scores > 0),
                             "n_subjects": len(data.subjects)})
    return pd.DataFrame(rows)


def check_levels(levels: pd.DataFrame, target: TargetLevels = TARGET_LEVELS,
                 slack: float = 0.0) -> list[str]:
    """Which of the target levels a table of :func:`information_levels` misses.

    Parameters
    ----------
    levels : DataFrame
        Rows for ``eeg``, ``eog`` and ``eeg+eog`` on valence and arousal
        (band ``"all"``).
    target : TargetLevels
    slack : float
        Widens every range and lowers every margin by this much, for
        cohorts too small to assert the exact ranges (a few subjects).

    Returns
    -------
    list of str
        One line per missed level; empty when all hold.
    """
    table = levels[levels["band"] == "all"].set_index(["modality", "target"])["auc"]
    low, high = target.eog_auc[0] - slack, target.eog_auc[1] + slack
    missed = [f"EOG AUC on {t} is {table['eog', t]:.3f}, outside [{low:.3f}, {high:.3f}]"
              for t in ("valence", "arousal") if not low <= table["eog", t] <= high]
    margin = table["eeg", "valence"] - table["eog", "valence"]
    if margin < target.eeg_over_eog_valence - slack:
        missed.append(f"EEG exceeds EOG on valence by {margin:.3f}, "
                      f"less than {target.eeg_over_eog_valence - slack:.3f}")
    for t in ("valence", "arousal"):
        gain = table["eeg+eog", t] - max(table["eeg", t], table["eog", t])
        if gain < target.fusion_over_best - slack:
            missed.append(f"EEG+EOG exceeds the better single modality on {t} by {gain:.3f}, "
                          f"less than {target.fusion_over_best - slack:.3f}")
    return missed


def summarise(levels: pd.DataFrame, digits: int = 3) -> Mapping[str, str]:
    """``"auc [low, high]"`` per (modality, target) of the all-band rows, for prose and tables."""
    rows = levels[levels["band"] == "all"]
    return {f"{r.modality}, {r.target}": f"{r.auc:.{digits}f} [{r.ci_low:.{digits}f}, {r.ci_high:.{digits}f}]"
            for r in rows.itertuples()}
