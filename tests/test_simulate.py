"""Tests of the simulated DEAP cohort: file format, determinism, variants, spectra, safety.

Generating a subject takes about two seconds, so the few subjects these tests
need are generated once per session and shared (:func:`_generate`).
"""

from __future__ import annotations

import dataclasses
import json
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy import signal

from mkdbook.data import simulate
from mkdbook.data.layout import DEAP
from mkdbook.data.simulate import (
    SIMULATION_MANIFEST,
    PENDING_NAME,
    VARIANTS,
    SimulationConfig,
    load_manifest,
    read_latent,
    simulate_cohort,
    simulate_latents,
    simulate_subject,
)
from mkdbook.data.simulate import cohort as cohort_module
from mkdbook.data.simulate.streams import _subject_model
from mkdbook.data.simulate.subject import _simulate_signals

SFREQ = DEAP.sfreq
EEG_CHANNELS = DEAP.modalities["eeg"]
VIDEO = slice(int(3 * SFREQ), None)
EOG_AND_PERIPHERAL = slice(len(EEG_CHANNELS), len(DEAP.channels))


@lru_cache(maxsize=None)
def _generate(subject: int, variant: str = "default", seed: int = 0) -> dict[str, np.ndarray]:
    return simulate_subject(subject, variant=variant, seed=seed)


def _signals_with_flipped_valence(subject: int, variant: str) -> np.ndarray:
    # Private hooks on purpose: the only way to ask "what if this subject had
    # felt the opposite valence, all else equal?" is to rerun the model with
    # the latent valence negated and every random draw unchanged.
    model = _subject_model(subject, variant, 0, None)
    per_second = model.latents.signal_per_second * np.array([-1.0, 1.0])
    flipped = dataclasses.replace(model.latents, signal_valence=-model.latents.signal_valence,
                                  signal_per_second=per_second)
    return _simulate_signals(dataclasses.replace(model, latents=flipped))


def _tiny_signals(model) -> np.ndarray:
    # Stands in for the real signals where only the file handling is tested.
    return np.zeros((DEAP.n_trials, len(DEAP.channels), 1))


# ---------------------------------------------------------------- format


def test_file_has_deaps_exact_format(cohort: Path) -> None:
    with (cohort / "s01.dat").open("rb") as stream:
        content = pickle.load(stream, encoding="latin1")
    assert type(content) is dict and set(content) == {"data", "labels"}
    data, labels = content["data"], content["labels"]
    assert data.shape == (40, 40, 8064) and data.dtype == np.float64
    assert labels.shape == (40, 4) and labels.dtype == np.float64
    assert np.isfinite(data).all()
    assert labels.min() >= 1.0 and labels.max() <= 9.0
    assert sorted(p.name for p in cohort.iterdir()) == ["latent", SIMULATION_MANIFEST, "s01.dat"]


def test_file_is_a_protocol_2_pickle(cohort: Path) -> None:
    header = (cohort / "s01.dat").read_bytes()[:2]
    assert header == b"\x80\x02"


def test_project_reader_accepts_the_file(cohort: Path) -> None:
    from mkdbook.data.readers.deap import read_subject_file

    recording = read_subject_file(cohort / "s01.dat")
    assert recording.subject == 1 and recording.data.shape == (40, 40, 8064)


def test_manifest_says_what_was_simulated(cohort: Path) -> None:
    manifest = load_manifest(cohort)
    assert manifest["variant"] == "default" and manifest["seed"] == 0 and manifest["n_subjects"] == 1
    assert manifest["config"] == json.loads(json.dumps(dataclasses.asdict(SimulationConfig())))
    assert manifest["package_version"]
    latents = simulate_latents(1)
    assert np.allclose(manifest["subjects"]["s01"]["signal_valence"], latents.signal_valence)
    assert len(manifest["subjects"]["s01"]["rated_arousal"]) == DEAP.n_trials


def test_load_manifest_is_none_for_other_folders(tmp_path: Path) -> None:
    assert load_manifest(tmp_path) is None


