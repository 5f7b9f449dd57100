"""Random streams: the draws that decide a subject's traits, latent state and ratings.

Every random number of subject ``s`` of cohort ``seed`` comes from
``np.random.SeedSequence([seed, s])``, split into one stream per purpose, so
a subject is independent of how many others are simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mkdbook.core.checks import check_int
from mkdbook.data.layout import DEAP
from mkdbook.data.simulate.config import SimulationConfig, _check_config
from mkdbook.data.simulate.eog import _film_events
from mkdbook.data.simulate.latents import _BAND_NAMES, SubjectLatents, SubjectTraits
from mkdbook.data.simulate.noise import _lognormal
from mkdbook.data.simulate.truth import _within_trial
from mkdbook.data.simulate.variants import VariantSettings, variant_settings

#: DEAP has 32 participants; subject numbers run from 1 to this.
MAX_SUBJECTS = 32

#: Quadrant of each block of ten videos: (valence sign, arousal sign), in the
#: order HVHA, LVHA, LVLA, HVLA. DEAP's trials are stored in video order, so a
#: trial index names the same stimulus for every subject.
_QUADRANT_SIGNS: tuple[tuple[int, int], ...] = ((1, 1), (-1, 1), (-1, -1), (1, -1))

#: Names of the independent random streams of one subject, in spawn order.
#: Append only: inserting a name would change every stream after it.
_STREAMS: tuple[str, ...] = (
    "traits", "responses", "null_ratings", "ratings", "eeg", "fingerprints", "eog", "peripheral",
    "within_trial", "emg",
)


def _subject_streams(seed: int, subject: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence([seed, subject]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def _video_means(seed: int, config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    # Subject number 0 is never a participant: its stream draws the video set
    # that all subjects of a cohort watch.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    per_quadrant = DEAP.n_trials // len(_QUADRANT_SIGNS)
    signs = np.repeat(np.array(_QUADRANT_SIGNS, dtype=float), per_quadrant, axis=0)
    spread = rng.normal(0.0, config.stimulus_spread_sd, size=(DEAP.n_trials, 2))
    valence = signs[:, 0] * config.stimulus_valence_separation + spread[:, 0]
    arousal = signs[:, 1] * config.stimulus_arousal_separation + spread[:, 1]
    return valence, arousal


def _responses(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
               config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    personal = rng.normal(0.0, config.response_sd, size=(2, DEAP.n_trials))
    return valence + personal[0], arousal + personal[1]


def _draw_traits(rng: np.random.Generator, config: SimulationConfig) -> SubjectTraits:
    c = config
    return SubjectTraits(
        # Clipped to the adult range so a rare draw cannot leave the alpha band.
        iaf_hz=float(np.clip(rng.normal(c.eeg_iaf_hz, c.eeg_iaf_sd_hz), 7.0, 13.5)),
        aperiodic_exponent=float(rng.normal(c.eeg_aperiodic_exponent, c.eeg_aperiodic_exponent_sd)),
        eeg_gain=float(_lognormal(rng, 1.0, c.eeg_gain_sd)),
        band_gains={band: float(_lognormal(rng, 1.0, c.eeg_band_gain_sd)) for band in _BAND_NAMES},
        trait_asymmetry=float(rng.normal(0.0, c.eeg_trait_asymmetry_sd)),
        asymmetry_sensitivity=float(rng.normal(1.0, c.asymmetry_sensitivity_sd)),
        rating_bias=rng.normal(0.0, c.rating_bias_sd, size=len(DEAP.rating_scales)),
        rating_noise_sd=float(_lognormal(rng, c.rating_noise_sd, c.rating_noise_subject_sd)),
        blink_rate_per_min=float(_lognormal(rng, c.eog_blink_rate_per_min, c.eog_blink_rate_subject_sd)),
        blink_amplitude_uv=float(_lognormal(rng, c.eog_blink_amplitude_uv, c.eog_blink_amplitude_sd)),
        # Blinks are mainly vertical; a few per cent show in hEOG, of either sign.
        blink_heog_fraction=float(rng.normal(0.0, 0.05)),
        saccade_rate_hz=float(_lognormal(rng, c.eog_saccade_rate_hz, c.eog_saccade_rate_subject_sd)),
        heart_rate_bpm=float(rng.normal(c.heart_rate_bpm, c.heart_rate_sd_bpm)),
        # Resting breathing rates of adults span roughly 12-20 per minute.
        respiration_hz=float(_lognormal(rng, c.respiration_hz, 0.15)),
        skin_conductance_us=float(_lognormal(rng, c.skin_conductance_us, c.skin_conductance_sd)),
        skin_temperature_c=float(rng.normal(c.skin_temperature_c, c.skin_temperature_sd_c)),
        # Drawn last, so the traits drawn before it are those of earlier versions.
        emg_gain=float(_lognormal(rng, 1.0, c.eog_emg_subject_sd)),
    )


def _ratings(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
             traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    c = config
    unexplained = rng.normal(0.0, 1.0, size=(2, DEAP.n_trials))
    dominance = (c.dominance_valence_weight * valence + c.dominance_arousal_weight * arousal
                 + np.sqrt(max(0.0, 1 - c.dominance_valence_weight ** 2 - c.dominance_arousal_weight ** 2))
                 * unexplained[0])
    liking = (c.liking_valence_weight * valence + c.liking_arousal_weight * arousal
              + np.sqrt(max(0.0, 1 - c.liking_valence_weight ** 2 - c.liking_arousal_weight ** 2))
              * unexplained[1])
    latent = np.stack([valence, arousal, dominance, liking], axis=1)
    noise = rng.normal(0.0, traits.rating_noise_sd, size=latent.shape)
    return np.clip(5.0 + c.rating_scale * latent + traits.rating_bias + noise, 1.0, 9.0)


@dataclass(frozen=True)
class _Model:
    settings: VariantSettings
    config: SimulationConfig
    streams: dict[str, np.random.Generator]
    latents: SubjectLatents
    seed: int

    @property
    def film(self) -> np.ndarray:
        """The film-locked eye events of the cohort's videos (see :func:`~.eog._film_events`)."""
        return _film_events(self.seed, self.config)


