"""Tests of mkdbook.analysis.stats against hand computations, SciPy and simulation."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from mkdbook.analysis import stats


def results_table(
    rng: np.random.Generator,
    effects: dict[str, float],
    n_subjects: int = 12,
    n_folds: int = 4,
    subject_sd: float = 0.05,
    noise_sd: float = 0.03,
) -> pd.DataFrame:
    """A long table of accuracies: subject offset + method effect + noise."""
    rows = []
    for subject in range(n_subjects):
        offset = rng.normal(0.6, subject_sd)
        for fold in range(n_folds):
            for method, effect in effects.items():
                score = offset + effect + rng.normal(0.0, noise_sd)
                rows.append({"subject": f"s{subject:02d}", "fold": fold, "method": method, "accuracy": score})
    return pd.DataFrame(rows)


# --- chance level and accuracy intervals -----------------------------------


def test_chance_interval_brackets_chance_and_narrows_with_n():
    widths = []
    for n in (40, 480, 4800):
        low, high = stats.chance_interval(n)
        assert low < 0.5 < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]


def test_chance_interval_known_value_and_mass():
    # Binomial(100, 0.5): P(40 <= X <= 60) = 0.965 >= 0.95 and 40, 60 are the 2.5 % / 97.5 % quantiles.
    assert stats.chance_interval(100) == (0.40, 0.60)
    low, high = stats.chance_interval(37, p=0.6, level=0.9)
    mass = sps.binom.cdf(round(high * 37), 37, 0.6) - sps.binom.cdf(round(low * 37) - 1, 37, 0.6)
    assert mass >= 0.9


def test_trial_count_interval_is_wider_than_segment_count_interval():
    n_trials, segments_per_trial = 40, 12
    trial_low, trial_high = stats.chance_interval(n_trials)
    seg_low, seg_high = stats.chance_interval(n_trials * segments_per_trial)
    assert trial_low < seg_low and trial_high > seg_high


def test_accuracy_ci_is_wilson_by_hand():
    k, n, z = 70, 100, sps.norm.ppf(0.975)
    phat = k / n
    centre = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2))
    assert stats.accuracy_ci(k, n) == pytest.approx((centre - half, centre + half), rel=1e-10)


@pytest.mark.parametrize("call", [
    lambda: stats.chance_interval(0),
    lambda: stats.chance_interval(10, p=1.5),
    lambda: stats.chance_interval(10, level=1.0),
    lambda: stats.accuracy_ci(11, 10),
])
def test_interval_arguments_are_checked(call):
    with pytest.raises(ValueError):
        call()


# --- paired t-test and Cohen's d_z -----------------------------------------


def test_paired_ttest_matches_scipy_and_hand_computation():
    rng = np.random.default_rng(1)
    a = rng.normal(0.70, 0.05, 15)
    b = a - rng.normal(0.02, 0.03, 15)
    result = stats.paired_ttest(a, b, level=0.9)
    reference = sps.ttest_rel(a, b)
    assert result.t == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p == pytest.approx(reference.pvalue, rel=1e-12)
    assert result.df == 14 and result.n == 15

    diff = a - b
    mean, sd = diff.mean(), diff.std(ddof=1)
    half = sps.t.ppf(0.95, 14) * sd / np.sqrt(15)
    assert (result.ci_low, result.ci_high) == pytest.approx((mean - half, mean + half), rel=1e-10)
    assert result.mean_diff == pytest.approx(mean)
    assert result.dz == pytest.approx(mean / sd, rel=1e-12)


def test_dz_interval_inverts_the_noncentral_t():
    result = stats.paired_ttest([3.1, 2.0, 4.2, 1.5, 2.8, 3.9, 0.7, 2.2], np.zeros(8))
    root_n = np.sqrt(8)
    # By construction the observed t sits at the 97.5 % quantile under the lower
    # limit and at the 2.5 % quantile under the upper one.
    assert sps.nct.cdf(result.t, 7, result.dz_low * root_n) == pytest.approx(0.975, abs=1e-8)
    assert sps.nct.cdf(result.t, 7, result.dz_high * root_n) == pytest.approx(0.025, abs=1e-8)
    assert result.dz_low < result.dz < result.dz_high


def test_dz_interval_is_symmetric_at_zero_and_near_normal_theory_for_large_n():
    at_zero = stats.paired_ttest([1.0, -1.0, 2.0, -2.0, 0.5, -0.5], np.zeros(6))
    assert at_zero.dz == pytest.approx(0.0, abs=1e-15)
    assert at_zero.dz_low == pytest.approx(-at_zero.dz_high, rel=1e-8)

    rng = np.random.default_rng(2)
    big = stats.paired_ttest(rng.normal(0.5, 1.0, 4000), np.zeros(4000))
    half = sps.norm.ppf(0.975) * np.sqrt(1 / 4000 + big.dz**2 / (2 * 4000))
    assert (big.dz_low, big.dz_high) == pytest.approx((big.dz - half, big.dz + half), abs=2e-3)


def test_dz_interval_covers_the_true_value_at_the_nominal_rate():
    rng = np.random.default_rng(3)
    true_dz, n, repeats = 0.6, 10, 600
    covered = 0
    for _ in range(repeats):
        result = stats.paired_ttest(rng.normal(true_dz, 1.0, n), np.zeros(n))
        covered += result.dz_low <= true_dz <= result.dz_high
    # Binomial SD of the coverage is about 0.009 at 600 repeats.
    assert 0.92 <= covered / repeats <= 0.98


def test_constant_differences_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stats.paired_ttest([0.7, 0.8, 0.9], [0.6, 0.7, 0.8])
    assert result.mean_diff == pytest.approx(0.1)
    assert np.isnan([result.t, result.p, result.dz, result.dz_low, result.ci_low]).all()


@pytest.mark.parametrize("a, b, message", [
    ([1.0, 2.0], [1.0], "equal length"),
    ([1.0], [2.0], "at least 2"),
    ([1.0, np.nan], [1.0, 2.0], "NaN"),
])
def test_paired_ttest_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        stats.paired_ttest(a, b)


# --- corrected resampled t-test --------------------------------------------


def test_corrected_resampled_ttest_matches_the_formula_and_is_less_extreme():
    diffs = np.array([0.02, 0.035, -0.01, 0.04, 0.012, 0.025, 0.0, 0.03, 0.018, 0.01])
    n_train, n_test = 36, 4  # 10-fold CV over 40 trials
    result = stats.corrected_resampled_ttest(diffs, n_train, n_test)

    J = diffs.size
    se = np.sqrt((1 / J + n_test / n_train) * diffs.var(ddof=1))
    t = diffs.mean() / se
    assert result.t == pytest.approx(t, rel=1e-12)
    assert result.p == pytest.approx(2 * sps.t.sf(abs(t), J - 1), rel=1e-12)
    half = sps.t.ppf(0.975, J - 1) * se
    assert (result.ci_low, result.ci_high) == pytest.approx((diffs.mean() - half, diffs.mean() + half))
    assert result.variance_factor == pytest.approx(1 / J + 1 / 9)

    naive = sps.ttest_1samp(diffs, 0.0)
    assert result.naive_t == pytest.approx(naive.statistic, rel=1e-12)
    assert result.naive_p == pytest.approx(naive.pvalue, rel=1e-12)
    assert abs(result.t) < abs(result.naive_t) and result.p > result.naive_p


def test_corrected_resampled_ttest_errors():
    with pytest.raises(ValueError, match="at least 2"):
        stats.corrected_resampled_ttest([0.1], 9, 1)
    with pytest.raises(ValueError, match="positive"):
        stats.corrected_resampled_ttest([0.1, 0.2], 0, 1)


# --- Holm ------------------------------------------------------------------


def test_holm_matches_hand_computation():
    # Sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max(0.06, 0.04).
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(stats.holm([0.5, 0.6]), [1.0, 1.0])


def test_holm_leaves_nan_out_of_the_family():
    adjusted = stats.holm([0.01, np.nan, 0.04])
    np.testing.assert_allclose(adjusted, [0.02, np.nan, 0.04])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        stats.holm([0.2, 1.2])


# --- compare_methods -------------------------------------------------------


def test_compare_methods_recovers_a_planted_difference():
    rng = np.random.default_rng(4)
    table = results_table(rng, {"V3": 0.05, "DeepConvNet": 0.0, "HintonKD": 0.05})
    result = stats.compare_methods(table, reference="V3")

    assert list(result.columns) == [
        "method", "n_pairs", "mean_diff", "ci_low", "ci_high", "t", "df", "p",
        "p_holm", "dz", "dz_low", "dz_high", "significant",
    ]
    rows = result.set_index("method")
    assert set(rows.index) == {"DeepConvNet", "HintonKD"}
    assert (rows["n_pairs"] == 12).all()  # folds pooled within subject
    assert rows.loc["DeepConvNet", "mean_diff"] == pytest.approx(0.05, abs=0.015)
    assert rows.loc["DeepConvNet", "ci_low"] < 0.05 < rows.loc["DeepConvNet", "ci_high"]
    assert rows.loc["DeepConvNet", "significant"]
    assert not rows.loc["HintonKD", "significant"]
    np.testing.assert_allclose(result["p_holm"], stats.holm(result["p"]))


def test_compare_methods_pairs_per_subject_means():
    rng = np.random.default_rng(5)
    table = results_table(rng, {"V3": 0.03, "CGAN": 0.0}, n_subjects=6)
    means = table.groupby(["subject", "method"])["accuracy"].mean().unstack()
    expected = stats.paired_ttest(means["V3"], means["CGAN"])
    row = stats.compare_methods(table, reference="V3").iloc[0]
    assert row["t"] == pytest.approx(expected.t)
    assert row["dz_low"] == pytest.approx(expected.dz_low)
    by_fold = stats.compare_methods(table, reference="V3", pair_by=["subject", "fold"])
    assert by_fold.iloc[0]["n_pairs"] == 6 * 4


def test_compare_methods_false_positive_rate_under_the_null(monkeypatch):
    # statsmodels' Holm branch runs a full gc.collect(), about 0.1 s a call;
    # skipping it for this test keeps the simulation fast and changes no number.
    monkeypatch.setattr(gc, "collect", lambda generation=2: 0)
    rng = np.random.default_rng(6)
    repeats = 300
    rejections = sum(
        bool(stats.compare_methods(
            results_table(rng, {"V3": 0.0, "EmotionKD": 0.0}, n_subjects=8, n_folds=2), reference="V3",
        ).loc[0, "significant"])
        for _ in range(repeats)
    )
    # Nominal 5 %; binomial SD at 300 repeats is about 1.3 %.
    assert 0.01 <= rejections / repeats <= 0.10


def test_compare_methods_errors_are_clear():
    rng = np.random.default_rng(7)
    table = results_table(rng, {"V3": 0.0, "DeepConvNet": 0.0}, n_subjects=4, n_folds=2)
    with pytest.raises(ValueError, match="'seed'"):
        stats.compare_methods(table, reference="V3", pair_by=("subject", "seed"))
    with pytest.raises(ValueError, match="'V9'"):
        stats.compare_methods(table, reference="V9")
    with pytest.raises(ValueError, match="besides the reference"):
        stats.compare_methods(table[table["method"] == "V3"], reference="V3")
    missing = table[~((table["subject"] == "s02") & (table["method"] == "DeepConvNet"))]
    with pytest.raises(ValueError, match="unmatched pairs.*s02"):
        stats.compare_methods(missing, reference="V3")


# --- mixed model -----------------------------------------------------------


def test_mixed_model_recovers_a_planted_fixed_effect_quietly():
    rng = np.random.default_rng(8)
    table = results_table(rng, {"V3": 0.06, "DeepConvNet": 0.0, "HintonKD": 0.03}, n_subjects=16)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = stats.mixed_model(table, reference="V3")
    assert escaped == []
    assert result.converged and result.warnings == ()
    rows = result.contrasts.set_index("method")
    for method, true_diff in (("DeepConvNet", 0.06), ("HintonKD", 0.03)):
        assert rows.loc[method, "mean_diff"] == pytest.approx(true_diff, abs=0.012)
        assert rows.loc[method, "ci_low"] < true_diff < rows.loc[method, "ci_high"]
    assert rows.loc["DeepConvNet", "p"] < 1e-6
    assert result.reference_mean == pytest.approx(0.66, abs=0.04)
    assert result.residual_variance == pytest.approx(0.03**2, rel=0.3)
    assert result.n_groups == 16 and result.n_obs == len(table)


def test_mixed_model_reports_a_boundary_fit_instead_of_printing_warnings():
    rng = np.random.default_rng(9)
    table = results_table(rng, {"V3": 0.0, "DeepConvNet": 0.0}, n_subjects=10, subject_sd=0.0)
    with warnings.catch_warnings(record=True) as escaped:
        warnings.simplefilter("always")
        result = stats.mixed_model(table, reference="V3")
    assert escaped == []
    # The zero subject variance is reported, not printed.
    assert any("boundary" in message for message in result.warnings)
    assert result.group_variance < 1e-4
    assert abs(result.contrasts.loc[0, "mean_diff"]) < 0.03


def test_mixed_model_errors_are_clear():
    rng = np.random.default_rng(10)
    table = results_table(rng, {"V3": 0.0, "DeepConvNet": 0.0}, n_subjects=3, n_folds=2)
    with pytest.raises(ValueError, match="'participant'"):
        stats.mixed_model(table, reference="V3", group_col="participant")
    with pytest.raises(ValueError, match="'V9'"):
        stats.mixed_model(table, reference="V9")
    with pytest.raises(ValueError, match="at least 2 levels"):
        stats.mixed_model(table[table["subject"] == "s00"], reference="V3")


# --- pairing units ---------------------------------------------------------


def test_unit_means_averages_runs_within_each_unit():
    rng = np.random.default_rng(11)
    table = results_table(rng, {"V3": 0.02, "CGAN": 0.0}, n_subjects=3, n_folds=4)
    units = stats.unit_means(table)
    assert units.index.name == "subject" and sorted(units.columns) == ["CGAN", "V3"]
    expected = table[(table["subject"] == "s01") & (table["method"] == "V3")]["accuracy"].mean()
    assert units.loc["s01", "V3"] == pytest.approx(expected)
    by_fold = stats.unit_means(table, pair_by=["subject", "fold"])
    assert len(by_fold) == 3 * 4
    with pytest.raises(ValueError, match="'participant'"):
        stats.unit_means(table, pair_by="participant")
    with pytest.raises(ValueError, match="NaN"):
        stats.unit_means(table.assign(accuracy=np.nan))


# ---------------------------------------------------------------------------
# trial_bootstrap_difference
# ---------------------------------------------------------------------------


def clustered_test_set(rng: np.random.Generator, n_trials: int = 40, per_trial: int = 5):
    """Labels and trial ids of a test set whose segments come in trials of one label."""
    trial_labels = np.arange(n_trials) % 2
    labels = np.repeat(trial_labels, per_trial)
    trials = np.repeat(np.arange(n_trials), per_trial)
    return labels, trials


def test_trial_bootstrap_identical_models_give_zero():
    labels, trials = clustered_test_set(np.random.default_rng(0))
    p = np.random.default_rng(1).uniform(size=len(labels))
    result = stats.trial_bootstrap_difference(labels, p, p, trials, metric="auc", n_resamples=200)
    assert result.difference == 0.0 and result.low == pytest.approx(0.0) and result.high == pytest.approx(0.0)
    assert result.n_trials == 40 and result.first == result.second


def test_trial_bootstrap_separates_a_good_model_from_a_coin():
    rng = np.random.default_rng(2)
    labels, trials = clustered_test_set(rng)
    good = np.clip(0.5 + 0.3 * (2 * labels - 1) + rng.normal(0, 0.2, len(labels)), 0, 1)
    coin = rng.uniform(size=len(labels))
    for metric in ("balanced_accuracy", "auc"):
        result = stats.trial_bootstrap_difference(labels, good, coin, trials, metric=metric, n_resamples=200)
        assert result.low > 0.2, (metric, result)
        reverse = stats.trial_bootstrap_difference(labels, coin, good, trials, metric=metric, n_resamples=200)
        assert reverse.high < -0.2 and reverse.difference == pytest.approx(-result.difference)


def test_trial_bootstrap_interval_is_wider_than_a_segment_bootstrap():
    """Trial-level noise shared by a trial's segments widens the interval, as it should."""
    rng = np.random.default_rng(3)
    labels, trials = clustered_test_set(rng)
    shared = np.repeat(rng.normal(0, 0.6, 40), 5)  # one offset per trial, both models see it differently
    first = 1 / (1 + np.exp(-((2 * labels - 1) * 0.5 + shared + rng.normal(0, 0.5, len(labels)))))
    second = 1 / (1 + np.exp(-((2 * labels - 1) * 0.5 + rng.normal(0, 0.5, len(labels)))))
    by_trial = stats.trial_bootstrap_difference(labels, first, second, trials, metric="auc", n_resamples=300)
    by_segment = stats.trial_bootstrap_difference(labels, first, second, np.arange(len(labels)),
                                                  metric="auc", n_resamples=300)
    assert by_trial.high - by_trial.low > 1.5 * (by_segment.high - by_segment.low)
    assert by_trial.difference == by_segment.difference


