"""The simulated cohort's information levels, its known truth on disk, and the levels module itself.

The levels are fixed for the 12-subject default cohort (``TARGET_LEVELS``).
Simulating and scoring 12 subjects takes minutes, so the test checks a cohort
of three subjects with five folds. The muscle signal's gain differs widely
between people, so the EOG's AUC differs between subjects (SD 0.07-0.09 per
target, measured on the 12-subject cohort); the mean of three has a standard
error near 0.05, and the EOG's range is widened by 0.10, about two standard
errors, on each side (subjects 1-3 give about 0.71 on valence, where the
12-subject cohort gives 0.64). The EEG's margin over the EOG on valence is
lowered by the same 0.10 (on subjects 1-3 the EOG's valence AUC, 0.72, is
above the EEG's, 0.69; on all 12 the EEG leads by 0.12), and EEG+EOG must not
fall more than 0.02 below the better single modality (a 0.01 gain cannot be
resolved on three subjects). Chapter 1 shows the levels of
the full cohort.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from mkdbook.analysis.information_levels import TARGET_LEVELS, check_levels, information_levels
from mkdbook.data import SegmentConfig, load_segments
from mkdbook.data.simulate import (
    SimulationConfig,
    label_probability,
    read_latent,
    segment_latent,
    simulate_cohort,
    simulate_latents,
    simulate_subject,
)

N_SUBJECTS = 3
SLACK = 0.10


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("levels")
    simulate_cohort(folder, n_subjects=N_SUBJECTS, progress=False)
    return folder


@pytest.fixture(scope="module")
def levels(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    data = load_segments(cohort, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return information_levels(data, n_folds=5, n_boot=50)


def test_levels_on_a_few_subjects(levels: pd.DataFrame) -> None:
    table = levels.set_index(["modality", "target"])["auc"]
    low, high = TARGET_LEVELS.eog_auc
    for target in ("valence", "arousal"):
        assert low - SLACK <= table["eog", target] <= high + SLACK, (target, table["eog", target])
        assert table["eeg+eog", target] >= max(table["eeg", target], table["eog", target]) - 0.02
    assert table["eeg", "valence"] - table["eog", "valence"] >= TARGET_LEVELS.eeg_over_eog_valence - SLACK
    assert (levels["ci_low"] <= levels["auc"]).all() and (levels["auc"] <= levels["ci_high"]).all()


def test_check_levels_names_what_is_missed() -> None:
    def table(eog: float, eeg: float, both: float) -> pd.DataFrame:
        return pd.DataFrame([{"modality": m, "band": "all", "target": t, "auc": auc}
                             for m, auc in (("eog", eog), ("eeg", eeg), ("eeg+eog", both))
                             for t in ("valence", "arousal")])

    assert check_levels(table(0.60, 0.70, 0.72)) == []
    missed = check_levels(table(0.66, 0.67, 0.67))
    assert len(missed) == 5 and "EOG AUC on valence" in missed[0]
    assert check_levels(table(0.66, 0.70, 0.72), slack=0.03) == []


def test_latent_state_on_disk(cohort: Path) -> None:
    latent = read_latent(cohort, 1)
    truth = simulate_latents(1)
    assert latent.trial.shape == (40, 2) and latent.per_second.shape == (40, 60, 2)
    assert np.array_equal(latent.trial[:, 0], truth.rated_valence)
    segments = segment_latent(latent, SegmentConfig())
    assert segments.shape == (40, 15, 2)
    # 4-s segments start on whole seconds: a segment's state is close to the mean of its four seconds.
    four = latent.per_second.reshape(40, 15, 4, 2).mean(axis=2)
    assert np.abs(segments - four).max() < 0.1
    # The state moves within a trial, around the trial's state.
    assert segments.std(axis=1).mean() > 0.1
    assert np.corrcoef(segments.mean(axis=1)[:, 0], latent.trial[:, 0])[0, 1] > 0.8
    # The rating model: labels agree with the oracle probability on average.
    probability = label_probability(latent, latent.trial)
    high = truth.labels[:, :2] > 5
    assert probability[high].mean() > 0.7 and probability[~high].mean() < 0.3
    with pytest.raises(FileNotFoundError, match="no latent state"):
        read_latent(cohort, 2 + N_SUBJECTS)


def _emg_band_power(data: np.ndarray) -> float:
    freqs, power = signal.welch(data[:, 32:34, 3 * 128:], fs=128, nperseg=256, axis=-1)
    return float(power[..., (freqs >= 45) & (freqs <= 60)].mean())


def test_crosstalk_scales_the_periocular_emg() -> None:
    without = simulate_subject(1, variant="no-emg")["data"]
    default = simulate_subject(1)["data"]
    zero = simulate_subject(1, config=SimulationConfig(emg_crosstalk=0.0))["data"]
    assert np.array_equal(without, zero)
    # Above the EEG's band the muscle adds to the amplifier noise floor (3 uV white noise).
    assert _emg_band_power(default) > 1.2 * _emg_band_power(without)
    assert np.array_equal(default[:, :32], without[:, :32])
    with pytest.raises(ValueError, match="emg_crosstalk must be >= 0"):
        SimulationConfig(emg_crosstalk=-0.5)


def test_film_locked_blinks_are_shared_between_subjects() -> None:
    # vEOG of two subjects watching the same video correlates more than across different videos.
    high_pass = signal.butter(2, 0.5, btype="highpass", fs=128, output="sos")   # drift is personal
    one, two = (signal.sosfiltfilt(high_pass, simulate_subject(s, variant="no-emg")["data"][:, 33, 3 * 128:])
                for s in (1, 2))
    same = np.mean([np.corrcoef(one[t], two[t])[0, 1] for t in range(40)])
    other = np.mean([np.corrcoef(one[t], two[(t + 1) % 40])[0, 1] for t in range(40)])
    assert same > other + 0.05
