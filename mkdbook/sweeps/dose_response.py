"""Dose-response sweeps of the pocket networks: the gain of distillation against a setting of the data.

A *sweep* runs :func:`mkdbook.sweeps.band_power_networks.run_folds` at every value of one
setting, for several seeds, and scores every arm per subject. The gain of an
arm is its score minus that of the student trained on labels alone, subject
by subject: the student, the distilled students and the teachers of one
subject share its test segments, folds and initial weights, so the pairs are
matched and the interval is that of a paired t-test over subjects
(:func:`mkdbook.analysis.stats.paired_ttest`). Three settings are swept
(:data:`AXES`):

``"crosstalk"``
    ``SimulationConfig.emg_crosstalk``: how much periocular muscle activity,
    which carries emotion, reaches the EOG channels (0: none).
``"n_train"``
    Labelled training trials per subject, for teacher and student alike.
``"rating_noise"``
    ``SimulationConfig.rating_noise_sd``: the SD of self-report noise, in
    rating points. The signals stay the same; only the ratings change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

from mkdbook.analysis.stats import paired_ttest
from mkdbook.analysis.verdicts import Comparison, compare_paired
from mkdbook.core.checks import check_int, check_option
from mkdbook.data.simulate import SimulationConfig
from mkdbook.sweeps.band_power_networks import ARMS, BandPowerNetConfig, BandPowerData, band_power_cohort, run_folds, with_ratings
from mkdbook.training.metrics import class_prior, score

__all__ = ["AXES", "Setting", "gain_difference", "gains", "levels", "plot_dose", "settings_along", "subject_scores", "sweep"]

#: The settings a sweep can vary, and the simulator field each one sets (``None``: no field).
AXES: dict[str, str | None] = {"crosstalk": "emg_crosstalk", "n_train": None, "rating_noise": "rating_noise_sd"}

#: The arms whose gain over the student on labels alone is reported.
TAUGHT: tuple[str, ...] = ("distilled", "shuffled", "oracle")


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: the data and how many labelled trials per subject.

    Attributes
    ----------
    value : float
        The value of the swept setting, for tables and axes.
    data : BandPowerData
    n_train : int or None
        Labelled training trials per subject (``None``: every training trial).
    transfer : bool, default False
        The other training trials are an unrated transfer set for the taught
        students (``run_folds``'s ``transfer``); needs ``n_train``.
    """

    value: float
    data: BandPowerData
    n_train: int | None = None
    transfer: bool = False


def settings_along(axis: str, values: Sequence[float], n_subjects: int, *, target: str = "valence",
                   variant: str = "default", seed: int = 0,
                   config: SimulationConfig | None = None, workers: int = 1) -> list[Setting]:
    """The settings of a sweep along one of :data:`AXES`, every other setting at ``config``.

    Cohorts along ``"crosstalk"`` are simulated (and cached) one per value;
    the other axes reuse the signals of ``config``'s cohort. ``workers``
    processes simulate subjects at once (:func:`~mkdbook.sweeps.band_power_networks.band_power_cohort`).
    """
    check_option("axis", axis, tuple(AXES))
    config = config or SimulationConfig()
    field = AXES[axis]
    cohort = {"target": target, "variant": variant, "seed": seed, "workers": workers}
    if axis == "crosstalk":
        return [Setting(v, band_power_cohort(n_subjects, config=replace(config, **{field: v}), **cohort))
                for v in values]
    base = band_power_cohort(n_subjects, config=config, **cohort)
    if axis == "n_train":
        return [Setting(v, base, int(v)) for v in values]
    return [Setting(v, with_ratings(base, n_subjects, replace(config, **{field: v}), variant=variant, seed=seed))
            for v in values]


