"""EEG: a spatially correlated 1/f background and rhythms that follow the latent state."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mne
import numpy as np

from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.latents import _BAND_NAMES, SubjectTraits
from mkdbook.data.simulate.noise import (
    _FREQS,
    _TIMES,
    _amplitude_for_rms,
    _lognormal,
    _peak_shape,
    _random_spectrum,
    _Spectrum,
    _to_series,
)

#: The simulated electrodes are DEAP's, in DEAP's order.
_EEG_CHANNELS: tuple[str, ...] = DEAP.modalities["eeg"]

#: The EEG band of DEAP's preprocessed release (Hz).
EEG_PASSBAND: tuple[float, float] = (4.0, 45.0)
#: Mains frequency where DEAP was recorded (Twente and Geneva).
LINE_FREQUENCY_HZ = 50.0

#: Homologous frontal pairs (right, left) whose alpha asymmetry follows valence.
ASYMMETRY_PAIRS: tuple[tuple[str, str], ...] = (
    ("F4", "F3"), ("AF4", "AF3"), ("F8", "F7"), ("Fp2", "Fp1"),
)

#: Relative propagation of (hEOG, vEOG) into frontal EEG; it falls with the
#: distance from the eyes (Croft & Barry 2000). hEOG is taken as right minus
#: left canthus, so rightward gaze is positive at F8 and negative at F7.
_OCULAR_PROPAGATION: dict[str, tuple[float, float]] = {
    "Fp1": (0.0, 1.0), "Fp2": (0.0, 1.0), "AF3": (0.0, 0.6), "AF4": (0.0, 0.6),
    "F7": (-0.7, 0.3), "F8": (0.7, 0.3),
}

#: Where each rhythm is strongest: (focus electrodes, spatial SD in m, floor).
_BAND_TOPOGRAPHY: dict[str, tuple[tuple[str, ...], float, float]] = {
    "theta": (("Fz",), 0.05, 0.4),
    "alpha": (("Oz", "Pz"), 0.06, 0.3),
    "beta": (("C3", "C4"), 0.06, 0.4),
    "gamma": (("T7", "T8"), 0.05, 0.3),
}
#: Sites whose beta/gamma follow the latent state: lateral temporal.
_TEMPORAL_FOCI: tuple[str, ...] = ("T7", "T8")


@lru_cache(maxsize=1)
def electrode_positions() -> np.ndarray:
    """Positions (m) of the 32 DEAP electrodes on MNE's template 10-20 head.

    MNE 1.13 renamed ``standard_1020`` to ``colin27_1020`` (same positions);
    the new name is used where it exists so no deprecation warning is raised.

    Returns
    -------
    ndarray, shape (32, 3)
        In DEAP's EEG order, ``DEAP.modalities["eeg"]``.
    """
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    positions = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return np.array([positions[channel] for channel in _EEG_CHANNELS])


def _distances() -> np.ndarray:
    xyz = electrode_positions()
    return np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)


def _spatial_mixing(length_m: float) -> np.ndarray:
    # Cholesky factor of an exponential covariance: mixing unit-variance
    # independent series with it gives correlation exp(-distance / length).
    return np.linalg.cholesky(np.exp(-_distances() / length_m))


def _topography(foci: tuple[str, ...], width_m: float, floor: float) -> np.ndarray:
    nearest = _distances()[:, [_EEG_CHANNELS.index(name) for name in foci]].min(axis=1)
    return floor + (1.0 - floor) * np.exp(-0.5 * (nearest / width_m) ** 2)


def _asymmetry_sides() -> np.ndarray:
    side = np.zeros(len(_EEG_CHANNELS))
    for right, left in ASYMMETRY_PAIRS:
        side[_EEG_CHANNELS.index(right)] = 1.0
        side[_EEG_CHANNELS.index(left)] = -1.0
    return side


def _video_ramp() -> np.ndarray:
    # The film's effect builds up over its first second (raised cosine), so
    # the 3-s baseline carries none of it and no step is introduced.
    ramp = np.clip((_TIMES - DEAP.baseline_seconds) / 1.0, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _band_log_power_change(band: str, valence: np.ndarray, arousal: np.ndarray,
                           traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    """Change of each trial's, each electrode's log power of ``band`` during the video."""
    c = config
    v, a = valence[:, None], arousal[:, None]
    temporal = _topography(_TEMPORAL_FOCI, 0.05, 0.0)[None, :]
    if band == "theta":
        return np.broadcast_to(c.theta_arousal_effect * a, (DEAP.n_trials, len(_EEG_CHANNELS)))
    if band == "alpha":
        asymmetry = 0.5 * c.alpha_asymmetry_valence_effect * traits.asymmetry_sensitivity * v
        return c.alpha_arousal_effect * a + asymmetry * _asymmetry_sides()[None, :]
    if band == "beta":
        return (c.beta_arousal_effect * a + c.beta_valence_effect * v) * temporal
    return (c.gamma_arousal_effect * a + c.gamma_valence_effect * v) * temporal


def _band_spectrum(band: str, traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    c = config
    centre, width, rms = {
        "theta": (c.eeg_theta_hz, c.eeg_theta_width_hz, c.eeg_theta_rms_uv),
        "alpha": (traits.iaf_hz, c.eeg_alpha_width_hz, c.eeg_alpha_rms_uv),
        "beta": (c.eeg_beta_hz, c.eeg_beta_width_hz, c.eeg_beta_rms_uv),
        "gamma": (c.eeg_gamma_hz, c.eeg_gamma_width_hz, c.eeg_gamma_rms_uv),
    }[band]
    return _amplitude_for_rms(_peak_shape(centre, width), rms)


def _aperiodic_spectrum(tilt: np.ndarray, traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    exponent = (traits.aperiodic_exponent + tilt)[:, None, None]
    # A 1 Hz knee keeps the 1/f shape finite at 0 Hz; below 4 Hz is filtered out anyway.
    shape = np.hypot(_FREQS, 1.0)[None, None, :] ** (-exponent / 2)
    shape[..., 0] = 0.0
    return _amplitude_for_rms(shape, config.eeg_aperiodic_rms_uv, EEG_PASSBAND)


@dataclass(frozen=True)
class _BrainSources:
    """The random part of a subject's brain activity, before the latent state scales it.

    ``spectra`` holds, per component (``background`` and each rhythm), a
    spatially mixed spectrum (trials, 32, support) of unit gain; ``baseline``
    each rhythm's amplitude (trials, 32) outside the video's influence.
    """

    spectra: dict[str, _Spectrum]
    baseline: dict[str, np.ndarray]


def _draw_brain_sources(rng: np.random.Generator, fingerprint_rng: np.random.Generator,
                        traits: SubjectTraits, config: SimulationConfig) -> _BrainSources:
    mixing = _spatial_mixing(config.eeg_spatial_length_m)
    shape = (DEAP.n_trials, len(_EEG_CHANNELS))
    tilt = fingerprint_rng.normal(0.0, config.fingerprint_tilt_sd, size=DEAP.n_trials)
    state = fingerprint_rng.normal(0.0, config.eeg_state_sd, size=(len(_BAND_NAMES), DEAP.n_trials))
    asymmetry = 0.5 * traits.trait_asymmetry * _asymmetry_sides()
    spectra = {"background": _random_spectrum(rng, _aperiodic_spectrum(tilt, traits, config), shape, mixing)}
    baseline = {}
    for index, band in enumerate(_BAND_NAMES):
        spectra[band] = _random_spectrum(rng, _band_spectrum(band, traits, config), shape, mixing)
        topography = _topography(*_BAND_TOPOGRAPHY[band])
        log_gain = 0.5 * state[index][:, None] + (asymmetry[None, :] if band == "alpha" else 0.0)
        baseline[band] = traits.band_gains[band] * topography[None, :] * np.exp(log_gain)
    return _BrainSources(spectra, baseline)


def _brain_activity(sources: _BrainSources, valence: np.ndarray, arousal: np.ndarray,
                    traits: SubjectTraits, config: SimulationConfig,
                    channels: slice | list[int] = slice(None)) -> np.ndarray:
    """Background plus rhythms whose amplitude follows the latent state from the video on.

    ``valence`` and ``arousal`` are the state at every sample (trials,
    samples). Every rhythm is a unit series times an amplitude envelope: its
    baseline amplitude times ``exp(0.5 * change)``, where the change of log
    power is linear in the state (:func:`_band_log_power_change`) and builds
    up along :func:`_video_ramp`, so the state moves the rhythms within a
    trial as it moves.
    """
    n_trials = valence.shape[0]
    ones, zeros = np.ones(n_trials), np.zeros(n_trials)
    # Half the change of log power is the change of log amplitude. The
    # envelopes are computed in float32 (their relative error, ~1e-7, is far
    # below any effect) to halve the memory traffic of the largest arrays.
    half_ramp = 0.5 * _video_ramp()
    scaled = {"valence": (half_ramp * valence).astype(np.float32),
              "arousal": (half_ramp * arousal).astype(np.float32)}
    activity = _to_series(sources.spectra["background"].scattered((slice(None), channels)))
    for band in _BAND_NAMES:
        # The change is linear in the state: one coefficient per electrode for each dimension.
        per_valence = _band_log_power_change(band, ones, zeros, traits, config)[0, channels]
        per_arousal = _band_log_power_change(band, zeros, ones, traits, config)[0, channels]
        # Electrodes that share both coefficients share the envelope: compute each once.
        pairs, which = np.unique(np.stack([per_valence, per_arousal], axis=1), axis=0, return_inverse=True)
        envelope = np.empty((n_trials, len(pairs), valence.shape[1]), np.float32)
        for k, (on_valence, on_arousal) in enumerate(pairs):
            np.multiply(scaled["valence"], np.float32(on_valence), out=envelope[:, k])
            envelope[:, k] += np.float32(on_arousal) * scaled["arousal"]
        np.exp(envelope, out=envelope)
        rhythm = _to_series(sources.spectra[band].scattered((slice(None), channels)))
        rhythm *= sources.baseline[band][:, channels][..., None]
        rhythm *= envelope[:, which.ravel()]
        activity += rhythm
    activity *= traits.eeg_gain
    return activity


def _recording_nuisance(rng: np.random.Generator, config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial electrode noise floor plus residual mains, and per-trial electrode gains."""
    shape = (DEAP.n_trials, len(_EEG_CHANNELS))
    floor = _lognormal(rng, config.fingerprint_noise_floor_uv, 0.3, size=shape)
    line = _lognormal(rng, config.fingerprint_line_noise_uv, 0.5, size=shape)
    phase = rng.uniform(0.0, 2 * np.pi, size=shape)
    gain = _lognormal(rng, 1.0, config.fingerprint_gain_sd, size=shape)
    omega_t = 2 * np.pi * LINE_FREQUENCY_HZ * _TIMES
    nuisance = rng.standard_normal(shape + (DEAP.n_samples,))
    nuisance *= floor[..., None]
    nuisance += np.multiply.outer(line * np.cos(phase), np.cos(omega_t))
    nuisance -= np.multiply.outer(line * np.sin(phase), np.sin(omega_t))
    return nuisance, gain


def _ocular_residual(ocular: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """What DEAP's artefact removal left of the ocular potentials in each EEG channel."""
    weights = np.zeros((len(_EEG_CHANNELS), 2))
    for name, (horizontal, vertical) in _OCULAR_PROPAGATION.items():
        weights[_EEG_CHANNELS.index(name)] = (horizontal, vertical)
    return config.eeg_residual_eog * np.einsum("ck,tks->tcs", weights, ocular)


def _release_preprocessing(eeg: np.ndarray) -> np.ndarray:
    """Average reference and 4-45 Hz band-pass, as in DEAP's preprocessed release (in place)."""
    eeg -= eeg.mean(axis=1, keepdims=True)
    flat = eeg.reshape(-1, DEAP.n_samples)
    filtered = mne.filter.filter_data(flat, DEAP.sfreq, *EEG_PASSBAND, copy=False, verbose=False)
    return filtered.reshape(eeg.shape)
