"""The data set layout: DEAP's values, lookups by name, and validation."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest

from mkdbook.data import DEAP, Layout, SegmentConfig, SegmentSet

from conftest import make_segments


def small_layout(**changes) -> Layout:
    arguments = dict(
        name="tiny", channels=("C3", "C4", "hEOG"),
        modality_channels={"eeg": ("C3", "C4"), "eog": ("hEOG",)},
        channel_types=("eeg", "eeg", "eog"), sfreq=100.0, n_trials=2, n_samples=1000,
        baseline_seconds=2.0, rating_scales=("valence",), rating_range=(0.0, 1.0),
    )
    return Layout(**{**arguments, **changes})


def test_deap_layout_holds_deaps_values():
    assert len(DEAP.channels) == 40 and DEAP.channels[:2] == ("Fp1", "AF3")
    assert DEAP.picks("eeg") == list(range(32))
    assert DEAP.picks("eog") == [32, 33]
    assert DEAP.channel_counts() == {"eeg": 32, "eog": 2, "emg": 2, "gsr": 1, "resp": 1, "ppg": 1, "temp": 1}
    assert DEAP.channel_type("Plet") == "bio" and DEAP.channel_type("Temp") == "temperature"
    assert (DEAP.sfreq, DEAP.n_trials, DEAP.n_samples, DEAP.baseline_seconds) == (128.0, 40, 8064, 3.0)
    assert DEAP.rating_column("arousal") == 1 and DEAP.rating_range == (1.0, 9.0)
    assert DEAP.channel_names(["eog", "eeg"])[-2:] == ["hEOG", "vEOG"]


def test_layout_is_an_immutable_hashable_value():
    layout = small_layout()
    assert layout.modality_channels == (("eeg", ("C3", "C4")), ("eog", ("hEOG",)))
    assert layout == small_layout() and hash(layout) == hash(small_layout())
    with pytest.raises(TypeError):
        layout.modalities["eeg"] = ("C3",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        layout.sfreq = 256.0
    assert pickle.loads(pickle.dumps(layout)) == layout


@pytest.mark.parametrize("lookup, argument", [
    (DEAP.picks, "ecg"), (DEAP.n_channels, "ecg"), (DEAP.rating_column, "happiness"),
    (DEAP.channel_type, "Cz2"),
])
def test_unknown_names_are_refused_with_what_is_allowed(lookup, argument):
    with pytest.raises(ValueError, match=f"of DEAP must be one of .*, got '{argument}'"):
        lookup(argument)


@pytest.mark.parametrize("changes, message", [
    ({"channels": ("C3", "C3", "hEOG")}, "more than once"),
    ({"modality_channels": {"eeg": ("C3", "Cz")}}, r"modality 'eeg' names channels \['Cz'\]"),
    ({"modality_channels": {"eeg": ("C3",), "eog": ("C3",)}}, "more than once"),
    ({"channel_types": ("eeg",)}, "one type per channel"),
    ({"sfreq": 0.0}, "sfreq must be > 0"),
    ({"n_trials": 0}, "n_trials must be a positive integer"),
    ({"n_samples": 10.5}, "n_samples must be a positive integer"),
    ({"baseline_seconds": 10.0}, "baseline_seconds"),
    ({"rating_range": (9.0, 1.0)}, "low < high"),
])
def test_layout_is_validated(changes, message):
    with pytest.raises(ValueError, match=message):
        small_layout(**changes)


def test_segments_follow_their_layout():
    layout = small_layout()
    config = SegmentConfig(segment_seconds=4.0, baseline_seconds=2.0)
    assert config.segment_samples(layout) == 400 and config.segments_per_trial(layout) == 2
    data = make_segments(1, 1, 3, 400, ratings=np.zeros((1, 1)), signals="zeros", layout=layout, config=config)
    assert data.sfreq == 100.0 and data.channel_names == ("C3", "C4", "hEOG")
    assert data.batch(np.array([0, 2]), ("eog",))["eog"].shape == (2, 1, 400)
    assert data.model_inputs() == {"n_channels": {"eeg": 2, "eog": 1}, "n_times": 400, "sfreq": 100.0}
    with pytest.raises(ValueError, match=r"shape \(n_segments, 40, n_times\)"):
        SegmentSet(np.zeros((3, 3, 400), np.float32), np.ones(3, int), np.zeros(3, int),
                   np.arange(3), np.zeros((3, 1), np.float32), config, "test")
