"""EOG: blinks and saccades whose rates follow the latent state, plus what the electrodes add.

Part of the eye behaviour is locked to the film, shared by every viewer of a
video and free of emotion: :func:`_film_events` draws it once per cohort.
Geometry as in DEAP's documentation: vEOG is the electrode above the right eye
minus the one below it, hEOG the left outer canthus minus the right one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.latents import SubjectTraits
from mkdbook.data.simulate.noise import _FREQS, _TIMES, _amplitude_for_rms, _lognormal, _noise_with_spectrum

#: Sign of the recorded (hEOG, vEOG) relative to the eye's potentials, which
#: are taken as rightward and upward positive: hEOG = hEOG1 (left canthus) -
#: hEOG2 (right canthus), so a rightward look is negative; vEOG = vEOG1 (above
#: the right eye) - vEOG2 (below it), so a look up or a blink is positive.
_DEAP_SIGN = np.array([-1.0, 1.0])[None, :, None]


def _rate_over_time(baseline_rate: float, video_rates: np.ndarray) -> np.ndarray:
    """Events per sample, per trial: the resting rate before the video, then each trial's rate.

    ``video_rates`` is one rate per trial, or one per trial and sample.
    """
    rates = video_rates[:, None] if np.ndim(video_rates) == 1 else video_rates
    rate = np.where(_TIMES < DEAP.baseline_seconds, baseline_rate, rates)
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


def _film_events(seed: int, config: SimulationConfig) -> np.ndarray:
    """The film-locked part of eye behaviour of every video: one draw per cohort, shared by all subjects.

    Returns
    -------
    ndarray, shape (3, 40, samples)
        Film-locked blink moments (0 or 1), and the film's horizontal and
        vertical gaze target (degrees); all zero during the baseline, when a
        fixation cross replaces the film.
    """
    c = config
    # Subject number 0 of the cohort seed draws the videos; this child stream draws their eye events.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0, 1]))
    video = _TIMES >= DEAP.baseline_seconds
    shape = (DEAP.n_trials, DEAP.n_samples)
    blink_rate = c.eog_blink_rate_per_min * c.eog_blink_video_factor / 60.0
    blinks = (rng.uniform(size=shape) < blink_rate / DEAP.sfreq) & video
    saccades = rng.uniform(size=shape) < c.eog_saccade_rate_hz / DEAP.sfreq
    horizontal = _gaze(rng, saccades, c.eog_gaze_sd_deg) * video
    vertical = _gaze(rng, saccades, c.eog_vertical_gaze_sd_deg) * video
    return np.stack([blinks.astype(float), horizontal, vertical])


def _eog(rng: np.random.Generator, fingerprint_rng: np.random.Generator, valence: np.ndarray,
         arousal: np.ndarray, brain_frontal: np.ndarray, film: np.ndarray, emg: np.ndarray,
         traits: SubjectTraits, config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Simulate hEOG and vEOG.

    ``valence`` and ``arousal`` are the state at every sample (trials,
    samples); ``film`` is :func:`_film_events`; ``emg`` the periocular EMG
    (trials, 2, samples) in the recorded channels' sign.

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
    own = _rate_over_time(traits.blink_rate_per_min / 60.0, blink_video / 60.0)
    # A share of the blinks falls on the film's blink moments: the subject's
    # current rate, relative to the typical one, sets how likely a blink is
    # there, so the expected rate and its emotion effects are unchanged.
    share = c.eog_film_locked_share
    typical = c.eog_blink_rate_per_min * c.eog_blink_video_factor / 60.0 / DEAP.sfreq
    locked = np.minimum(1.0, share * own / typical) * film[0]
    video = _TIMES >= DEAP.baseline_seconds
    blinks = _events(rng, np.where(film[0] > 0, locked, np.where(video, 1.0 - share, 1.0) * own))
    sizes = _lognormal(rng, traits.blink_amplitude_uv, c.eog_blink_amplitude_sd, size=blinks.shape)
    lid = signal.oaconvolve(blinks * sizes, _blink_kernel(c.eog_blink_peak_s)[None, :], axes=1)[:, :DEAP.n_samples]

    saccade_video = traits.saccade_rate_hz * np.exp(
        c.eog_saccade_arousal_effect * arousal + c.eog_saccade_valence_effect * valence)
    saccades = _events(rng, _rate_over_time(traits.saccade_rate_hz * c.eog_fixation_saccade_factor,
                                            saccade_video))
    # Gaze is a mix of the subject's own scanning and the film's targets, with
    # the film's share of the variance; the spread of gaze stays the same.
    own_weight, film_weight = np.where(video, np.sqrt(1.0 - share), 1.0), np.sqrt(share)
    horizontal = c.eog_uv_per_degree * (own_weight * _gaze(rng, saccades, c.eog_gaze_sd_deg)
                                        + film_weight * film[1])
    vertical = c.eog_uv_per_degree * (own_weight * _gaze(rng, saccades, c.eog_vertical_gaze_sd_deg)
                                      + film_weight * film[2])
    ocular = np.stack([horizontal + traits.blink_heog_fraction * lid, vertical + lid], axis=1)

    drift_shape = 1.0 / np.hypot(_FREQS, 0.02)
    drift_shape[0] = 0.0
    drift = _noise_with_spectrum(rng, _amplitude_for_rms(drift_shape, c.eog_drift_rms_uv), (DEAP.n_trials, 2))
    noise = rng.normal(0.0, c.eog_noise_rms_uv, size=(DEAP.n_trials, 2, DEAP.n_samples))
    pickup = c.eog_brain_pickup * brain_frontal
    gain = _lognormal(fingerprint_rng, 1.0, c.fingerprint_gain_sd, size=(DEAP.n_trials, 2, 1))
    offset = fingerprint_rng.normal(0.0, c.fingerprint_eog_offset_uv, size=(DEAP.n_trials, 2, 1))
    return ocular, gain * (_DEAP_SIGN * ocular + pickup + drift + noise + emg) + offset


def _frontal_pickup(brain: np.ndarray) -> np.ndarray:
    """Brain activity seen by the EOG derivations: hEOG ~ F7 - F8 (left minus right), vEOG ~ Fp2."""
    index = {name: DEAP.modalities["eeg"].index(name) for name in ("F7", "F8", "Fp2")}
    return np.stack([brain[:, index["F7"]] - brain[:, index["F8"]], brain[:, index["Fp2"]]], axis=1)