def test_ratings_are_plausible_and_related() -> None:
    labels = np.concatenate([simulate_latents(s).labels for s in range(1, 33)])
    valence, arousal, dominance, liking = labels.T
    assert 4.0 < valence.mean() < 6.0 and 1.5 < valence.std() < 2.6
    assert np.corrcoef(valence, liking)[0, 1] > 0.5
    assert np.corrcoef(valence, dominance)[0, 1] > 0.2
    assert abs(np.corrcoef(valence, arousal)[0, 1]) < 0.2


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes(cohort: Path) -> None:
    with (cohort / "s01.dat").open("rb") as stream:
        written = pickle.load(stream, encoding="latin1")
    again = _generate(1)
    assert written["data"].tobytes() == again["data"].tobytes()
    assert written["labels"].tobytes() == again["labels"].tobytes()


def test_workers_write_the_same_cohort(cohort: Path, tmp_path: Path) -> None:
    # Two subjects on two worker processes: each file as one process writes it, in subject order.
    paths = simulate_cohort(tmp_path, n_subjects=2, progress=False, workers=2)
    assert [p.name for p in paths] == ["s01.dat", "s02.dat"]
    assert (tmp_path / "s01.dat").read_bytes() == (cohort / "s01.dat").read_bytes()
    with (tmp_path / "s02.dat").open("rb") as stream:
        assert pickle.load(stream, encoding="latin1")["data"].tobytes() == _generate(2)["data"].tobytes()
    assert load_manifest(tmp_path)["subjects"]["s01"] == load_manifest(cohort)["subjects"]["s01"]
    for name in ("trial", "per_second"):
        assert np.array_equal(getattr(read_latent(tmp_path, 1), name), getattr(read_latent(cohort, 1), name))
    with pytest.raises(ValueError, match=r"workers must be an integer >= 1"):
        simulate_cohort(tmp_path / "other", n_subjects=1, progress=False, workers=0)


def test_different_seed_gives_different_data() -> None:
    assert not np.array_equal(_generate(1, seed=1)["data"], _generate(1)["data"])
    assert not np.array_equal(simulate_latents(1, seed=1).labels, simulate_latents(1).labels)


def test_latents_match_the_subjects_labels() -> None:
    assert np.array_equal(simulate_latents(1).labels, _generate(1)["labels"])


# ---------------------------------------------------------------- variants


def test_null_ratings_are_independent_of_the_signal_state() -> None:
    null = [simulate_latents(s, variant="null") for s in range(1, 33)]
    default = [simulate_latents(s) for s in range(1, 33)]

    def pooled_r(latents, column, state):
        ratings = np.concatenate([lat.labels[:, column] for lat in latents])
        driving = np.concatenate([getattr(lat, state) for lat in latents])
        return np.corrcoef(ratings, driving)[0, 1]

    # 1280 trials: the SE of r under independence is about 0.03.
    assert abs(pooled_r(null, 0, "signal_valence")) < 0.1
    assert abs(pooled_r(null, 1, "signal_arousal")) < 0.1
    assert pooled_r(default, 0, "signal_valence") > 0.8
    assert pooled_r(default, 1, "signal_arousal") > 0.8


def test_null_keeps_the_signals_and_changes_only_the_ratings() -> None:
    null, default = _generate(1, "null"), _generate(1)
    assert np.array_equal(null["data"], default["data"])
    assert not np.allclose(null["labels"], default["labels"])


def test_eeg_only_valence_eog_and_peripherals_do_not_depend_on_valence() -> None:
    original = _generate(1, "eeg-only-valence")["data"]
    flipped = _signals_with_flipped_valence(1, "eeg-only-valence")
    assert np.array_equal(flipped[:, EOG_AND_PERIPHERAL], original[:, EOG_AND_PERIPHERAL])
    assert not np.allclose(flipped[:, : len(EEG_CHANNELS)], original[:, : len(EEG_CHANNELS)])


def test_default_eog_does_depend_on_valence() -> None:
    # The test above would pass vacuously if valence never reached the EOG. The two
    # variants share every random draw, so their EOG differs only through valence.
    default, eeg_only = _generate(1)["data"], _generate(1, "eeg-only-valence")["data"]
    assert not np.allclose(default[:, 32:34], eeg_only[:, 32:34])


def _log_band_power(x: np.ndarray, low: float, high: float) -> np.ndarray:
    freqs, power = signal.welch(x[..., VIDEO], fs=SFREQ, nperseg=256, axis=-1)
    return np.log(power[..., (freqs >= low) & (freqs < high)].mean(axis=-1))


