"""Is the difference real? Chance levels, paired tests, corrections, effect sizes.

The book's accuracy figures and its chapter 9 draw on this module:

* :func:`chance_interval` and :func:`accuracy_ci` put an accuracy next to what
  a coin-flipping classifier would reach on the same test set;
* :func:`paired_ttest` compares two methods over matched units (subjects) and
  reports Cohen's :math:`d_z` with an exact confidence interval;
* :func:`corrected_resampled_ttest` is the Nadeau-Bengio test for differences
  measured on overlapping cross-validation folds;
* :func:`trial_bootstrap_difference` compares two models scored on the same
  test segments, resampling whole trials;
* :func:`holm` adjusts a family of p-values;
* :func:`unit_means` averages a results table into the pairs a paired test
  compares (one per subject, say);
* :func:`compare_methods` runs the whole "reference against every baseline"
  comparison on a tidy results table;
* :func:`mixed_model` fits the same comparison as a linear mixed model with a
  random intercept per subject.

Segments are not independent
----------------------------
DEAP trials are cut into many segments that share one label and nearly the same
signal, so a classifier's errors cluster by trial. A binomial interval computed
from the number of *segments* therefore treats correlated items as independent
and is too narrow; one computed from the number of *trials* is the honest
(slightly conservative) one when predictions within a trial agree. Both
functions below take ``n`` as given: pass the segment count and the trial count
and show both, as the book's figures do.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
import statsmodels.formula.api as smf
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from mkdbook.core.checks import check_int, check_option

__all__ = [
    "PairedTest",
    "ResampledTest",
    "BootstrapDifference",
    "MixedModelResult",
    "chance_interval",
    "accuracy_ci",
    "paired_ttest",
    "corrected_resampled_ttest",
    "trial_bootstrap_difference",
    "holm",
    "unit_means",
    "compare_methods",
    "mixed_model",
]


def _check_level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    return float(level)


# ---------------------------------------------------------------------------
# Chance level and accuracy intervals
# ---------------------------------------------------------------------------


def chance_interval(n: int, p: float = 0.5, level: float = 0.95) -> tuple[float, float]:
    """Range of accuracy a chance classifier reaches on ``n`` independent items.

    A classifier that guesses correctly with probability ``p`` on each of ``n``
    independent test items has a Binomial(n, p) number of hits. The returned
    interval holds the central ``level`` mass of that distribution, as
    accuracies; an observed accuracy above its upper end is unlikely (at most
    about ``(1 - level) / 2``) under guessing.

    Parameters
    ----------
    n : int
        Number of independent test items. For segmented trials, pass the number
        of *trials* for the honest interval and the number of *segments* only
        to show how much narrower (over-confident) the naive one is; segments
        of one trial share label and signal and are not independent.
    p : float, default 0.5
        Per-item probability of a correct guess: 0.5 for a balanced binary
        task, or the majority-class share for a classifier that always predicts
        the majority class.
    level : float, default 0.95
        Central probability mass of the interval.

    Returns
    -------
    tuple of float
        ``(low, high)`` accuracies in [0, 1]. Because the binomial is discrete,
        the interval's actual mass is at least ``level``.

    References
    ----------
    .. [1] E. Combrisson and K. Jerbi, "Exceeding chance level by chance: the
       caveat of theoretical chance levels in brain signal classification and
       statistical assessment of decoding accuracy", J. Neurosci. Methods 250,
       126-136, 2015.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p!r}")
    low, high = stats.binom.interval(_check_level(level), int(n), p)
    return float(low) / n, float(high) / n


