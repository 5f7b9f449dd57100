"""The pocket networks and dose-response sweeps of chapter 7, on data whose answer is known."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from sklearn.metrics import roc_auc_score

from mkdbook.data.simulate import SimulationConfig, simulate_latents
from mkdbook.sweeps import band_power_networks, dose_response
from mkdbook.sweeps.band_power_networks import BandPowerNetConfig, BandPowerData, run_folds, train_band_power_nets, trial_folds

SMALL = BandPowerNetConfig(steps=60, n_folds=4)
FAST_SIMULATION = SimulationConfig()


def synthetic(eog_signal: float, *, n_subjects: int = 6, label_noise: float = 0.5, seed: int = 0,
              per_trial: int = 5) -> BandPowerData:
    """Labels from a latent state; EEG carries it clearly, EOG with weight ``eog_signal``."""
    rng = np.random.default_rng(seed)
    n = n_subjects * 40 * per_trial
    latent = np.repeat(rng.normal(size=n_subjects * 40), per_trial)
    labels = (latent + label_noise * np.repeat(rng.normal(size=n_subjects * 40), per_trial) > 0).astype(np.int64)
    from scipy.stats import norm
    eeg = latent[:, None] * np.ones(6) + 0.7 * rng.normal(size=(n, 6))
    eog = eog_signal * latent[:, None] * np.ones(3) + rng.normal(size=(n, 3))
    return BandPowerData(eeg=eeg, eog=eog, subject=np.repeat(np.arange(1, n_subjects + 1), 40 * per_trial),
                      trial=np.tile(np.repeat(np.arange(40), per_trial), n_subjects), labels=labels,
                      oracle=norm.cdf(latent / label_noise), target="valence", description="synthetic")


def test_copies_trained_side_by_side_equal_copies_trained_one_by_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 50, 4)).astype(np.float32)
    y = rng.integers(0, 2, 50)
    rows = [np.arange(40), np.arange(10, 50), np.arange(0, 50, 2)]
    teachers = [None, rng.normal(size=(40, 2)), rng.normal(size=(25, 2))]
    config = BandPowerNetConfig(steps=15)
    together = train_band_power_nets(x, y, rows, config, seed=3, teacher_logits=teachers)
    for k in range(3):
        alone = train_band_power_nets(x[k:k + 1], y, [rows[k]], config, seed=3, teacher_logits=[teachers[k]])
        for name, value in alone.named_parameters():
            torch.testing.assert_close(getattr(together, name)[k], value[0], rtol=1e-4, atol=1e-5)


def test_a_student_whose_input_lacks_the_target_stays_at_chance_whatever_the_teacher():
    data = synthetic(eog_signal=0.0)
    out = run_folds(data, seed=0, config=SMALL)
    scores = dose_response.subject_scores(data, out).groupby("arm")["auc"].mean()
    assert scores["teacher"] > 0.75  # the teacher's input carries the target
    for arm in ("student", "distilled", "oracle"):
        assert abs(scores[arm] - 0.5) < 0.06, (arm, scores[arm])


def test_the_oracle_teaches_more_than_a_shuffled_teacher_when_labels_are_few_and_noisy():
    data = synthetic(eog_signal=0.5, label_noise=1.0)
    scores = dose_response.sweep([dose_response.Setting(4, data, n_train=4)], seeds=(0, 1), config=SMALL)
    table = dose_response.gains(scores).set_index("arm")
    assert table.loc["oracle", "gain"] > table.loc["shuffled", "gain"]
    assert table.loc["oracle", "ci_low"] > 0
    assert scores.attrs["networks"] == 2 * 5 * SMALL.n_folds


def test_a_sweep_on_two_processes_gives_the_serial_scores():
    settings = [dose_response.Setting(n, synthetic(eog_signal=0.3, n_subjects=3), n_train=n) for n in (4, 8)]
    serial = dose_response.sweep(settings, seeds=(0, 1), config=SMALL)
    side_by_side = dose_response.sweep(settings, seeds=(0, 1), config=SMALL, workers=2)
    pd.testing.assert_frame_equal(side_by_side, serial)
    assert side_by_side.attrs["networks"] == serial.attrs["networks"] == 4 * 5 * SMALL.n_folds
    assert side_by_side.attrs["cpu_seconds"] > 0  # the workers' processor time, not this process's
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        dose_response.sweep(settings, seeds=(0,), config=SMALL, workers=0)


def test_runs_are_deterministic():
    data = synthetic(eog_signal=0.3, n_subjects=3)
    first, second = run_folds(data, 1, SMALL, n_train=6), run_folds(data, 1, SMALL, n_train=6)
    for arm in band_power_networks.ARMS:
        np.testing.assert_array_equal(first[arm], second[arm])


def test_folds_mix_the_quadrants_and_labelling_orders_are_nested():
    data = synthetic(eog_signal=0.0, n_subjects=2)
    folds = trial_folds(data, 5, seed=0)
    per_trial = folds[data.subject == 1][::5]
    for fold in range(5):
        quadrants = per_trial[per_trial[:, 0] == fold]
        assert len(quadrants) == 8
    assert sorted(per_trial[:, 1]) == list(range(40))
    other = replace(data, labels=1 - data.labels)
    np.testing.assert_array_equal(trial_folds(other, 5, seed=0), folds)  # labels do not move trials
    few = band_power_networks.training_rows(data, 0, 0, 5, n_train=4)
    more = band_power_networks.training_rows(data, 0, 0, 5, n_train=8)
    assert not (few & ~more).any() and len(np.unique(data.trial[few & (data.subject == 1)])) == 4
    assert not (few & (folds[:, 0] == 0)).any()


def test_the_oracle_of_a_simulated_cohort_knows_the_labels_and_the_folds_cover_every_trial():
    data = band_power_networks.band_power_cohort(1, target="valence", config=FAST_SIMULATION)
    n_bands = len(band_power_networks.SWEEP_BANDS)
    assert data.eeg.shape == (600, 32 * n_bands) and data.eog.shape == (600, 2 * n_bands)
    assert roc_auc_score(data.labels, data.oracle) > 0.8
    again = band_power_networks.with_ratings(data, 1, replace(FAST_SIMULATION, rating_noise_sd=3.0))
    np.testing.assert_array_equal(again.eog, data.eog)
    assert roc_auc_score(again.labels, again.oracle) < roc_auc_score(data.labels, data.oracle)


def test_workers_fill_the_feature_cache_with_the_same_features(tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "one"))
    serial = band_power_networks.band_power_cohort(2, target="valence", config=FAST_SIMULATION)
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "two"))
    parallel = band_power_networks.band_power_cohort(2, target="valence", config=FAST_SIMULATION, workers=2)
    for name in ("eeg", "eog", "subject", "trial", "labels", "oracle"):
        np.testing.assert_array_equal(getattr(parallel, name), getattr(serial, name))
    assert len(list((tmp_path / "two" / "pocket").glob("*/s0[12].npz"))) == 2


def test_rating_fields_change_the_ratings_and_no_draw_the_signals_use():
    # What with_ratings relies on: the ratings have a random stream of their own.
    base = SimulationConfig()
    for name in band_power_networks.RATING_FIELDS:
        other = replace(base, **{name: getattr(base, name) * 1.5 + 0.1})
        a, b = simulate_latents(2, config=base), simulate_latents(2, config=other)
        np.testing.assert_array_equal(a.signal_per_second, b.signal_per_second)
        assert a.traits.iaf_hz == b.traits.iaf_hz and a.traits.blink_rate_per_min == b.traits.blink_rate_per_min
        assert not np.array_equal(a.labels, b.labels), name


def test_bad_settings_name_the_argument():
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        BandPowerNetConfig(steps=0)
    with pytest.raises(ValueError, match="axis must be one of"):
        dose_response.settings_along("volume", [1.0], 2)


def test_unlabelled_segments_without_a_teacher_change_nothing():
    # The cross-entropy ignores UNLABELLED segments: a copy trained on labelled and
    # unlabelled rows without a teacher is the copy trained on the labelled rows alone.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 60, 4)).astype(np.float32)
    y = rng.integers(0, 2, 60)
    hidden = np.where(np.arange(60) < 20, y, band_power_networks.UNLABELLED)
    config = BandPowerNetConfig(steps=15)
    mixed = train_band_power_nets(x, hidden[None], [np.arange(60)], config, seed=2)
    labelled = train_band_power_nets(x, y, [np.arange(20)], config, seed=2)
    for name, value in labelled.named_parameters():
        torch.testing.assert_close(getattr(mixed, name), value)


def test_the_transfer_set_labels_reach_no_network():
    # Flip the labels of every trial that no fold rates: no probability changes.
    data = synthetic(eog_signal=0.5, n_subjects=3)
    rated = np.stack([band_power_networks.training_rows(data, f, 0, SMALL.n_folds, 4) for f in range(SMALL.n_folds)])
    never_rated = ~rated.any(axis=0)
    assert never_rated.mean() > 0.5
    flipped = replace(data, labels=np.where(never_rated, 1 - data.labels, data.labels))
    a = run_folds(data, 0, SMALL, n_train=4, transfer=True)
    b = run_folds(flipped, 0, SMALL, n_train=4, transfer=True)
    for arm in a:
        np.testing.assert_array_equal(a[arm], b[arm], err_msg=arm)
    # ... while without the transfer set the taught students never read those trials,
    # and with it they do: the oracle's students differ.
    c = run_folds(data, 0, SMALL, n_train=4)
    assert not np.array_equal(a["oracle"], c["oracle"])
    np.testing.assert_array_equal(a["fold"], c["fold"])


def test_a_transfer_set_needs_rated_trials():
    with pytest.raises(ValueError, match="transfer set needs n_train"):
        run_folds(synthetic(eog_signal=0.5, n_subjects=2), 0, SMALL, transfer=True)


def test_the_oracle_gain_is_worded_larger_with_few_labels_only_from_its_interval():
    data = synthetic(eog_signal=0.5, label_noise=1.0)
    scores = dose_response.sweep([dose_response.Setting(n, data, n_train=n) for n in (4, 16)], seeds=(0,),
                                 config=SMALL)
    table = dose_response.gains(scores, smallest_effect=0.02).set_index(["value", "arm"])
    assert table.loc[(4, "oracle"), "verdict"] == "higher"
    assert "verdict" not in dose_response.gains(scores).columns
    few_minus_many = dose_response.gain_difference(scores, 4, 16, "oracle", 0.02)
    assert few_minus_many.word == "higher"
    gap = table.loc[(4, "oracle"), "gain"] - table.loc[(16, "oracle"), "gain"]
    assert few_minus_many.difference == pytest.approx(gap)
    with pytest.raises(ValueError, match="arm must be one of"):
        dose_response.gain_difference(scores, 4, 16, "teacher", 0.02)