@pytest.mark.parametrize("change, message", [
    (dict(metric="accuracy"), "metric"),
    (dict(first=np.zeros(3)), "one entry per segment"),
    (dict(labels=np.zeros(30, dtype=int)), "both classes"),
    (dict(trials=np.zeros(30)), "two trials"),
    (dict(n_resamples=0), "n_resamples"),
])
def test_trial_bootstrap_rejects_bad_input(change, message):
    arguments = dict(labels=np.arange(30) % 2, first=np.linspace(0, 1, 30), second=np.full(30, 0.5),
                     trials=np.arange(30) // 3)
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        stats.trial_bootstrap_difference(**arguments)


@pytest.mark.parametrize("metric, reference", [
    ("balanced_accuracy", lambda y, p: balanced_accuracy_score(y, p > 0.5)),
    ("auc", roc_auc_score),
])
def test_trial_bootstrap_scores_are_scikit_learns(metric, reference):
    """The per-trial bookkeeping gives scikit-learn's numbers, ties and mixed-label trials included."""
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 120)
    trials = rng.integers(0, 17, 120)
    first = np.round(rng.uniform(size=120), 1)  # rounding makes ties
    second = rng.uniform(size=120)
    result = stats.trial_bootstrap_difference(labels, first, second, trials, metric=metric, n_resamples=50)
    assert result.first == pytest.approx(reference(labels, first), abs=1e-12)
    assert result.second == pytest.approx(reference(labels, second), abs=1e-12)
    assert result.low <= result.difference <= result.high