def subject_scores(data: BandPowerData, probabilities: dict[str, np.ndarray]) -> pd.DataFrame:
    """Score every arm on every subject's test segments, fold by fold, then average the folds.

    Each fold's networks score the subject's trials that fold holds out; the
    scores are averaged over folds rather than computed on the folds'
    predictions pooled, because pooling mixes networks trained on different
    class balances, which biases the AUC of an uninformed network below 0.5.
    A fold whose test trials of a subject hold one class only gives no AUC
    and is left out of that subject's mean.

    Returns
    -------
    DataFrame
        One row per (subject, arm): ``auc``, ``balanced_accuracy``,
        ``accuracy`` and ``majority_rate`` (:func:`mkdbook.training.metrics.score`,
        the prior being the class balance of the subject's other folds).
    """
    rows = []
    for subject in data.subjects:
        for fold in np.unique(probabilities["fold"]):
            test = (data.subject == subject) & (probabilities["fold"] == fold)
            prior = class_prior(data.labels[(data.subject == subject) & ~test])
            for arm in ARMS:
                p = probabilities[arm][test]
                s = score(np.stack([1 - p, p], axis=1), data.labels[test], prior)
                rows.append({"subject": int(subject), "arm": arm, "auc": s.auc,
                             "balanced_accuracy": s.balanced_accuracy, "accuracy": s.accuracy,
                             "majority_rate": s.majority_rate})
    return pd.DataFrame(rows).groupby(["subject", "arm"], sort=False).mean().reset_index()


def _scored(setting: Setting, seed: int, config: BandPowerNetConfig) -> tuple[pd.DataFrame, float]:
    """One run of :func:`~mkdbook.sweeps.band_power_networks.run_folds`, scored, and the processor seconds it took."""
    cpu = time.process_time()
    probabilities = run_folds(setting.data, seed, config, setting.n_train, setting.transfer)
    table = subject_scores(setting.data, probabilities).assign(value=setting.value, seed=seed)
    return table, time.process_time() - cpu


def sweep(settings: Sequence[Setting], seeds: Sequence[int], config: BandPowerNetConfig = BandPowerNetConfig(),
          workers: int = 1) -> pd.DataFrame:
    """Run every arm at every setting for every seed; scores per subject.

    ``workers`` processes (joblib) run settings and seeds side by side; every
    run is seeded by its own arguments, so the scores do not depend on it.

    Returns
    -------
    DataFrame
        The columns of :func:`subject_scores` plus ``value`` and ``seed``;
        ``DataFrame.attrs["seconds"]`` is the wall time, ``attrs["cpu_seconds"]``
        the processor time of the runs (on a shared machine the wall time
        says more about the other users) and ``attrs["networks"]`` the number
        of networks trained.
    """
    workers = check_int("workers", workers, 1)
    began = time.perf_counter()
    runs = Parallel(n_jobs=workers)(delayed(_scored)(setting, seed, config) for setting in settings for seed in seeds)
    out = pd.concat([table for table, _ in runs], ignore_index=True)
    # Per run: one teacher and four students on each fold.
    out.attrs.update(seconds=time.perf_counter() - began, cpu_seconds=sum(cpu for _, cpu in runs),
                     networks=len(settings) * len(seeds) * 5 * config.n_folds)
    return out


