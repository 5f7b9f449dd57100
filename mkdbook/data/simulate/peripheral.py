"""Peripheral channels: facial and neck EMG, skin conductance, respiration, pulse, temperature."""

from __future__ import annotations

import numpy as np
from scipy import signal

from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.eeg import _video_ramp
from mkdbook.data.simulate.eog import _events, _rate_over_time
from mkdbook.data.simulate.latents import SubjectTraits
from mkdbook.data.simulate.noise import _FREQS, _TIMES, _amplitude_for_rms, _lognormal, _noise_with_spectrum


def _bursts(rng: np.random.Generator, per_sample: np.ndarray, amplitude: float,
            duration_s: float) -> np.ndarray:
    """Hann-shaped amplitude bursts at random onsets, sizes spread +-30 % around ``amplitude``."""
    onsets = _events(rng, per_sample) * _lognormal(rng, amplitude, 0.3, size=per_sample.shape)
    window = signal.windows.hann(int(duration_s * DEAP.sfreq))
    return signal.oaconvolve(onsets, window[None, :], axes=1)[:, :DEAP.n_samples]


def _slow_wander(rng: np.random.Generator, rms: float, cutoff_hz: float) -> np.ndarray:
    shape = np.where((_FREQS > 0) & (_FREQS <= cutoff_hz), 1.0, 0.0)
    return _noise_with_spectrum(rng, _amplitude_for_rms(shape, rms), (DEAP.n_trials,))


def _video_only(values: np.ndarray) -> np.ndarray:
    """Per-trial values as a time course that is zero during the baseline."""
    return values[:, None] * _video_ramp()[None, :]


def _smile_bursts(rng: np.random.Generator, valence: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """Envelope (uV) of zygomaticus smile-like bursts, whose rate rises with valence.

    ``valence`` is the state at every sample (trials, samples). The first
    draws of the peripheral stream; orbicularis oculi, seen by the EOG, is
    coupled to the same bursts.
    """
    c = config
    smile_rate = c.zemg_burst_rate_per_min * np.exp(c.zemg_valence_effect * valence)
    return _bursts(rng, _rate_over_time(c.zemg_burst_rate_per_min / 60, smile_rate / 60),
                   c.zemg_burst_uv, duration_s=1.5)


def _facial_and_neck_emg(rng: np.random.Generator, smiles: np.ndarray, arousal: np.ndarray,
                         config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Zygomaticus EMG (tone plus the smile bursts) and trapezius EMG (tone)."""
    c = config
    shape = (DEAP.n_trials, DEAP.n_samples)
    zygomaticus = rng.standard_normal(shape) * (c.zemg_tone_uv + smiles)
    trapezius = rng.standard_normal(shape) * c.temg_tone_uv * np.exp(_video_only(c.temg_arousal_effect * arousal))
    return zygomaticus, trapezius


def _skin_conductance(rng: np.random.Generator, arousal: np.ndarray, traits: SubjectTraits,
                      config: SimulationConfig) -> np.ndarray:
    """Tonic level, slow drift and non-specific responses whose rate follows arousal (uS)."""
    c = config
    rate = c.scr_rate_per_min * np.exp(c.scr_arousal_effect * arousal)
    onsets = _events(rng, _rate_over_time(c.scr_rate_per_min / 60, rate / 60))
    sizes = _lognormal(rng, c.scr_amplitude_us, 0.5, size=onsets.shape)
    # Difference of exponentials: peaks ~1.3 s after onset, recovers over several seconds.
    t = np.arange(int(20 * DEAP.sfreq)) / DEAP.sfreq
    response = np.exp(-t / 3.0) - np.exp(-t / 0.7)
    responses = signal.oaconvolve(onsets * sizes, (response / response.max())[None, :], axes=1)[:, :DEAP.n_samples]
    level = traits.skin_conductance_us * np.exp(rng.normal(0.0, 0.1, size=(DEAP.n_trials, 1)))
    return level + responses + _slow_wander(rng, 0.1, 0.02)


def _respiration_and_pulse(rng: np.random.Generator, arousal: np.ndarray, traits: SubjectTraits,
                           config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Respiration belt and finger plethysmograph (arbitrary units), both faster with arousal."""
    c = config
    breathing_hz = traits.respiration_hz * np.exp(_video_only(c.respiration_arousal_effect * arousal)
                                                  + _slow_wander(rng, 0.05, 0.05))
    breath = 2 * np.pi * np.cumsum(breathing_hz, axis=1) / DEAP.sfreq + rng.uniform(0, 2 * np.pi, (DEAP.n_trials, 1))
    respiration = np.sin(breath) + 0.15 * np.sin(2 * breath) + _slow_wander(rng, 0.2, 0.02)
    # Heart rate rises with arousal and by ~3 bpm with each inspiration (sinus arrhythmia).
    heart_hz = (traits.heart_rate_bpm + _video_only(c.heart_rate_arousal_bpm * arousal)
                + 3.0 * np.sin(breath)) / 60.0
    beat = 2 * np.pi * np.cumsum(heart_hz, axis=1) / DEAP.sfreq + rng.uniform(0, 2 * np.pi, (DEAP.n_trials, 1))
    # Three harmonics give the pulse wave its steep rise and dicrotic shoulder.
    pulse = np.cos(beat) + 0.4 * np.cos(2 * beat - 0.6) + 0.15 * np.cos(3 * beat - 1.2)
    plethysmograph = pulse * (1 + 0.1 * np.sin(breath)) + _slow_wander(rng, 0.3, 0.1)
    return respiration, plethysmograph


def _skin_temperature(rng: np.random.Generator, traits: SubjectTraits) -> np.ndarray:
    """Skin temperature (degrees C): a per-trial level and a slow drift of a few hundredths per minute."""
    level = traits.skin_temperature_c + rng.normal(0.0, 0.1, size=(DEAP.n_trials, 1))
    drift_per_s = rng.normal(0.0, 0.05 / 60, size=(DEAP.n_trials, 1))
    return level + drift_per_s * _TIMES[None, :] + 0.005 * rng.standard_normal((DEAP.n_trials, DEAP.n_samples))


def _peripheral(rng: np.random.Generator, smiles: np.ndarray, arousal: np.ndarray,
                traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    """zEMG, tEMG, GSR, respiration, plethysmograph and temperature, (trials, 6, samples).

    ``smiles`` comes from :func:`_smile_bursts` on the same ``rng``;
    ``arousal`` is one value per trial.
    """
    zygomaticus, trapezius = _facial_and_neck_emg(rng, smiles, arousal, config)
    respiration, plethysmograph = _respiration_and_pulse(rng, arousal, traits, config)
    return np.stack([zygomaticus, trapezius, _skin_conductance(rng, arousal, traits, config),
                     respiration, plethysmograph, _skin_temperature(rng, traits)], axis=1)