def accuracy_ci(
    n_correct: int, n: int, level: float = 0.95, method: str = "wilson"
) -> tuple[float, float]:
    """Confidence interval of an accuracy from its hit count.

    Parameters
    ----------
    n_correct : int
        Correctly classified test items.
    n : int
        Test items. The same caveat as in :func:`chance_interval` applies: with
        segment counts the interval is too narrow because segments of one trial
        are correlated.
    level : float, default 0.95
        Confidence level.
    method : str, default "wilson"
        Any method of :func:`statsmodels.stats.proportion.proportion_confint`
        (``"wilson"``, ``"beta"`` for Clopper-Pearson, ``"agresti_coull"``, ...).
        Wilson keeps close to nominal coverage even near 0 or 1, unlike the
        normal approximation.

    Returns
    -------
    tuple of float
        ``(low, high)`` accuracies in [0, 1].

    References
    ----------
    .. [1] L. D. Brown, T. T. Cai and A. DasGupta, "Interval estimation for a
       binomial proportion", Statistical Science 16(2), 101-133, 2001.
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not 0 <= n_correct <= n:
        raise ValueError(f"n_correct must lie in [0, n={n}], got {n_correct!r}")
    low, high = proportion_confint(n_correct, n, alpha=1.0 - _check_level(level), method=method)
    return float(low), float(high)


# ---------------------------------------------------------------------------
# Paired t-test with Cohen's d_z
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """A paired t-test of ``a - b`` with its effect size.

    Attributes
    ----------
    mean_diff : float
        Mean of the paired differences ``a - b``.
    t, df, p : float
        Student t statistic, degrees of freedom (``n - 1``) and two-sided p.
    ci_low, ci_high : float
        Confidence interval of the mean difference.
    n : int
        Number of pairs.
    dz, dz_low, dz_high : float
        Cohen's :math:`d_z` = mean / SD of the differences, and its exact
        confidence interval (noncentral t).
    level : float
        Confidence level of both intervals.

    Notes
    -----
    When every difference is the same (up to rounding) the standard deviation
    is zero, the t statistic is undefined, and ``t``, ``p``, the intervals and
    the d_z fields are NaN (``mean_diff`` is still reported). This happens,
    for example, when two methods both collapse to the majority class.
    """

    mean_diff: float
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    n: int
    dz: float
    dz_low: float
    dz_high: float
    level: float


def _paired_differences(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired t-test needs at least 2 pairs, got {a.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must not contain NaN or infinite values")
    return a - b


def _is_constant(values: np.ndarray) -> bool:
    """True when the values differ by no more than rounding error.

    Differences such as ``0.8 - 0.7`` and ``0.7 - 0.6`` are equal in exact
    arithmetic but not in floating point; their tiny spread would give a huge,
    meaningless t statistic.
    """
    return bool(np.ptp(values) <= 1e-12 * np.abs(values).max())


def _noncentrality_interval(t_obs: float, df: float, level: float) -> tuple[float, float]:
    """Confidence interval of the noncentrality parameter of a t statistic.

    Inverts the noncentral t distribution (test inversion): the lower limit is
    the noncentrality under which ``t_obs`` sits at the upper ``alpha / 2``
    quantile, the upper limit the one under which it sits at the lower
    ``alpha / 2`` quantile. The CDF falls monotonically in the noncentrality,
    so each limit is a single root, bracketed by stepping outwards.
    """
    alpha = 1.0 - level

    def limit(target: float, direction: float) -> float:
        def excess(ncp: float) -> float:
            return float(stats.nct.cdf(t_obs, df, ncp)) - target

        step = max(1.0, abs(t_obs))
        far = t_obs + direction * step
        while np.sign(excess(far)) == np.sign(excess(t_obs)):
            step *= 2.0
            far = t_obs + direction * step
        return optimize.brentq(excess, min(t_obs, far), max(t_obs, far), xtol=1e-10)

    return limit(1.0 - alpha / 2.0, -1.0), limit(alpha / 2.0, +1.0)


def paired_ttest(a: ArrayLike, b: ArrayLike, level: float = 0.95) -> PairedTest:
    """Paired t-test of ``a`` against ``b`` with Cohen's d_z and its interval.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Matched scores, one pair per unit (for example per-subject mean
        accuracies of two methods). Differences are ``a - b``.
    level : float, default 0.95
        Confidence level of the mean-difference and d_z intervals.

    Returns
    -------
    PairedTest
        t, df and p from :func:`scipy.stats.ttest_rel`; the mean-difference
        interval ``mean ± t_{df, 1-alpha/2} * sd / sqrt(n)``; Cohen's
        ``d_z = mean(diff) / sd(diff, ddof=1)``.

    Notes
    -----
    The d_z interval is exact for normally distributed differences: the
    statistic ``t = d_z * sqrt(n)`` follows a noncentral t distribution with
    ``n - 1`` degrees of freedom and noncentrality ``delta * sqrt(n)``, where
    ``delta`` is the population d_z. Inverting :data:`scipy.stats.nct` for the
    noncentralities that put the observed t at the ``1 - alpha/2`` and
    ``alpha/2`` quantiles, and dividing them by ``sqrt(n)``, gives the interval
    (Steiger & Fouladi 1997; Cumming & Finch 2001).

    References
    ----------
    .. [1] J. Cohen, Statistical Power Analysis for the Behavioral Sciences,
       2nd ed., Erlbaum, 1988 (d_z for paired designs).
    .. [2] J. H. Steiger and R. T. Fouladi, "Noncentrality interval
       estimation and the evaluation of statistical models", in What If There
       Were No Significance Tests?, Erlbaum, 1997.
    .. [3] G. Cumming and S. Finch, "A primer on the understanding, use, and
       calculation of confidence intervals that are based on central and
       noncentral distributions", Educ. Psychol. Meas. 61(4), 532-574, 2001.
    .. [4] D. Lakens, "Calculating and reporting effect sizes to facilitate
       cumulative science: a practical primer for t-tests and ANOVAs",
       Front. Psychol. 4, 863, 2013.
    """
    level = _check_level(level)
    diff = _paired_differences(a, b)
    n = diff.size
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1))
    if _is_constant(diff):
        nan = float("nan")
        return PairedTest(mean, nan, float(n - 1), nan, nan, nan, n, nan, nan, nan, level)
    result = stats.ttest_rel(a, b)
    ci = result.confidence_interval(confidence_level=level)
    ncp_low, ncp_high = _noncentrality_interval(float(result.statistic), float(result.df), level)
    root_n = float(np.sqrt(n))
    return PairedTest(
        mean_diff=mean,
        t=float(result.statistic),
        df=float(result.df),
        p=float(result.pvalue),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        n=n,
        dz=mean / sd,
        dz_low=ncp_low / root_n,
        dz_high=ncp_high / root_n,
        level=level,
    )


# ---------------------------------------------------------------------------
# Two models on one test set: a bootstrap over trials
# ---------------------------------------------------------------------------


def _balanced_accuracy_by_trial(labels: np.ndarray, p1: np.ndarray, codes: np.ndarray, n_trials: int):
    """Balanced accuracy of any weighting of trials, from per-trial hit counts.

    Returns a function of trial multiplicities ``(..., n_trials)``. With all
    multiplicities 1 it is :func:`sklearn.metrics.balanced_accuracy_score`
    of ``p1 > 0.5``.
    """
    hit = (p1 > 0.5) == (labels == 1)
    count = {c: np.bincount(codes, weights=labels == c, minlength=n_trials) for c in (0, 1)}
    hits = {c: np.bincount(codes, weights=hit & (labels == c), minlength=n_trials) for c in (0, 1)}
    return lambda m: 0.5 * sum((m @ hits[c]) / (m @ count[c]) for c in (0, 1))


def _auc_by_trial(labels: np.ndarray, p1: np.ndarray, codes: np.ndarray, n_trials: int):
    """ROC AUC of any weighting of trials, from per-pair-of-trials win counts.

    The AUC is the share of (positive, negative) segment pairs that the scores
    order correctly, ties counting half (the Mann-Whitney U over ``P * N``).
    Pairs group by the trials of their two segments, so a matrix ``W`` of
    wins between trial ``k``'s positives and trial ``l``'s negatives gives
    the AUC of trial multiplicities ``m`` as ``m W m / ((m P)(m N))``. With
    all multiplicities 1 it is :func:`sklearn.metrics.roc_auc_score`.
    """
    positive, negative = labels == 1, labels == 0
    scores, owners = p1[positive], codes[positive]
    wins = np.zeros((n_trials, n_trials))
    for trial in np.unique(codes[negative]):
        against = np.sort(p1[negative & (codes == trial)])
        below = np.searchsorted(against, scores, "left")
        tied = np.searchsorted(against, scores, "right") - below
        wins[:, trial] = np.bincount(owners, weights=below + 0.5 * tied, minlength=n_trials)
    n_pos = np.bincount(codes, weights=positive, minlength=n_trials)
    n_neg = np.bincount(codes, weights=negative, minlength=n_trials)
    return lambda m: np.einsum("...k,kl,...l->...", m, wins, m) / ((m @ n_pos) * (m @ n_neg))


#: Metrics of :func:`trial_bootstrap_difference`, each as a builder of a
#: function of trial multiplicities, so that thousands of bootstrap draws
#: cost a few matrix products instead of thousands of calls to scikit-learn.
BOOTSTRAP_METRICS = {"balanced_accuracy": _balanced_accuracy_by_trial, "auc": _auc_by_trial}


@dataclass(frozen=True)
class BootstrapDifference:
    """The difference of one metric between two models, with a trial-bootstrap interval.

    Attributes
    ----------
    metric : str
        A key of :data:`BOOTSTRAP_METRICS`.
    first, second : float
        The metric of each model on the whole test set.
    difference : float
        ``first - second``.
    low, high : float
        Confidence interval of the difference.
    level : float
        Its confidence level.
    n_trials : int
        Trials resampled (the test set's clusters).
    """

    metric: str
    first: float
    second: float
    difference: float
    low: float
    high: float
    level: float
    n_trials: int


def trial_bootstrap_difference(
    labels: ArrayLike,
    first: ArrayLike,
    second: ArrayLike,
    trials: ArrayLike,
    metric: str = "balanced_accuracy",
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> BootstrapDifference:
    """Difference of a metric between two models on the same test segments, resampling trials.

    The segments of one trial share a label and most of their signal, so
    the two models' errors cluster by trial; the bootstrap therefore draws
    whole trials with replacement (a cluster bootstrap, Field & Welsh 2007)
    and scores both models on the same draw, which keeps the pairing. The
    interval is SciPy's BCa interval (:func:`scipy.stats.bootstrap`).

    Parameters
    ----------
    labels : array_like of int, shape (n,)
        Binary labels of the test segments.
    first, second : array_like of float, shape (n,)
        Each model's probability of class 1 for the same segments, in the
        same order. A segment counts as predicted class 1 above 0.5.
    trials : array_like, shape (n,)
        Any hashable-valued trial identifier per segment (for example
        ``subject * 100 + trial``).
    metric : str, default "balanced_accuracy"
        ``"balanced_accuracy"`` or ``"auc"``.
    level : float, default 0.95
        Confidence level.
    n_resamples : int, default 2000
        Bootstrap draws.
    seed : int, default 0
        Seed of the draws.

    Returns
    -------
    BootstrapDifference

    Raises
    ------
    ValueError
        If the arrays differ in length, the labels hold one class only, the
        metric is unknown or there are fewer than two trials.

    References
    ----------
    .. [1] C. A. Field and A. H. Welsh, "Bootstrapping clustered data",
       J. R. Stat. Soc. B 69(3), 369-390, 2007.
    .. [2] B. Efron, "Better bootstrap confidence intervals", J. Am. Stat.
       Assoc. 82(397), 171-185, 1987.
    """
    level = _check_level(level)
    by_trial = BOOTSTRAP_METRICS[check_option("metric", metric, tuple(BOOTSTRAP_METRICS))]
    check_int("n_resamples", n_resamples, low=1)
    labels, first, second, trials = (np.asarray(v) for v in (labels, first, second, trials))
    if not len(labels) == len(first) == len(second) == len(trials):
        raise ValueError(
            f"labels, first, second and trials must have one entry per segment, got lengths "
            f"{len(labels)}, {len(first)}, {len(second)} and {len(trials)}"
        )
    if set(np.unique(labels).tolist()) != {0, 1}:
        raise ValueError("labels must hold both classes, 0 and 1")
    names, codes = np.unique(trials, return_inverse=True)
    n_trials = len(names)
    if n_trials < 2:
        raise ValueError(f"at least two trials are needed, got {n_trials}")
    score_first = by_trial(labels, first, codes, n_trials)
    score_second = by_trial(labels, second, codes, n_trials)

    def difference(drawn: np.ndarray, axis: int = -1) -> np.ndarray:
        # Drawn trial indices -> how often each trial was drawn, per draw.
        drawn = np.moveaxis(drawn, axis, -1)
        rows = drawn.reshape(-1, drawn.shape[-1])
        offset = n_trials * np.arange(len(rows))[:, None]
        multiplicity = np.bincount((rows + offset).ravel(), minlength=len(rows) * n_trials)
        multiplicity = multiplicity.reshape(*drawn.shape[:-1], n_trials).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):  # a draw of one class: NaN
            return score_first(multiplicity) - score_second(multiplicity)

    with warnings.catch_warnings():
        # Two models that agree on every draw leave BCa undefined; handled below.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.bootstrap(
            (np.arange(n_trials),), difference, vectorized=True, n_resamples=n_resamples,
            confidence_level=level, random_state=np.random.default_rng(seed),
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    draws = result.bootstrap_distribution[np.isfinite(result.bootstrap_distribution)]
    if draws.size and np.ptp(draws) == 0:
        low = high = float(draws[0])
    everyone = np.ones(n_trials)
    a, b = float(score_first(everyone)), float(score_second(everyone))
    return BootstrapDifference(
        metric=metric, first=a, second=b, difference=a - b,
        low=low, high=high, level=level, n_trials=n_trials,
    )


# ---------------------------------------------------------------------------
# Corrected resampled t-test for cross-validation folds
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ResampledTest:
    """The Nadeau-Bengio corrected resampled t-test.

    Attributes
    ----------
    mean_diff : float
        Mean of the per-resample differences.
    t, df, p : float
        Corrected t statistic, degrees of freedom (``J - 1``), two-sided p.
    ci_low, ci_high : float
        Confidence interval of the mean difference with the corrected variance.
    n : int
        Number of resamples (folds) ``J``.
    variance_factor : float
        ``1/J + n_test/n_train``, the multiplier of the sample variance of the
        differences; the naive test uses ``1/J``.
    naive_t, naive_p : float
        The uncorrected (ordinary one-sample) t and p, for comparison.
    level : float
        Confidence level of the interval.

    Notes
    -----
    As in :class:`PairedTest`, constant differences leave the statistics,
    p-values and interval NaN.
    """

    mean_diff: float
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    n: int
    variance_factor: float
    naive_t: float
    naive_p: float
    level: float


def corrected_resampled_ttest(
    diffs: ArrayLike, n_train: int, n_test: int, level: float = 0.95
) -> ResampledTest:
    """Corrected resampled t-test of differences measured on CV folds.

    Parameters
    ----------
    diffs : array_like, shape (J,)
        Per-fold (or per-resample) score differences between two methods
        trained and tested on the same splits.
    n_train, n_test : int
        Training and test set sizes of one fold, in the same unit (trials or
        segments; only their ratio matters). For k-fold cross-validation
        ``n_test / n_train = 1 / (k - 1)``.
    level : float, default 0.95
        Confidence level of the interval.

    Returns
    -------
    ResampledTest
        ``t = mean(diffs) / sqrt((1/J + n_test/n_train) * var(diffs))`` with
        ``var`` the sample variance (ddof=1), referred to Student's t with
        ``J - 1`` degrees of freedom.

    Notes
    -----
    Why the naive test is optimistic: the folds share most of their training
    data (and, across repetitions, their test items), so the per-fold
    differences are positively correlated. The variance of their mean is then
    ``sigma^2 * (1/J + rho / (1 - rho))`` rather than ``sigma^2 / J``; the naive
    test divides by too small a standard error, and its type I error can reach
    several times the nominal level. Nadeau and Bengio approximate the
    correlation by ``rho = n_test / (n_train + n_test)``, which yields the
    factor ``1/J + n_test/n_train``. The correction is a heuristic: it is
    reasonably calibrated in Bouckaert and Frank's simulations (with repeated
    10-fold CV) but not exact.

    References
    ----------
    .. [1] C. Nadeau and Y. Bengio, "Inference for the generalization error",
       Machine Learning 52(3), 239-281, 2003.
    .. [2] R. R. Bouckaert and E. Frank, "Evaluating the replicability of
       significance tests for comparing learning algorithms", PAKDD 2004,
       LNCS 3056, 3-12.
    """
    level = _check_level(level)
    diffs = np.asarray(diffs, dtype=float)
    if diffs.ndim != 1 or diffs.size < 2:
        raise ValueError(f"diffs must be 1-D with at least 2 values, got shape {diffs.shape}")
    if not np.isfinite(diffs).all():
        raise ValueError("diffs must not contain NaN or infinite values")
    if n_train < 1 or n_test < 1:
        raise ValueError(f"n_train and n_test must be positive, got {n_train!r} and {n_test!r}")
    n = diffs.size
    df = float(n - 1)
    mean = float(diffs.mean())
    variance = float(diffs.var(ddof=1))
    factor = 1.0 / n + n_test / n_train
    if _is_constant(diffs):
        nan = float("nan")
        return ResampledTest(mean, nan, df, nan, nan, nan, n, factor, nan, nan, level)
    se = np.sqrt(factor * variance)
    t = mean / se
    naive_t = mean / np.sqrt(variance / n)
    half_width = stats.t.ppf(0.5 + level / 2.0, df) * se
    return ResampledTest(
        mean_diff=mean,
        t=float(t),
        df=df,
        p=float(2.0 * stats.t.sf(abs(t), df)),
        ci_low=float(mean - half_width),
        ci_high=float(mean + half_width),
        n=n,
        variance_factor=factor,
        naive_t=float(naive_t),
        naive_p=float(2.0 * stats.t.sf(abs(naive_t), df)),
        level=level,
    )


# ---------------------------------------------------------------------------
# Multiple comparisons
# ---------------------------------------------------------------------------


def _adjust_pvalues(pvalues: ArrayLike, method: str) -> np.ndarray:
    """Adjust the finite p-values with statsmodels, leaving NaN in place."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be 1-D, got shape {p.shape}")
    finite = np.isfinite(p)
    if ((p[finite] < 0.0) | (p[finite] > 1.0)).any():
        raise ValueError("p-values must lie in [0, 1]")
    adjusted = np.full_like(p, np.nan)
    if finite.any():
        # NaN marks a comparison without a test (constant differences); it is
        # not part of the family, so it must not inflate the others' penalty.
        adjusted[finite] = multipletests(p[finite], method=method)[1]
    return adjusted