def _frontal_alpha_asymmetry(data: np.ndarray) -> np.ndarray:
    alpha = _log_band_power(data[:, : len(EEG_CHANNELS)], 8, 13)
    pairs = [(EEG_CHANNELS.index(r), EEG_CHANNELS.index(l)) for r, l in simulate.ASYMMETRY_PAIRS]
    return np.mean([alpha[:, r] - alpha[:, l] for r, l in pairs], axis=0)


def _eog_trial_features(data: np.ndarray) -> dict[str, np.ndarray]:
    heog, veog = data[:, 32, VIDEO], data[:, 33, VIDEO]
    band = signal.butter(2, [1, 8], btype="bandpass", fs=SFREQ, output="sos")
    blinks = [len(signal.find_peaks(v, height=60, distance=int(0.2 * SFREQ))[0])
              for v in signal.sosfiltfilt(band, veog, axis=-1)]
    saccades = (np.abs(np.diff(heog, axis=-1)) > 15).sum(axis=-1)
    features = {"blink count": np.array(blinks, float), "saccade samples": saccades.astype(float)}
    for name, (low, high) in {"theta": (4, 8), "alpha": (8, 13), "beta": (13, 30)}.items():
        features[f"vEOG {name}"] = _log_band_power(data[:, 33], low, high)
        features[f"hEOG {name}"] = _log_band_power(data[:, 32], low, high)
    return features


def _within_subject_r(per_subject: list[tuple[np.ndarray, np.ndarray]]) -> float:
    # Centre within subject, then pool: subjects differ in level, not in the relation.
    x = np.concatenate([a - a.mean() for a, _ in per_subject])
    y = np.concatenate([b - b.mean() for _, b in per_subject])
    return float(np.corrcoef(x, y)[0, 1])


def test_eeg_only_valence_statistics() -> None:
    subjects = (1, 2)
    data = {s: _generate(s, "eeg-only-valence")["data"] for s in subjects}
    valence = {s: simulate_latents(s, variant="eeg-only-valence").signal_valence for s in subjects}
    asymmetry_r = _within_subject_r([(_frontal_alpha_asymmetry(data[s]), valence[s]) for s in subjects])
    assert asymmetry_r > 0.3
    features = {s: _eog_trial_features(data[s]) for s in subjects}
    for name in features[subjects[0]]:
        r = _within_subject_r([(features[s][name], valence[s]) for s in subjects])
        # 80 trials: the SE of r under independence is about 0.11.
        assert abs(r) < 0.3, (name, r)


# ---------------------------------------------------------------- spectra


def test_eeg_spectrum_is_one_over_f_with_an_alpha_peak() -> None:
    data = _generate(1)["data"]
    posterior = [EEG_CHANNELS.index(name) for name in ("O1", "Oz", "O2", "PO3", "PO4", "Pz")]
    freqs, power = signal.welch(data[:, posterior, VIDEO], fs=SFREQ, nperseg=512, axis=-1)
    spectrum = power.mean(axis=(0, 1))
    aperiodic = ((freqs >= 5) & (freqs <= 6.5)) | ((freqs >= 24) & (freqs <= 28)) | ((freqs >= 41) & (freqs <= 44))
    slope, intercept = np.polyfit(np.log10(freqs[aperiodic]), np.log10(spectrum[aperiodic]), 1)
    assert slope < -0.8
    iaf = simulate_latents(1).traits.iaf_hz
    at_iaf = np.argmin(np.abs(freqs - iaf))
    assert np.log10(spectrum[at_iaf]) - (intercept + slope * np.log10(freqs[at_iaf])) > np.log10(3)
    # Band-passed 4-45 Hz, as DEAP's release: little power left below 2 Hz.
    assert spectrum[freqs < 2].max() < 0.05 * spectrum[at_iaf]


def test_baseline_carries_no_emotional_modulation() -> None:
    # The first 3 s follow the subject's resting state: occipital alpha there must not
    # follow arousal, while during the video it does (alpha falls with arousal).
    data = _generate(1)["data"]
    arousal = simulate_latents(1).signal_arousal
    occipital = [EEG_CHANNELS.index(name) for name in ("O1", "Oz", "O2")]
    freqs, power = signal.welch(data[:, occipital, : int(3 * SFREQ)], fs=SFREQ, nperseg=128, axis=-1)
    baseline_alpha = np.log(power[..., (freqs >= 8) & (freqs < 13)].mean(axis=(-1, -2)))
    video_alpha = _log_band_power(data[:, occipital], 8, 13).mean(axis=-1)
    assert np.corrcoef(video_alpha, arousal)[0, 1] < -0.3
    assert np.corrcoef(baseline_alpha, arousal)[0, 1] > -0.3


