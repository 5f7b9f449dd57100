"""The hidden truth of a simulated subject: stable traits and per-trial latent state."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The EEG rhythms of :attr:`SubjectTraits.band_gains`, in the order their gains
#: are drawn: reordering them would change every simulated cohort.
_BAND_NAMES: tuple[str, ...] = ("theta", "alpha", "beta", "gamma")


@dataclass(frozen=True, eq=False)
class SubjectTraits:
    """A simulated subject's stable characteristics.

    Attributes
    ----------
    iaf_hz : float
        Individual alpha frequency.
    aperiodic_exponent : float
        Exponent of the subject's 1/f background.
    eeg_gain : float
        Overall EEG amplitude factor.
    band_gains : dict of str to float
        Amplitude factor of each rhythm (``theta``, ``alpha``, ``beta``, ``gamma``).
    trait_asymmetry : float
        Resting ln(alpha right) - ln(alpha left) at the frontal pairs.
    asymmetry_sensitivity : float
        Multiplier of the valence effect on frontal asymmetry.
    rating_bias : ndarray, shape (4,)
        Offset on each rating scale, in ``DEAP.rating_scales`` order.
    rating_noise_sd : float
        SD of this subject's self-report noise.
    blink_rate_per_min, blink_amplitude_uv, blink_heog_fraction : float
        Resting blink rate, median blink amplitude in vEOG, and the share of a
        blink seen in hEOG.
    saccade_rate_hz : float
        Saccade rate while watching a video.
    heart_rate_bpm, respiration_hz, skin_conductance_us, skin_temperature_c : float
        Resting peripheral levels.
    emg_gain : float
        Gain of the periocular EMG that the subject's EOG electrodes record.
    """

    iaf_hz: float
    aperiodic_exponent: float
    eeg_gain: float
    band_gains: dict[str, float]
    trait_asymmetry: float
    asymmetry_sensitivity: float
    rating_bias: np.ndarray
    rating_noise_sd: float
    blink_rate_per_min: float
    blink_amplitude_uv: float
    blink_heog_fraction: float
    saccade_rate_hz: float
    heart_rate_bpm: float
    respiration_hz: float
    skin_conductance_us: float
    skin_temperature_c: float
    emg_gain: float


@dataclass(frozen=True, eq=False)
class SubjectLatents:
    """The hidden truth behind one simulated subject's 40 trials.

    Attributes
    ----------
    subject : int
        Subject number (1-32).
    variant : str
        Cohort variant.
    signal_valence, signal_arousal : ndarray, shape (40,)
        The latent state that drives the signals, per trial.
    rated_valence, rated_arousal : ndarray, shape (40,)
        The latent state the ratings report; the same arrays as the signal
        state except under the ``"null"`` variant.
    labels : ndarray, shape (40, 4)
        The ratings written to the file (valence, arousal, dominance, liking).
    traits : SubjectTraits
        The subject's stable characteristics.
    signal_per_second : ndarray, shape (40, 60, 2)
        The state that drives the signals, second by second over the video
        (valence, arousal): it fluctuates around ``signal_valence`` and
        ``signal_arousal`` (see :mod:`~mkdbook.data.simulate.truth`).
    """

    subject: int
    variant: str
    signal_valence: np.ndarray
    signal_arousal: np.ndarray
    rated_valence: np.ndarray
    rated_arousal: np.ndarray
    labels: np.ndarray
    traits: SubjectTraits
    signal_per_second: np.ndarray