def holm(pvalues: ArrayLike) -> np.ndarray:
    """Holm-adjusted p-values (family-wise error control).

    Parameters
    ----------
    pvalues : array_like, shape (m,)
        Unadjusted p-values of one family of comparisons. NaN entries are left
        as NaN and not counted in ``m``.

    Returns
    -------
    numpy.ndarray, shape (m,)
        Adjusted p-values in the input order: the i-th smallest p becomes
        ``max_{j <= i} min(1, (m - j + 1) * p_(j))``.

    References
    ----------
    .. [1] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scandinavian Journal of Statistics 6(2), 65-70, 1979.
    """
    return _adjust_pvalues(pvalues, "holm")


# ---------------------------------------------------------------------------
# Reference method against every baseline, on a tidy results table
# ---------------------------------------------------------------------------


_COMPARISON_COLUMNS = [
    "method", "n_pairs", "mean_diff", "ci_low", "ci_high", "t", "df", "p",
    "p_holm", "dz", "dz_low", "dz_high", "significant",
]


def _require_columns(table: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"table has no column(s) {missing}; it has {list(table.columns)}")


def _require_reference(methods: Sequence[str], reference: str) -> None:
    if reference not in methods:
        raise ValueError(f"reference method {reference!r} not in the table; methods are {list(methods)}")
    if len(methods) < 2:
        raise ValueError(f"need at least one method besides the reference {reference!r}")


