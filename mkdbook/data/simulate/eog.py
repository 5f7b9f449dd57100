"""EOG: blinks and saccades whose rates follow the latent state, plus what the electrodes add."""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.latents import SubjectTraits
from mkdbook.data.simulate.noise import _FREQS, _TIMES, _amplitude_for_rms, _lognormal, _noise_with_spectrum


def _rate_over_time(baseline_rate: float, video_rates: np.ndarray) -> np.ndarray:
    """Events per sample, per trial: the resting rate before the video, then each trial's rate."""
    rate = np.where(_TIMES < DEAP.baseline_seconds, baseline_rate, video_rates[:, None])
    return rate / DEAP.sfreq


def _events(rng: np.random.Generator, per_sample: np.ndarray) -> np.ndarray:
    # One uniform draw per sample whatever the rate, so that changing a rate
    # never shifts the random numbers of anything drawn after it.
    return rng.uniform(size=per_sample.shape) < per_sample


def _blink_kernel(peak_s: float) -> np.ndarray:
    # A gamma-shaped lid potential: fast rise to the peak, slower return;
    # with a 0.1 s peak it is back under 10 % of the peak by ~0.3 s.
    t = np.arange(int(5 * peak_s * DEAP.sfreq)) / DEAP.sfreq
    return (t / peak_s) ** 3 * np.exp(3 * (1 - t / peak_s))


def _gaze(rng: np.random.Generator, saccades: np.ndarray, sd_deg: float) -> np.ndarray:
    """Gaze angle that jumps to a new fixation at every saccade (degrees)."""
    fixations = rng.normal(0.0, sd_deg, size=saccades.shape)
    index = np.cumsum(saccades, axis=1)
    angle = np.take_along_axis(fixations, index, axis=1)
    # A saccade lasts 30-50 ms: about five samples at 128 Hz.
    return ndimage.uniform_filter1d(angle, size=5, axis=1, mode="nearest")


def _eog(rng: np.random.Generator, fingerprint_rng: np.random.Generator, valence: np.ndarray,
         arousal: np.ndarray, brain_frontal: np.ndarray, traits: SubjectTraits,
         config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Simulate hEOG and vEOG.

    Returns
    -------
    ocular : ndarray, shape (trials, 2, samples)
        The eye's own potentials (blinks and saccades), which also spread into the EEG.
    recorded : ndarray, shape (trials, 2, samples)
        What the EOG channels record: ocular potentials, frontal brain
        activity, drift, noise, per-trial gain and offset.
    """
    c = config
    blink_video = (traits.blink_rate_per_min * c.eog_blink_video_factor
                   * np.exp(c.eog_blink_arousal_effect * arousal + c.eog_blink_valence_effect * valence))
    blinks = _events(rng, _rate_over_time(traits.blink_rate_per_min / 60.0, blink_video / 60.0))
    sizes = _lognormal(rng, traits.blink_amplitude_uv, c.eog_blink_amplitude_sd, size=blinks.shape)
    lid = signal.oaconvolve(blinks * sizes, _blink_kernel(c.eog_blink_peak_s)[None, :], axes=1)[:, :DEAP.n_samples]

    saccade_video = traits.saccade_rate_hz * np.exp(
        c.eog_saccade_arousal_effect * arousal + c.eog_saccade_valence_effect * valence)
    saccades = _events(rng, _rate_over_time(traits.saccade_rate_hz * c.eog_fixation_saccade_factor,
                                            saccade_video))
    horizontal = c.eog_uv_per_degree * _gaze(rng, saccades, c.eog_gaze_sd_deg)
    vertical = c.eog_uv_per_degree * _gaze(rng, saccades, c.eog_vertical_gaze_sd_deg)
    ocular = np.stack([horizontal + traits.blink_heog_fraction * lid, vertical + lid], axis=1)

    drift_shape = 1.0 / np.hypot(_FREQS, 0.02)
    drift_shape[0] = 0.0
    drift = _noise_with_spectrum(rng, _amplitude_for_rms(drift_shape, c.eog_drift_rms_uv), (DEAP.n_trials, 2))
    noise = rng.normal(0.0, c.eog_noise_rms_uv, size=(DEAP.n_trials, 2, DEAP.n_samples))
    pickup = c.eog_brain_pickup * brain_frontal
    gain = _lognormal(fingerprint_rng, 1.0, c.fingerprint_gain_sd, size=(DEAP.n_trials, 2, 1))
    offset = fingerprint_rng.normal(0.0, c.fingerprint_eog_offset_uv, size=(DEAP.n_trials, 2, 1))
    return ocular, gain * (ocular + pickup + drift + noise) + offset


def _frontal_pickup(brain: np.ndarray) -> np.ndarray:
    """Brain activity seen by the EOG derivations: hEOG ~ F8 - F7, vEOG ~ Fp1."""
    index = {name: DEAP.modalities["eeg"].index(name) for name in ("F7", "F8", "Fp1")}
    return np.stack([brain[:, index["F8"]] - brain[:, index["F7"]], brain[:, index["Fp1"]]], axis=1)