# ---------------------------------------------------------------- arguments and safety


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"subject": 0}, ValueError, r"subject must be an integer in \[1, 32\], got 0"),
    ({"subject": 33}, ValueError, r"subject must be an integer in \[1, 32\]"),
    ({"subject": True}, ValueError, "subject must be an integer"),
    ({"subject": 1, "seed": -1}, ValueError, "seed must be an integer >= 0"),
    ({"subject": 1, "variant": "nul"}, ValueError, "variant must be one of"),
    ({"subject": 1, "config": {"rating_scale": 2}}, TypeError, "SimulationConfig"),
])
def test_invalid_subject_arguments(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        simulate_latents(**kwargs)


def test_unknown_variant_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        simulate_subject(1, variant="eeg-only")
    assert all(name in str(info.value) for name in VARIANTS)


@pytest.mark.parametrize("n_subjects", [0, 33])
def test_invalid_cohort_size(tmp_path: Path, n_subjects: int) -> None:
    with pytest.raises(ValueError, match=r"n_subjects must be an integer in \[1, 32\]"):
        simulate_cohort(tmp_path, n_subjects=n_subjects, progress=False)


def test_invalid_config_values() -> None:
    with pytest.raises(ValueError, match="eog_blink_rate_per_min must be >= 0"):
        SimulationConfig(eog_blink_rate_per_min=-1.0)
    with pytest.raises(ValueError, match="finite"):
        SimulationConfig(rating_scale=float("nan"))
    SimulationConfig(alpha_arousal_effect=0.3)  # effects may take either sign


def test_refuses_to_overwrite_files_without_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "s01.dat").write_bytes(b"real DEAP, perhaps")
    with pytest.raises(ValueError, match="no mkdbook-simulated.json"):
        simulate_cohort(tmp_path, n_subjects=1, progress=False)
    assert (tmp_path / "s01.dat").read_bytes() == b"real DEAP, perhaps"


def test_refuses_to_mix_cohorts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_module, "_simulate_signals", _tiny_signals)
    simulate_cohort(tmp_path, n_subjects=2, seed=0, progress=False)
    with pytest.raises(ValueError, match="seed"):
        simulate_cohort(tmp_path, n_subjects=2, seed=1, progress=False)
    with pytest.raises(ValueError, match="variant"):
        simulate_cohort(tmp_path, n_subjects=2, variant="null", progress=False)
    with pytest.raises(ValueError, match="beyond n_subjects=1"):
        simulate_cohort(tmp_path, n_subjects=1, progress=False)
    # The same cohort again, or more of it, is fine.
    assert len(simulate_cohort(tmp_path, n_subjects=3, progress=False)) == 3
    assert load_manifest(tmp_path)["n_subjects"] == 3


def test_interrupted_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_module, "_simulate_signals", _tiny_signals)

    def dump_half_then_fail(obj, stream, protocol):
        stream.write(b"\x80\x02half a pickle")
        raise KeyboardInterrupt

    monkeypatch.setattr(cohort_module.pickle, "dump", dump_half_then_fail)
    with pytest.raises(KeyboardInterrupt):
        simulate_cohort(tmp_path, n_subjects=2, progress=False)
    # Only the marker of an unfinished run is left: no subject file, no temporary file.
    assert sorted(p.name for p in tmp_path.iterdir()) == [PENDING_NAME]

    monkeypatch.undo()
    monkeypatch.setattr(cohort_module, "_simulate_signals", _tiny_signals)
    simulate_cohort(tmp_path, n_subjects=2, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latent", SIMULATION_MANIFEST, "s01.dat", "s02.dat"]


def test_files_get_ordinary_permissions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cohort_module, "_simulate_signals", _tiny_signals)
    simulate_cohort(tmp_path, n_subjects=1, progress=False)
    # Readable by others as any file the user writes (umask permitting), not private like tempfile's.
    (tmp_path / "probe").touch()
    expected = (tmp_path / "probe").stat().st_mode & 0o777
    assert (tmp_path / "s01.dat").stat().st_mode & 0o777 == expected
    assert (tmp_path / SIMULATION_MANIFEST).stat().st_mode & 0o777 == expected