def unit_means(
    table: pd.DataFrame,
    method_col: str = "method",
    score_col: str = "accuracy",
    pair_by: str | Sequence[str] = ("subject",),
) -> pd.DataFrame:
    """Average each method's scores within each pairing unit: the pairs a paired test compares.

    :func:`compare_methods` pairs methods on these means, so that each unit
    (by default a subject, pooling its folds and seeds) contributes one pair
    however many runs it has.

    Parameters
    ----------
    table : pandas.DataFrame
        Long results table, one row per run (method x subject x fold x seed).
    method_col, score_col : str, default "method", "accuracy"
        Columns holding the method name and the score.
    pair_by : str or sequence of str, default ("subject",)
        Columns defining the pairing unit.

    Returns
    -------
    pandas.DataFrame
        One row per pairing unit (indexed by the ``pair_by`` columns, sorted)
        and one column per method, holding the mean score of that method's
        runs in that unit; NaN where a method has no run in a unit.

    Raises
    ------
    ValueError
        If a column is missing or a score is NaN.

    Examples
    --------
    >>> runs = pd.DataFrame({"method": ["A", "A", "B", "B"], "subject": [1, 1, 1, 1],
    ...                      "fold": [0, 1, 0, 1], "accuracy": [0.6, 0.8, 0.5, 0.7]})
    >>> unit_means(runs).round(2)  # doctest: +NORMALIZE_WHITESPACE
    method     A    B
    subject
    1        0.7  0.6
    """
    pair_by = [pair_by] if isinstance(pair_by, str) else list(pair_by)
    _require_columns(table, [method_col, score_col, *pair_by])
    if table[score_col].isna().any():
        raise ValueError(f"column {score_col!r} contains NaN scores")
    means = table.groupby([*pair_by, method_col], sort=True)[score_col].mean()
    return means.unstack(method_col)