def _subject_model(subject: int, variant: str, seed: int,
                   config: SimulationConfig | None) -> _Model:
    settings = variant_settings(variant)
    subject = check_int("subject", subject, 1, MAX_SUBJECTS)
    seed = check_int("seed", seed, 0)
    config = _check_config(config)
    streams = _subject_streams(seed, subject)
    video_valence, video_arousal = _video_means(seed, config)
    signal_valence, signal_arousal = _responses(streams["responses"], video_valence, video_arousal, config)
    if settings.ratings_follow_signals:
        rated_valence, rated_arousal = signal_valence, signal_arousal
    else:
        # The same stimulus design, dealt to the trials in another order, and
        # fresh personal responses: a second state with the same distribution.
        order = streams["null_ratings"].permutation(DEAP.n_trials)
        rated_valence, rated_arousal = _responses(
            streams["null_ratings"], video_valence[order], video_arousal[order], config)
    traits = _draw_traits(streams["traits"], config)
    labels = _ratings(streams["ratings"], rated_valence, rated_arousal, traits, config)
    per_second = _within_trial(streams["within_trial"], np.stack([signal_valence, signal_arousal], axis=1),
                               config.within_trial_sd, config.within_trial_tau_s)
    latents = SubjectLatents(
        subject=subject, variant=variant, signal_valence=signal_valence,
        signal_arousal=signal_arousal, rated_valence=rated_valence, rated_arousal=rated_arousal,
        labels=labels, traits=traits, signal_per_second=per_second)
    return _Model(settings, config, streams, latents, seed)


def simulate_latents(subject: int, *, variant: str = "default", seed: int = 0,
                     config: SimulationConfig | None = None) -> SubjectLatents:
    """Return the hidden per-trial state of a simulated subject, without its signals.

    Cheap (no signal is generated) and consistent with :func:`simulate_subject`
    for the same arguments: ``simulate_latents(...).labels`` equals the
    ``labels`` that :func:`simulate_subject` returns.

    Parameters
    ----------
    subject : int
        Subject number, 1-32.
    variant : str
        A key of :data:`VARIANTS`.
    seed : int
        Non-negative cohort seed.
    config : SimulationConfig, optional
        Model parameters; the defaults when omitted.

    Returns
    -------
    SubjectLatents
    """
    return _subject_model(subject, variant, seed, config).latents