def _per_subject(scores: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Seeds averaged: one value per (value, subject) and arm, arms as columns."""
    return scores.groupby(["value", "subject", "arm"])[metric].mean().unstack("arm")


def gains(scores: pd.DataFrame, metric: str = "auc", level: float = 0.95,
          smallest_effect: float | None = None) -> pd.DataFrame:
    """Gain of every taught arm over the student on labels alone, per value, paired by subject.

    Parameters
    ----------
    scores : DataFrame
        From :func:`sweep`.
    metric : str
        A score column of :func:`subject_scores`.
    level : float
        Confidence level of the intervals.
    smallest_effect : float, optional
        The smallest gain of interest: with it, a ``verdict`` column words each
        gain (:func:`~mkdbook.analysis.verdicts.compare_paired`).

    Returns
    -------
    DataFrame
        One row per (value, arm of :data:`TAUGHT`): ``gain`` (mean over
        subjects of the seed-averaged difference), ``ci_low``, ``ci_high``
        and ``p`` of the paired t-test, ``n`` subjects (and ``verdict``).
    """
    rows = []
    for value, table in _per_subject(scores, metric).groupby(level="value"):
        for arm in TAUGHT:
            test = paired_ttest(table[arm], table["student"], level=level)
            row = {"value": value, "arm": arm, "gain": test.mean_diff, "ci_low": test.ci_low,
                   "ci_high": test.ci_high, "p": test.p, "n": test.n}
            if smallest_effect is not None:
                row["verdict"] = compare_paired(table[arm], table["student"], smallest_effect, level).word
            rows.append(row)
    return pd.DataFrame(rows)


def gain_difference(scores: pd.DataFrame, first: float, second: float, arm: str, smallest_effect: float,
                    metric: str = "auc", level: float = 0.95) -> Comparison:
    """An arm's gain at the value ``first`` minus its gain at ``second``, paired by subject.

    The settings of a sweep along ``"n_train"`` or ``"rating_noise"`` share
    their subjects, so a subject's gain at one value is paired with its gain
    at the other: whether the gain is *larger* at one of them is then a
    question for this interval, not for the order of two point estimates.

    Returns
    -------
    Comparison
        The worded difference (:func:`~mkdbook.analysis.verdicts.compare_paired`).
    """
    check_option("arm", arm, TAUGHT)
    table = _per_subject(scores, metric)
    gain = (table[arm] - table["student"]).unstack("value")
    return compare_paired(gain[first], gain[second], smallest_effect, level)


def levels(scores: pd.DataFrame, metric: str = "auc", level: float = 0.95) -> pd.DataFrame:
    """Mean score of every arm per value, with a t-interval over subjects.

    Returns
    -------
    DataFrame
        One row per (value, arm): ``mean``, ``ci_low``, ``ci_high``, ``n``.
    """
    from scipy import stats

    rows = []
    for value, table in _per_subject(scores, metric).groupby(level="value"):
        for arm in ARMS:
            x = table[arm].to_numpy()
            half = stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
            rows.append({"value": value, "arm": arm, "mean": x.mean(), "ci_low": x.mean() - half,
                         "ci_high": x.mean() + half, "n": len(x)})
    return pd.DataFrame(rows)


#: Colours and labels of the arms in every figure of the chapter.
STYLE: dict[str, tuple[str, str]] = {
    "teacher": ("tab:blue", "teacher (EEG+EOG)"), "student": ("black", "student, labels alone"),
    "distilled": ("tab:red", "student + teacher"), "shuffled": ("tab:gray", "student + shuffled teacher"),
    "oracle": ("tab:green", "student + oracle teacher"), "ceiling": ("tab:olive", "ceiling (latent state)"),
}


def plot_dose(axes, scores: pd.DataFrame, xlabel: str, metric: str = "auc", log_x: bool = False) -> None:
    """Draw one sweep on two axes: levels of every arm above, gains over the student below.

    Parameters
    ----------
    axes : pair of matplotlib Axes
    scores : DataFrame
        From :func:`sweep`.
    xlabel : str
    metric : str
        A score column of :func:`subject_scores`.
    log_x : bool
        Logarithmic x axis (for numbers of trials).
    """
    top, bottom = axes
    for arm, table in levels(scores, metric).groupby("arm", sort=False):
        colour, label = STYLE[arm]
        top.plot(table["value"], table["mean"], "o-", color=colour, label=label, markersize=4)
        top.fill_between(table["value"], table["ci_low"], table["ci_high"], color=colour, alpha=0.12)
    top.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    top.set(ylabel=metric.replace("_", " "))
    for arm, table in gains(scores, metric).groupby("arm", sort=False):
        colour, label = STYLE[arm]
        bottom.errorbar(table["value"], table["gain"], yerr=[table["gain"] - table["ci_low"],
                                                             table["ci_high"] - table["gain"]],
                        fmt="o-", color=colour, label=label, markersize=4, capsize=3)
    bottom.axhline(0.0, color="black", linewidth=0.8)
    bottom.set(xlabel=xlabel, ylabel=f"gain in {metric.replace('_', ' ')}\nover labels alone")
    if log_x:
        for ax in axes:
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(scores["value"].unique()), [f"{v:g}" for v in sorted(scores["value"].unique())])
            ax.minorticks_off()
