"""Words for a comparison, from its interval and a stated smallest effect, never from point estimates.

Two point estimates in an order say nothing when their intervals overlap.
Every verdict the book glues into its prose ("higher", "lower", "equivalent",
"inconclusive") comes from here, so that one rule decides them all:

* **higher** / **lower**: the confidence interval of the difference lies
  wholly above / below zero;
* **equivalent within +-d**: the interval contains zero and two one-sided
  tests (TOST) reject a difference as large as the smallest effect of
  interest ``d`` in either direction (Lakens, 2017; at level 0.95 this is the
  90 % interval lying inside ``(-d, d)``);
* **inconclusive**: neither; the data cannot tell a difference of interest
  from none.

The smallest effect of interest is stated by the caller before the result is
seen: it is part of the question, not of the answer.

:func:`compare_paired` applies the rules to matched units (subjects) with a
paired t-test and statsmodels' TOST. Where the interval comes from elsewhere,
such as a bootstrap over test trials
(:func:`~mkdbook.analysis.stats.trial_bootstrap_difference`, chapter 3), the
caller passes its 95 % interval to :func:`verdict_word`, and equivalence is its
90 % interval inside ``(-d, d)``: the same rules, the same words.

Works cited:

* D. Lakens, "Equivalence Tests: A Practical Primer for t Tests, Correlations,
  and Meta-Analyses," Social Psychological and Personality Science
  8(4):355-362, 2017.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from statsmodels.stats.weightstats import ttost_paired

from mkdbook.analysis.stats import paired_ttest
from mkdbook.core.checks import check_number

__all__ = ["VERDICTS", "Comparison", "compare_paired", "verdict_word"]

#: The four verdicts, in the order of the rules above.
VERDICTS: tuple[str, ...] = ("higher", "lower", "equivalent", "inconclusive")


def verdict_word(ci_low: float, ci_high: float, smallest_effect: float, equivalent: bool = False) -> str:
    """The verdict on a difference, from its confidence interval and an equivalence test.

    Parameters
    ----------
    ci_low, ci_high : float
        Confidence interval of the difference (first minus second).
    smallest_effect : float
        The smallest difference of interest, ``d > 0``, in the difference's units.
    equivalent : bool, default False
        Whether an equivalence test (TOST within ``+-d``) rejected a
        difference of interest.

    Returns
    -------
    str
        ``"higher"``, ``"lower"``, ``"equivalent within +-d"`` (``d`` printed
        with ``:g``) or ``"inconclusive"``; an interval that is not a number
        (every difference the same) is ``"inconclusive"``.
    """
    check_number("smallest_effect", smallest_effect, 0.0, strict=True)
    if not (np.isfinite(ci_low) and np.isfinite(ci_high)):
        return "inconclusive"  # no spread, no interval: nothing to word (every difference the same)
    if ci_low > 0:
        return "higher"
    if ci_high < 0:
        return "lower"
    if equivalent:
        return f"equivalent within \u00b1{smallest_effect:g}"
    return "inconclusive"


@dataclass(frozen=True)
class Comparison:
    """A paired comparison worded from its interval.

    Attributes
    ----------
    difference : float
        Mean of the paired differences (first minus second).
    ci_low, ci_high : float
        Its confidence interval (paired t).
    level : float
        Confidence level of the interval; the equivalence test runs at
        ``1 - level``.
    smallest_effect : float
        The smallest difference of interest.
    equivalence_p : float
        p-value of the two one-sided tests against ``+-smallest_effect``.
    n : int
        Pairs.
    word : str
        The verdict (:func:`verdict_word`).
    """

    difference: float
    ci_low: float
    ci_high: float
    level: float
    smallest_effect: float
    equivalence_p: float
    n: int
    word: str

    def interval(self, digits: int = 3) -> str:
        """The difference and its interval, such as ``+0.012 (95 % CI -0.001 to +0.026)``."""
        return (f"{self.difference:+.{digits}f} ({self.level * 100:.0f} % CI {self.ci_low:+.{digits}f} to "
                f"{self.ci_high:+.{digits}f})")

    def __str__(self) -> str:
        return f"{self.word}: {self.interval()}"


def compare_paired(a: ArrayLike, b: ArrayLike, smallest_effect: float, level: float = 0.95) -> Comparison:
    """Compare matched scores ``a`` and ``b`` (one pair per unit) and word the result.

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Matched scores, for example per-subject AUCs of two methods.
    smallest_effect : float
        The smallest difference of interest ``d > 0``, stated before the
        result is seen.
    level : float, default 0.95
        Confidence level of the interval of :func:`~mkdbook.analysis.stats.paired_ttest`;
        the equivalence test rejects at ``1 - level``.

    Returns
    -------
    Comparison
        When every pair differs by the same amount the difference is exact:
        its interval is that one point, worded by the rules above (no
        difference at all is *equivalent*).
    """
    check_number("smallest_effect", smallest_effect, 0.0, strict=True)
    test = paired_ttest(a, b, level)
    a, b = np.asarray(a, float), np.asarray(b, float)
    low, high = test.ci_low, test.ci_high
    if np.isnan(test.ci_low):  # paired_ttest's sign of a constant difference
        # Every pair differs by the same amount (two methods answering alike on every
        # unit): the difference is known exactly, an interval of one point.
        low = high = test.mean_diff
        equivalence_p = 0.0 if abs(test.mean_diff) < smallest_effect else 1.0
    else:
        # statsmodels' TOST: the larger of the two one-sided p-values.
        equivalence_p = float(ttost_paired(a, b, -smallest_effect, smallest_effect)[0])
    equivalent = bool(equivalence_p < 1 - level)
    return Comparison(test.mean_diff, low, high, level, smallest_effect, equivalence_p, test.n,
                      verdict_word(low, high, smallest_effect, equivalent))