def _matched_pairs(
    units: pd.DataFrame, reference: str, method: str, pair_by: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    has_ref = units[reference].notna()
    has_method = units[method].notna()
    only_ref = units.index[has_ref & ~has_method].tolist()
    only_method = units.index[has_method & ~has_ref].tolist()
    if only_ref or only_method:
        raise ValueError(
            f"unmatched pairs between {reference!r} and {method!r} on {pair_by}: "
            f"units with only {reference!r}: {only_ref}; units with only {method!r}: {only_method}"
        )
    both = has_ref & has_method
    return units.loc[both, reference].to_numpy(), units.loc[both, method].to_numpy()


def compare_methods(
    table: pd.DataFrame,
    *,
    reference: str,
    method_col: str = "method",
    score_col: str = "accuracy",
    pair_by: str | Sequence[str] = ("subject",),
    correction: str = "holm",
    level: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Paired t-tests of a reference method against every other method.

    Scores are first averaged within each pairing unit (for example per
    subject, pooling its folds and seeds), so each unit contributes one pair
    and the test's n is the number of units, not of runs: folds and seeds of
    one subject are not independent replicates.

    Parameters
    ----------
    table : pandas.DataFrame
        Long results table, one row per run (method x subject x fold x seed).
    reference : str
        The method every other method is compared with (e.g. ``"V3"``).
    method_col, score_col : str
        Columns holding the method name and the score.
    pair_by : str or sequence of str, default ("subject",)
        Columns defining the pairing unit. ``("subject", "fold")`` pairs by
        fold instead; see :func:`corrected_resampled_ttest` for why fold-level
        pairs need a corrected variance.
    correction : str, default "holm"
        Multiple-comparison adjustment across the comparisons, any method of
        :func:`statsmodels.stats.multitest.multipletests`. The adjusted column
        is named ``"p_" + correction``.
    level : float, default 0.95
        Confidence level of the mean-difference and d_z intervals.
    alpha : float, default 0.05
        Threshold on the adjusted p-value for ``significant``.

    Returns
    -------
    pandas.DataFrame
        One row per compared method with columns ``method, n_pairs, mean_diff,
        ci_low, ci_high, t, df, p, p_holm, dz, dz_low, dz_high, significant``.
        ``mean_diff`` and ``dz`` are reference minus method: positive when the
        reference scores higher. ``attrs`` records ``reference``, ``pair_by``
        and ``correction``.

    Raises
    ------
    ValueError
        If a column is missing, the reference is absent, scores contain NaN,
        a pairing unit has the reference but not the method (or vice versa),
        or fewer than two pairs remain.

    References
    ----------
    .. [1] J. Demšar, "Statistical comparisons of classifiers over multiple
       data sets", JMLR 7, 1-30, 2006.
    .. [2] S. Holm, "A simple sequentially rejective multiple test procedure",
       Scandinavian Journal of Statistics 6(2), 65-70, 1979.
    """
    pair_by = [pair_by] if isinstance(pair_by, str) else list(pair_by)
    _require_columns(table, [method_col, score_col, *pair_by])
    methods = sorted(table[method_col].unique().tolist(), key=str)
    _require_reference(methods, reference)
    units = unit_means(table, method_col, score_col, pair_by)

    rows = []
    for method in (m for m in methods if m != reference):
        ref_scores, method_scores = _matched_pairs(units, reference, method, pair_by)
        test = paired_ttest(ref_scores, method_scores, level=level)
        rows.append({
            "method": method, "n_pairs": test.n, "mean_diff": test.mean_diff,
            "ci_low": test.ci_low, "ci_high": test.ci_high, "t": test.t, "df": test.df,
            "p": test.p, "dz": test.dz, "dz_low": test.dz_low, "dz_high": test.dz_high,
        })
    result = pd.DataFrame(rows)
    adjusted_col = f"p_{correction}"
    result[adjusted_col] = _adjust_pvalues(result["p"].to_numpy(), correction)
    result["significant"] = result[adjusted_col] < alpha  # NaN compares False
    columns = [adjusted_col if c == "p_holm" else c for c in _COMPARISON_COLUMNS]
    result = result[columns]
    result.attrs.update(reference=reference, pair_by=tuple(pair_by), correction=correction)
    return result


# ---------------------------------------------------------------------------
# Linear mixed model: subjects as random effects
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MixedModelResult:
    """A random-intercept mixed model of score on method.

    Attributes
    ----------
    contrasts : pandas.DataFrame
        One row per non-reference method with columns ``method, mean_diff, se,
        z, p, ci_low, ci_high``; ``mean_diff`` is reference minus method (the
        sign convention of :func:`compare_methods`), estimated by REML.
    reference_mean : float
        The reference method's fitted mean score (the model's intercept).
    group_variance : float
        Variance of the per-subject random intercept.
    residual_variance : float
        Within-subject residual variance.
    n_groups, n_obs : int
        Subjects and rows the model was fitted to.
    converged : bool
        statsmodels' verdict on whether an optimiser converged.
    warnings : tuple of str
        Every warning statsmodels raised while fitting, as ``"Category:
        message"`` and without repeats: ``ConvergenceWarning`` for a failed
        optimiser or "The MLE may be on the boundary of the parameter space"
        (subject variance below 1 % of the score variance; a converged fit
        can carry it), ``SingularMatrixWarning`` for a zero random-effect
        covariance, and so on. They are caught so that notebooks stay clean.
    level : float
        Confidence level of the intervals.
    """

    contrasts: pd.DataFrame
    reference_mean: float
    group_variance: float
    residual_variance: float
    n_groups: int
    n_obs: int
    converged: bool
    warnings: tuple[str, ...]
    level: float


def mixed_model(
    table: pd.DataFrame,
    *,
    reference: str,
    score_col: str = "accuracy",
    method_col: str = "method",
    group_col: str = "subject",
    level: float = 0.95,
) -> MixedModelResult:
    """Fit ``score ~ C(method, Treatment(reference)) + (1 | subject)``.

    Uses every run (all folds and seeds) rather than per-subject means; the
    random intercept absorbs the fact that some subjects are easier than
    others, so method effects are estimated within subjects, as in the paired
    test.

    Parameters
    ----------
    table : pandas.DataFrame
        Long results table, one row per run.
    reference : str
        Method used as the treatment-coding baseline.
    score_col, method_col, group_col : str
        Columns holding the score, the method name and the subject.
    level : float, default 0.95
        Confidence level of the Wald intervals.

    Returns
    -------
    MixedModelResult
        Tidy contrasts (reference minus each method), variance components and
        a convergence report. Warnings raised by the fit are caught and
        listed in ``warnings``, never printed.

    Notes
    -----
    The p-values and intervals are Wald (normal) approximations, which are
    optimistic with few subjects; statsmodels offers no Kenward-Roger or
    Satterthwaite degrees of freedom. Only a random intercept is fitted:
    subject-by-method variation and the correlation of folds within a subject
    end up in the residual.

    References
    ----------
    .. [1] N. M. Laird and J. H. Ware, "Random-effects models for longitudinal
       data", Biometrics 38(4), 963-974, 1982.
    .. [2] statsmodels, ``statsmodels.regression.mixed_linear_model.MixedLM``.
    """
    level = _check_level(level)
    _require_columns(table, [score_col, method_col, group_col])
    methods = sorted(table[method_col].unique().tolist(), key=str)
    _require_reference(methods, reference)
    if table[score_col].isna().any():
        raise ValueError(f"column {score_col!r} contains NaN scores")
    n_groups = table[group_col].nunique()
    if n_groups < 2:
        raise ValueError(f"need at least 2 levels of {group_col!r} for a random intercept, got {n_groups}")

    # statsmodels flags "MLE on the boundary" when a variance is below 0.01 in
    # absolute terms, which every accuracy-scale variance is; fitting the
    # score in units of its own SD makes that check (and the optimiser)
    # scale-free. Estimates are scaled back below; z and p are unaffected.
    scores = table[score_col].to_numpy(dtype=float)
    unit = float(scores.std(ddof=1))
    if not unit > 0.0:
        raise ValueError(f"column {score_col!r} is constant; there is nothing to model")
    # Fixed internal names keep the formula safe whatever the user's columns
    # or method labels are called.
    data = pd.DataFrame({
        "score": scores / unit,
        "method": pd.Categorical(table[method_col], categories=methods),
        "group": table[group_col].to_numpy(),
    })
    formula = f"score ~ {_method_term(reference)}"
    model = smf.mixedlm(formula, data, groups=data["group"])
    with warnings.catch_warnings(record=True) as caught:
        # statsmodels warns while fitting (convergence, variance on the
        # boundary, singular covariance) and again when it lazily computes
        # standard errors, so everything that touches the fit stays inside.
        warnings.simplefilter("always")
        fit = model.fit(reml=True)
        contrasts = _tidy_contrasts(fit, methods, reference, level, unit)
        reference_mean = float(fit.fe_params["Intercept"]) * unit
        group_variance = float(fit.cov_re.iloc[0, 0]) * unit**2
    messages = (f"{w.category.__name__}: {w.message}" for w in caught)
    return MixedModelResult(
        contrasts=contrasts,
        reference_mean=reference_mean,
        group_variance=group_variance,
        residual_variance=float(fit.scale) * unit**2,
        n_groups=int(n_groups),
        n_obs=int(fit.nobs),
        converged=bool(fit.converged),
        warnings=tuple(dict.fromkeys(messages)),
        level=level,
    )


def _method_term(reference: str) -> str:
    """The patsy term for treatment-coded methods; fitted names extend it with ``[T.method]``."""
    return f"C(method, Treatment(reference={reference!r}))"


def _tidy_contrasts(
    fit, methods: list[str], reference: str, level: float, unit: float
) -> pd.DataFrame:
    """Reference-minus-method rows from statsmodels' method-minus-reference terms, in score units."""
    ci = fit.conf_int(alpha=1.0 - level)
    rows = []
    for method in (m for m in methods if m != reference):
        term = f"{_method_term(reference)}[T.{method}]"
        rows.append({
            "method": method,
            "mean_diff": -float(fit.fe_params[term]) * unit,
            "se": float(fit.bse[term]) * unit,
            "z": -float(fit.tvalues[term]),
            "p": float(fit.pvalues[term]),
            "ci_low": -float(ci.loc[term, 1]) * unit,
            "ci_high": -float(ci.loc[term, 0]) * unit,
        })
    return pd.DataFrame(rows)
