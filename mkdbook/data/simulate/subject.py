"""One subject: every channel of its 40 trials, in DEAP's layout."""

from __future__ import annotations

import numpy as np

from mkdbook.data.simulate.config import SimulationConfig
from mkdbook.data.simulate.eeg import (
    _EEG_CHANNELS,
    _brain_activity,
    _draw_brain_sources,
    _ocular_residual,
    _recording_nuisance,
    _release_preprocessing,
)
from mkdbook.data.simulate.emg import _periocular_emg
from mkdbook.data.simulate.eog import _eog, _frontal_pickup
from mkdbook.data.simulate.peripheral import _peripheral, _smile_bursts
from mkdbook.data.simulate.streams import _Model, _subject_model
from mkdbook.data.simulate.truth import per_sample_state


def _simulate_signals(model: _Model) -> np.ndarray:
    settings, config, streams, latents = model.settings, model.config, model.streams, model.latents
    traits = latents.traits
    state = per_sample_state(latents.signal_per_second)
    valence, arousal = state[..., 0], state[..., 1]
    no_valence = np.zeros_like(valence)
    valence_elsewhere = valence if settings.valence_outside_eeg else no_valence

    sources = _draw_brain_sources(streams["eeg"], streams["fingerprints"], traits, config)
    brain = _brain_activity(sources, valence, arousal, traits, config)
    if settings.valence_outside_eeg:
        brain_seen_by_eog = _frontal_pickup(brain)
    else:
        # The EOG electrodes see the same frontal rhythms, but as they would be
        # without valence: the pathway stays, its valence content does not.
        frontal = [_EEG_CHANNELS.index(name) for name in ("F7", "F8", "Fp2")]
        neutral = _brain_activity(sources, no_valence, arousal, traits, config, frontal)
        brain_seen_by_eog = np.stack([neutral[:, 0] - neutral[:, 1], neutral[:, 2]], axis=1)

    smiles = _smile_bursts(streams["peripheral"], valence_elsewhere, config)
    emg = _periocular_emg(streams["emg"], valence_elsewhere, arousal, smiles, traits, config)
    emg *= config.emg_crosstalk if settings.emg_in_eog else 0.0
    ocular, eog = _eog(streams["eog"], streams["fingerprints"], valence_elsewhere, arousal,
                       brain_seen_by_eog, model.film, emg, traits, config)
    nuisance, electrode_gain = _recording_nuisance(streams["fingerprints"], config)
    # In place from here on: the brain activity becomes what the electrodes record.
    eeg = brain
    eeg += nuisance
    eeg += _ocular_residual(ocular, config)
    eeg *= electrode_gain[..., None]
    eeg = _release_preprocessing(eeg)
    trial_arousal = latents.signal_arousal
    peripheral = _peripheral(streams["peripheral"], smiles, trial_arousal, traits, config)
    # hEOG and vEOG follow the EEG, then the other peripheral channels: DEAP's layout.
    signals = np.concatenate([eeg, eog, peripheral], axis=1)
    # Every sample is rounded to float32, the segment cache's type, and kept in
    # float64 as DEAP's files hold it: the cache sees the same values, and a
    # BIDS copy (float32 BrainVision) holds exactly the samples sNN.dat does.
    return signals.astype(np.float32).astype(np.float64)


def simulate_subject(subject: int, *, variant: str = "default", seed: int = 0,
                     config: SimulationConfig | None = None) -> dict[str, np.ndarray]:
    """Simulate one subject's 40 trials, as DEAP's ``sNN.dat`` holds them.

    Deterministic: the same ``subject``, ``variant``, ``seed`` and ``config``
    give identical arrays. Subject ``s`` of cohort ``seed`` draws from
    ``np.random.SeedSequence([seed, s])``, so subjects are independent of how
    many are simulated; variants of one seed share every random draw they
    have in common, so they differ only where the variant says.

    Parameters
    ----------
    subject : int
        Subject number, 1-32.
    variant : str
        A key of :data:`VARIANTS`: ``"default"``, ``"null"``, ``"eeg-only-valence"`` or ``"no-emg"``.
    seed : int
        Non-negative cohort seed.
    config : SimulationConfig, optional
        Model parameters; the defaults when omitted.

    Returns
    -------
    dict
        ``"data"``: float64 array (40 trials, 40 channels, 8064 samples) in
        microvolts (EEG, EOG, EMG) or the units given in the module notes,
        every value one that float32 holds exactly;
        ``"labels"``: float64 array (40, 4) of valence, arousal, dominance and
        liking ratings in [1, 9]. :func:`simulate_latents` gives the hidden
        state behind them.

    Raises
    ------
    ValueError
        If ``variant`` is unknown or ``subject`` or ``seed`` is out of range.
    TypeError
        If ``subject`` or ``seed`` is not an integer or ``config`` is not a
        :class:`SimulationConfig`.
    """
    model = _subject_model(subject, variant, seed, config)
    data = _simulate_signals(model)
    return {"data": np.ascontiguousarray(data, dtype=np.float64),
            "labels": model.latents.labels.astype(np.float64)}
