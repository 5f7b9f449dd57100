"""Verdict words come from intervals and equivalence tests, never from point estimates."""

import numpy as np
import pytest

from mkdbook.analysis.verdicts import VERDICTS, compare_paired, verdict_word


def test_the_word_follows_the_interval_not_the_point_estimate():
    assert verdict_word(0.001, 0.05, 0.02) == "higher"
    assert verdict_word(-0.05, -0.001, 0.02) == "lower"
    # A positive point estimate whose interval spans zero is not "higher".
    assert verdict_word(-0.001, 0.026, 0.02) == "inconclusive"
    assert verdict_word(-0.001, 0.026, 0.02, equivalent=True) == "equivalent within \u00b10.02"
    assert verdict_word(float("nan"), float("nan"), 0.02) == "inconclusive"
    assert verdict_word(float("nan"), float("nan"), 0.02, equivalent=True) == "inconclusive"
    assert all(verdict_word(*case, 0.02).split()[0] in VERDICTS
               for case in ((0.1, 0.2), (-0.2, -0.1), (-0.1, 0.1)))


def test_a_smallest_effect_must_be_positive():
    with pytest.raises(ValueError, match="smallest_effect"):
        verdict_word(0.0, 0.1, 0.0)
    with pytest.raises(ValueError, match="smallest_effect"):
        compare_paired([1, 2, 3], [1, 2, 3], -0.1)


@pytest.mark.parametrize("shift, spread, expected", [
    (0.05, 0.01, "higher"),          # a clear gain
    (-0.05, 0.01, "lower"),          # a clear loss
    (0.0, 0.005, "equivalent"),      # no difference, measured precisely
    (0.0, 0.2, "inconclusive"),      # no difference, measured too loosely to say
])
def test_compare_paired_words_simulated_differences(shift, spread, expected):
    rng = np.random.default_rng(0)
    b = rng.normal(0.65, 0.05, 24)
    a = b + shift + rng.normal(0, spread, 24)
    result = compare_paired(a, b, smallest_effect=0.02)
    assert result.word.split()[0] == expected
    assert result.ci_low <= result.difference <= result.ci_high
    assert result.n == 24
    assert str(result).startswith(result.word + ": ")
    assert "95 % CI" in result.interval()


def test_equivalence_is_the_90_percent_interval_inside_the_margin():
    # TOST at 0.05 rejects exactly when the 90 % interval lies inside (-d, d).
    rng = np.random.default_rng(1)
    for _ in range(20):
        diffs = rng.normal(rng.uniform(-0.02, 0.02), rng.uniform(0.005, 0.04), 12)
        wide = compare_paired(diffs, np.zeros(12), 0.02)
        narrow = compare_paired(diffs, np.zeros(12), 0.02, level=0.90)
        inside = -0.02 < narrow.ci_low and narrow.ci_high < 0.02
        assert (wide.equivalence_p < 0.05) == inside


def test_identical_differences_are_known_exactly():
    # Two methods that answer alike on every subject: the difference is exactly zero.
    same = compare_paired(np.full(6, 0.5), np.full(6, 0.5), 0.02)
    assert same.word == "equivalent within \u00b10.02" and same.ci_low == same.ci_high == 0.0
    shifted = compare_paired(np.arange(6) + 0.1, np.arange(6.0), 0.02)
    assert shifted.word == "higher" and shifted.ci_low == pytest.approx(0.1)
    # Known exactly, a difference below the smallest effect is still a difference.
    assert compare_paired(np.arange(6) - 0.01, np.arange(6.0), 0.02).word == "lower"
