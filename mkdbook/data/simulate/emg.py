"""Periocular muscle activity in the EOG channels: tonic EMG that follows the state, and smile bursts.

DEAP's vEOG pair sits above and below the right eye: the lower electrode at
the standard orbicularis oculi EMG site, the upper one near frontalis and
corrugator supercilii. Its hEOG pair sits at the outer canthi, beside
orbicularis oculi pars lateralis and temporalis. The peripheral channels were
only down-sampled, so the EOG keeps this activity up to the 64 Hz Nyquist
frequency. Surface EMG is band-limited noise whose amplitude (envelope) is
the muscle's activation; that is how it is simulated here.
"""

from __future__ import annotations

import numpy as np

from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.latents import SubjectTraits
from mkdbook.data.simulate.noise import _FREQS, _amplitude_for_rms, _noise_with_spectrum

#: Band of the simulated surface EMG (Hz): from where facial EMG power rises
#: above the EEG's to the Nyquist frequency of DEAP's 128 Hz release.
EMG_BAND: tuple[float, float] = (20.0, 64.0)

#: Weight of the valence and arousal effects on (hEOG, vEOG). vEOG's upper
#: electrode lies over corrugator (valence) and frontalis (arousal); the outer
#: canthi lie far from corrugator and beside temporalis (arousal).
_CHANNEL_WEIGHTS: dict[str, tuple[float, float]] = {"valence": (0.5, 1.0), "arousal": (1.0, 1.0)}


def _stimulus_ramp() -> np.ndarray:
    # The state acts from the video on, building up over its first second, as the EEG's does.
    ramp = np.clip(np.arange(DEAP.n_samples) / DEAP.sfreq - DEAP.baseline_seconds, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _periocular_emg(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
                    smiles: np.ndarray, traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    """EMG that the hEOG and vEOG electrodes record, before ``emg_crosstalk`` scales it.

    Parameters
    ----------
    rng : Generator
        The subject's EMG stream.
    valence, arousal : ndarray, shape (trials, samples)
        The state at every sample (zero where a variant removes a pathway).
    smiles : ndarray, shape (trials, samples)
        Envelope of the zygomaticus smile bursts (uV), to which orbicularis
        oculi is coupled.

    Returns
    -------
    ndarray, shape (trials, 2, samples)
        (hEOG, vEOG), in microvolts.
    """
    c = config
    n_trials = valence.shape[0]
    carrier_shape = np.where((_FREQS >= EMG_BAND[0]) & (_FREQS <= EMG_BAND[1]), 1.0, 0.0)
    carrier = _noise_with_spectrum(rng, _amplitude_for_rms(carrier_shape, 1.0), (n_trials, 2))
    trial_state = rng.normal(0.0, c.eog_emg_trial_sd, size=(n_trials, 2, 1))
    weights = {name: np.array(value)[None, :, None] for name, value in _CHANNEL_WEIGHTS.items()}
    log_change = (c.eog_emg_valence_effect * weights["valence"] * valence[:, None, :]
                  + c.eog_emg_arousal_effect * weights["arousal"] * arousal[:, None, :])
    tonic = c.eog_emg_rms_uv * np.exp(trial_state + _stimulus_ramp() * log_change)
    phasic = c.eog_orbicularis_fraction * smiles[:, None, :]
    return traits.emg_gain * carrier * (tonic + phasic)
