"""A simulated DEAP cohort, written in DEAP's own file format.

Real DEAP cannot be shipped with the book (its licence forbids it), so the
chapters run by default on a cohort generated here and written exactly as
DEAP's ``data_preprocessed_python/sNN.dat`` files are: a protocol-2 pickle of
``{"data": (40, 40, 8064) float64, "labels": (40, 4) float64}``. Everything
downstream (reader, segments, models) is then the same code for real and
simulated data.

The generative model, in one paragraph. Forty "videos" fill the four quadrants
of the valence-arousal plane, ten each, as DEAP's were chosen to [1]_; every subject
responds to each video with a latent valence and arousal (the video's mean plus
a personal response). The latent state shapes the 60 s of video (never the 3 s
baseline) through physiology-sized effects: posterior-dominant alpha at the
subject's individual alpha frequency weakens with arousal, frontal alpha
asymmetry follows valence, temporal beta/gamma rise with valence and
arousal, and the blink and saccade rates of the EOG follow arousal and,
more weakly, valence. Under those rhythms lies a spatially correlated 1/f
background. Each trial also carries nuisance "fingerprints" that are constant
within it (spectral tilt, electrode gains, noise floor, residual mains, EOG
offsets): they carry no emotion, but segments of one trial share them, which is
what lets a leaky segment-level split look far better than it is. Ratings are
the latent state seen through a subject's scale use: ``5 + scale * latent +
bias + noise``, clipped to 1-9. Residual ocular potentials spread into frontal
EEG (imperfect artefact removal) and the EOG electrodes pick up frontal brain
activity, as real ones do.

Units: EEG, EOG and EMG in microvolts, as DEAP's; GSR as skin conductance in
microsiemens, temperature in degrees C; respiration and plethysmograph in
arbitrary units of about 1. The peripheral channels are plausible in shape and
timing only: this project never uses them, and DEAP's own units for them differ.

Variants (:data:`VARIANTS`) switch pathways off, to test a pipeline against a
known truth: ``"null"`` makes the ratings follow a second, independent latent
state, so no method may beat chance; ``"eeg-only-valence"`` keeps valence out
of every non-EEG channel, so an EOG-only student can learn valence only from a
teacher, never from its own input.

References
----------
.. [1] Koelstra S, et al. (2012). DEAP: A database for emotion analysis using
   physiological signals. IEEE Trans Affect Comput 3(1):18-31.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import mne
import numpy as np
from scipy import ndimage, signal
from tqdm import tqdm

from mkdbook import __version__
from mkdbook.atomic import write_atomically
from mkdbook.data.channels import (
    BASELINE_SECONDS,
    EEG_CHANNELS,
    N_SAMPLES,
    N_TRIALS,
    RATING_SCALES,
    SFREQ,
)

#: File that marks a folder as a simulated cohort and says how it was made.
MANIFEST_NAME = "mkdbook-simulated.json"
#: Written before the first subject file and removed after the manifest, so a
#: crashed run can be recognised (and resumed) rather than taken for real DEAP.
PENDING_NAME = ".mkdbook-simulated.pending"
#: DEAP has 32 participants; subject numbers run from 1 to this.
MAX_SUBJECTS = 32

#: The EEG band of DEAP's preprocessed release (Hz).
EEG_PASSBAND: tuple[float, float] = (4.0, 45.0)
#: Mains frequency where DEAP was recorded (Twente and Geneva).
LINE_FREQUENCY_HZ = 50.0

_TIMES = np.arange(N_SAMPLES) / SFREQ
_FREQS = np.fft.rfftfreq(N_SAMPLES, d=1.0 / SFREQ)

#: Quadrant of each block of ten videos: (valence sign, arousal sign), in the
#: order HVHA, LVHA, LVLA, HVLA. DEAP's trials are stored in video order, so a
#: trial index names the same stimulus for every subject.
_QUADRANT_SIGNS: tuple[tuple[int, int], ...] = ((1, 1), (-1, 1), (-1, -1), (1, -1))

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

#: Names of the independent random streams of one subject, in spawn order.
#: Append only: inserting a name would change every stream after it.
_STREAMS: tuple[str, ...] = (
    "traits", "responses", "null_ratings", "ratings", "eeg", "fingerprints", "eog", "peripheral",
)


def _signed(default: float) -> Any:
    # Effects may be negative; every other number must be >= 0.
    return field(default=default, metadata={"signed": True})


@dataclass(frozen=True)
class SimulationConfig:
    """Every parameter of the simulated cohort, with physiology-motivated defaults.

    Latent valence and arousal are in standardised units (a video quadrant
    sits about one unit from neutral). An *effect* ``e`` on a band is a change
    of natural-log power of ``e`` per latent unit during the video; an effect
    on a rate multiplies it by ``exp(e)`` per latent unit. ``*_sd`` fields
    named "(ln)" are standard deviations of a natural logarithm, so 0.1 means
    about +-10 %. The defaults come from the literature below and were not
    tuned to favour any method; the arbitrary ones say so. Four values were
    settled while checking that EEG carries clearly more emotion information
    than EOG (band-power features, logistic regression, split by trial):
    ``beta_valence_effect``, ``gamma_valence_effect``, ``eeg_gamma_rms_uv``
    and ``fingerprint_gain_sd``; no value was chosen by how a distillation
    method performs.

    Attributes
    ----------
    stimulus_valence_separation : float
        Distance of a quadrant's videos from neutral valence (1.0). DEAP chose
        its 40 videos to fill the four quadrants [Koelstra2012]_.
    stimulus_arousal_separation : float
        Same for arousal (0.8): DEAP's arousal manipulation separated the
        videos less well than its valence manipulation [Koelstra2012]_.
    stimulus_spread_sd : float
        Spread of the videos within a quadrant (0.35).
    response_sd : float
        A subject's personal deviation from a video's mean response (0.6).
    rating_scale : float
        Rating points per latent unit (1.5), so ratings spread over the
        1-9 self-assessment manikin scale with an SD near 2, as DEAP's do.
    rating_bias_sd : float
        Between-subject SD of a subject's offset on each scale (0.6 points);
        individuals use rating scales differently [Koelstra2012]_.
    rating_noise_sd : float
        Median SD of self-report noise (0.8 points): a rating is an imperfect
        report of the felt state.
    rating_noise_subject_sd : float
        Between-subject spread of that noise (0.3, ln).
    dominance_valence_weight, dominance_arousal_weight : float
        Dominance latent as a mix of valence and arousal (0.5, -0.2).
    liking_valence_weight, liking_arousal_weight : float
        Liking latent (0.7, 0.2): liking follows valence closely in DEAP.
    eeg_aperiodic_exponent : float
        Mean exponent chi of the 1/f^chi background (1.5); EEG exponents lie
        around 1-2 [Donoghue2020]_, [He2010]_.
    eeg_aperiodic_exponent_sd : float
        Between-subject SD of the exponent (0.2).
    eeg_aperiodic_rms_uv : float
        RMS of the background within 4-45 Hz (6 uV).
    eeg_spatial_length_m : float
        Length constant of the exponential fall of correlation with the
        distance between electrodes (0.05 m): volume conduction makes
        neighbouring electrodes (3-5 cm apart) share much of their signal.
    eeg_gain_sd : float
        Between-subject SD of the overall EEG amplitude (0.2, ln; skull and
        scalp differ).
    eeg_band_gain_sd : float
        Between-subject SD of each rhythm's amplitude (0.3, ln).
    eeg_theta_hz, eeg_theta_width_hz, eeg_theta_rms_uv : float
        Frontal-midline theta: centre 6 Hz, spectral SD 1 Hz, 3 uV at Fz.
    eeg_iaf_hz, eeg_iaf_sd_hz : float
        Individual alpha frequency ~ N(10, 1) Hz [Klimesch1999]_.
    eeg_alpha_width_hz, eeg_alpha_rms_uv : float
        Alpha peak SD 1 Hz; 7 uV at the posterior maximum, eyes open.
    eeg_beta_hz, eeg_beta_width_hz, eeg_beta_rms_uv : float
        Central beta: 20 Hz, SD 4 Hz, 2.5 uV.
    eeg_gamma_hz, eeg_gamma_width_hz, eeg_gamma_rms_uv : float
        Temporal low gamma: 38 Hz, SD 4 Hz, 2 uV at T7/T8 (below the 45 Hz
        edge). Lateral temporal sites carry the most high-frequency power of
        scalp EEG, part of it from temporal muscle.
    eeg_trait_asymmetry_sd : float
        Between-subject SD of resting frontal alpha asymmetry, ln(R) - ln(L)
        (0.1); trait asymmetry differs between people [Coan2004]_.
    eeg_state_sd : float
        Trial-to-trial SD of each rhythm's log power unrelated to emotion
        (0.2; vigilance and attention drift between trials).
    alpha_arousal_effect : float
        Alpha log power per unit arousal (-0.2): alpha desynchronises with
        arousal and attention [Klimesch1999]_, [Barry2007]_.
    theta_arousal_effect : float
        Theta log power per unit arousal (-0.1); DEAP found arousal
        negatively correlated with theta power [Koelstra2012]_.
    alpha_asymmetry_valence_effect : float
        Change of ln(alpha right) - ln(alpha left) per unit valence at the
        :data:`ASYMMETRY_PAIRS` (0.2): relatively greater left-frontal
        activity (less left alpha) with positive, approach-related states
        [Davidson1992]_, [Coan2004]_. The evidence is mixed and effects are
        small in large samples [Reznik2018]_; see ``asymmetry_sensitivity_sd``.
    asymmetry_sensitivity_sd : float
        Between-subject SD of a multiplier (mean 1) on the asymmetry effect
        (0.5), so some subjects show little or a reversed effect.
    beta_arousal_effect, beta_valence_effect : float
        Temporal beta log power per unit arousal (0.15) and valence (0.1).
    gamma_arousal_effect, gamma_valence_effect : float
        Temporal gamma log power per unit arousal (0.15) and valence (0.25).
        Higher beta/gamma over lateral temporal sites with positive emotion
        is among the most stable EEG emotion features [Zheng2015]_, so these
        carry most of the EEG's valence information here. The sizes are
        assumptions of plausible magnitude (a 0.25 change of log power is a
        28 % change of the rhythm's power), not measured values. For
        arousal the sign is less settled: DEAP reported negative gamma
        correlations with arousal [Koelstra2012]_; the positive default is a
        modelling choice.
    fingerprint_tilt_sd : float
        Per-trial jitter of the aperiodic exponent (0.1).
    fingerprint_gain_sd : float
        Per-trial, per-electrode gain jitter (0.05, ln): amplifier gains are
        fixed, but contact and impedance changes between trials shift the
        recorded amplitude a little.
    fingerprint_noise_floor_uv : float
        Median white electrode noise per trial and electrode (1 uV; spread
        0.3 ln).
    fingerprint_line_noise_uv : float
        Median residual 50 Hz amplitude per trial and electrode (1 uV before
        the 4-45 Hz filter, whose transition band passes 60 % of it at 50 Hz;
        spread 0.5 ln).
    fingerprint_eog_offset_uv : float
        SD of a per-trial DC offset of each EOG channel (50 uV): electrode
        polarisation; DEAP's peripheral channels were not high-passed.
    eog_blink_rate_per_min : float
        Median resting blink rate (17 per minute) [Bentivoglio1997]_.
    eog_blink_rate_subject_sd : float
        Between-subject spread of blink rate (0.35, ln).
    eog_blink_video_factor : float
        Blink rate during a film relative to rest (0.6): attention to a film
        inhibits blinking [Maffei2019]_. The value is an estimate.
    eog_blink_arousal_effect : float
        Blink rate per unit arousal (0.15, ln): blinking rises with arousal
        and anxiety [Stern1984]_, and was least inhibited by fear clips
        [Maffei2019]_.
    eog_blink_valence_effect : float
        Blink rate per unit valence (-0.1, ln): pleasant clips inhibited
        blinking most, and valence explained blink rate best [Maffei2019]_.
    eog_blink_amplitude_uv, eog_blink_amplitude_sd : float
        Median blink amplitude in vEOG (200 uV; 100-300 uV typical) and its
        spread (0.2, ln).
    eog_blink_peak_s : float
        Time from blink onset to peak (0.1 s); a blink lasts 200-400 ms.
    eog_saccade_rate_hz, eog_saccade_rate_subject_sd : float
        Saccades per second while watching video (2.0; fixations of a few
        hundred ms on dynamic scenes [Dorr2010]_) and the spread (0.2, ln).
    eog_fixation_saccade_factor : float
        Saccade rate during the baseline relative to the video (0.3): DEAP's
        baseline shows a fixation cross, where large saccades are rare.
    eog_saccade_arousal_effect, eog_saccade_valence_effect : float
        Saccade rate per unit arousal and valence (0.05 each, ln). Weak by
        design; the literature gives no firm value (an assumption).
    eog_uv_per_degree : float
        EOG per degree of eye rotation (15 uV; 5-20 uV typical).
    eog_gaze_sd_deg, eog_vertical_gaze_sd_deg : float
        Spread of fixation positions on the screen (5 and 3 degrees).
    eog_drift_rms_uv : float
        Slow electrode drift with a 1/f^2 spectrum (30 uV RMS).
    eog_noise_rms_uv : float
        White amplifier and muscle noise (3 uV).
    eog_brain_pickup : float
        Fraction of frontal brain activity the EOG derivations record (0.3):
        vEOG sees Fp1 (electrodes around the left eye), hEOG sees F8 - F7.
    eeg_residual_eog : float
        Ocular potentials left in the EEG after DEAP's artefact removal, as a
        fraction of the propagation at Fp1/Fp2 (0.05). Raw propagation factors
        are several tenths at frontopolar sites [Croft2000]_; correction
        removes most of it.
    heart_rate_bpm, heart_rate_sd_bpm, heart_rate_arousal_bpm : float
        Resting heart rate ~ N(70, 8) bpm, +1.5 bpm per unit arousal.
    respiration_hz, respiration_arousal_effect : float
        Breathing at 0.25 Hz (15 per minute), 0.05 faster (ln) per unit
        arousal.
    skin_conductance_us, skin_conductance_sd : float
        Median skin conductance level (5 uS) and its spread (0.4, ln).
    scr_rate_per_min, scr_arousal_effect, scr_amplitude_us : float
        Non-specific skin conductance responses: 2 per minute at rest, 0.4
        more (ln) per unit arousal, median 0.2 uS [Dawson2007]_.
    zemg_tone_uv, zemg_burst_rate_per_min, zemg_valence_effect, zemg_burst_uv : float
        Zygomaticus EMG: 2 uV tone; smile-like bursts (3 per minute, 15 uV)
        whose rate rises with valence (0.5, ln) [Larsen2003]_.
    temg_tone_uv, temg_arousal_effect : float
        Trapezius EMG tone (3 uV), 0.1 (ln) higher per unit arousal.
    skin_temperature_c, skin_temperature_sd_c : float
        Skin temperature ~ N(32, 1) degrees C.

    References
    ----------
    .. [Koelstra2012] Koelstra S, et al. (2012). DEAP: A database for emotion
       analysis using physiological signals. IEEE Trans Affect Comput 3:18-31.
    .. [Donoghue2020] Donoghue T, et al. (2020). Parameterizing neural power
       spectra into periodic and aperiodic components. Nat Neurosci 23:1655-65.
    .. [He2010] He BJ, Zempel JM, Snyder AZ, Raichle ME (2010). The temporal
       structures and functional significance of scale-free brain activity.
       Neuron 66:353-369.
    .. [Klimesch1999] Klimesch W (1999). EEG alpha and theta oscillations
       reflect cognitive and memory performance. Brain Res Rev 29:169-195.
    .. [Barry2007] Barry RJ, Clarke AR, Johnstone SJ, Magee CA, Rushby JA
       (2007). EEG differences between eyes-closed and eyes-open resting
       conditions. Clin Neurophysiol 118:2765-2773.
    .. [Davidson1992] Davidson RJ (1992). Anterior cerebral asymmetry and the
       nature of emotion. Brain Cogn 20:125-151.
    .. [Coan2004] Coan JA, Allen JJB (2004). Frontal EEG asymmetry as a
       moderator and mediator of emotion. Biol Psychol 67:7-49.
    .. [Reznik2018] Reznik SJ, Allen JJB (2018). Frontal asymmetry as a
       mediator and moderator of emotion: an updated review.
       Psychophysiology 55:e12965.
    .. [Zheng2015] Zheng W-L, Lu B-L (2015). Investigating critical frequency
       bands and channels for EEG-based emotion recognition with deep neural
       networks. IEEE Trans Auton Ment Dev 7:162-175.
    .. [Bentivoglio1997] Bentivoglio AR, et al. (1997). Analysis of blink
       rate patterns in normal subjects. Mov Disord 12:1028-1034.
    .. [Stern1984] Stern JA, Walrath LC, Goldstein R (1984). The endogenous
       eyeblink. Psychophysiology 21:22-33.
    .. [Maffei2019] Maffei A, Angrilli A (2019). Spontaneous blink rate as an
       index of attention and emotion during film clips viewing. Physiol
       Behav 204:256-263.
    .. [Dorr2010] Dorr M, Martinetz T, Gegenfurtner KR, Barth E (2010).
       Variability of eye movements when viewing dynamic natural scenes.
       J Vis 10(10):28.
    .. [Croft2000] Croft RJ, Barry RJ (2000). Removal of ocular artifact from
       the EEG: a review. Neurophysiol Clin 30:5-19.
    .. [Dawson2007] Dawson ME, Schell AM, Filion DL (2007). The electrodermal
       system. In Handbook of Psychophysiology, 3rd ed., 159-181.
    .. [Larsen2003] Larsen JT, Norris CJ, Cacioppo JT (2003). Effects of
       positive and negative affect on electromyographic activity over
       zygomaticus major and corrugator supercilii. Psychophysiology 40:776-785.
    """

    stimulus_valence_separation: float = 1.0
    stimulus_arousal_separation: float = 0.8
    stimulus_spread_sd: float = 0.35
    response_sd: float = 0.6
    rating_scale: float = 1.5
    rating_bias_sd: float = 0.6
    rating_noise_sd: float = 0.8
    rating_noise_subject_sd: float = 0.3
    dominance_valence_weight: float = _signed(0.5)
    dominance_arousal_weight: float = _signed(-0.2)
    liking_valence_weight: float = _signed(0.7)
    liking_arousal_weight: float = _signed(0.2)

    eeg_aperiodic_exponent: float = 1.5
    eeg_aperiodic_exponent_sd: float = 0.2
    eeg_aperiodic_rms_uv: float = 6.0
    eeg_spatial_length_m: float = 0.05
    eeg_gain_sd: float = 0.2
    eeg_band_gain_sd: float = 0.3
    eeg_theta_hz: float = 6.0
    eeg_theta_width_hz: float = 1.0
    eeg_theta_rms_uv: float = 3.0
    eeg_iaf_hz: float = 10.0
    eeg_iaf_sd_hz: float = 1.0
    eeg_alpha_width_hz: float = 1.0
    eeg_alpha_rms_uv: float = 7.0
    eeg_beta_hz: float = 20.0
    eeg_beta_width_hz: float = 4.0
    eeg_beta_rms_uv: float = 2.5
    eeg_gamma_hz: float = 38.0
    eeg_gamma_width_hz: float = 4.0
    eeg_gamma_rms_uv: float = 2.0
    eeg_trait_asymmetry_sd: float = 0.1
    eeg_state_sd: float = 0.2

    alpha_arousal_effect: float = _signed(-0.2)
    theta_arousal_effect: float = _signed(-0.1)
    alpha_asymmetry_valence_effect: float = _signed(0.2)
    asymmetry_sensitivity_sd: float = 0.5
    beta_arousal_effect: float = _signed(0.15)
    beta_valence_effect: float = _signed(0.1)
    gamma_arousal_effect: float = _signed(0.15)
    gamma_valence_effect: float = _signed(0.25)

    fingerprint_tilt_sd: float = 0.1
    fingerprint_gain_sd: float = 0.05
    fingerprint_noise_floor_uv: float = 1.0
    fingerprint_line_noise_uv: float = 1.0
    fingerprint_eog_offset_uv: float = 50.0

    eog_blink_rate_per_min: float = 17.0
    eog_blink_rate_subject_sd: float = 0.35
    eog_blink_video_factor: float = 0.6
    eog_blink_arousal_effect: float = _signed(0.15)
    eog_blink_valence_effect: float = _signed(-0.1)
    eog_blink_amplitude_uv: float = 200.0
    eog_blink_amplitude_sd: float = 0.2
    eog_blink_peak_s: float = 0.1
    eog_saccade_rate_hz: float = 2.0
    eog_saccade_rate_subject_sd: float = 0.2
    eog_fixation_saccade_factor: float = 0.3
    eog_saccade_arousal_effect: float = _signed(0.05)
    eog_saccade_valence_effect: float = _signed(0.05)
    eog_uv_per_degree: float = 15.0
    eog_gaze_sd_deg: float = 5.0
    eog_vertical_gaze_sd_deg: float = 3.0
    eog_drift_rms_uv: float = 30.0
    eog_noise_rms_uv: float = 3.0
    eog_brain_pickup: float = 0.3
    eeg_residual_eog: float = 0.05

    heart_rate_bpm: float = 70.0
    heart_rate_sd_bpm: float = 8.0
    heart_rate_arousal_bpm: float = _signed(1.5)
    respiration_hz: float = 0.25
    respiration_arousal_effect: float = _signed(0.05)
    skin_conductance_us: float = 5.0
    skin_conductance_sd: float = 0.4
    scr_rate_per_min: float = 2.0
    scr_arousal_effect: float = _signed(0.4)
    scr_amplitude_us: float = 0.2
    zemg_tone_uv: float = 2.0
    zemg_burst_rate_per_min: float = 3.0
    zemg_valence_effect: float = _signed(0.5)
    zemg_burst_uv: float = 15.0
    temg_tone_uv: float = 3.0
    temg_arousal_effect: float = _signed(0.1)
    skin_temperature_c: float = 32.0
    skin_temperature_sd_c: float = 1.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"SimulationConfig.{spec.name} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ValueError(f"SimulationConfig.{spec.name} must be finite, got {value!r}")
            if not spec.metadata.get("signed") and value < 0:
                raise ValueError(f"SimulationConfig.{spec.name} must be >= 0, got {value!r}")
        if self.eeg_iaf_hz <= 0 or self.eeg_spatial_length_m <= 0 or self.eog_blink_peak_s <= 0:
            raise ValueError("SimulationConfig: eeg_iaf_hz, eeg_spatial_length_m and "
                             "eog_blink_peak_s must be > 0")


@dataclass(frozen=True)
class VariantSettings:
    """Which pathways of the generative model a cohort variant keeps.

    Attributes
    ----------
    name : str
        The variant's name, a key of :data:`VARIANTS`.
    ratings_follow_signals : bool
        ``True``: ratings report the latent state that drives the signals.
        ``False``: they report a second, independent state drawn the same way,
        so the labels carry no information about any signal.
    valence_outside_eeg : bool
        ``True``: valence also reaches the EOG (blink and saccade rates, and
        brain activity the EOG electrodes pick up) and the peripheral
        channels. ``False``: those channels do not depend on valence at all.
    description : str
        One line for figure captions.
    """

    name: str
    ratings_follow_signals: bool
    valence_outside_eeg: bool
    description: str


#: The cohort variants, by name.
VARIANTS: dict[str, VariantSettings] = {
    "default": VariantSettings(
        "default", ratings_follow_signals=True, valence_outside_eeg=True,
        description="ratings follow the state that drives every signal"),
    "null": VariantSettings(
        "null", ratings_follow_signals=False, valence_outside_eeg=True,
        description="ratings independent of every signal (chance is the truth)"),
    "eeg-only-valence": VariantSettings(
        "eeg-only-valence", ratings_follow_signals=True, valence_outside_eeg=False,
        description="valence reaches the EEG only; EOG and peripherals carry none"),
}


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
        Offset on each rating scale, in :data:`~mkdbook.data.channels.RATING_SCALES` order.
    rating_noise_sd : float
        SD of this subject's self-report noise.
    blink_rate_per_min, blink_amplitude_uv, blink_heog_fraction : float
        Resting blink rate, median blink amplitude in vEOG, and the share of a
        blink seen in hEOG.
    saccade_rate_hz : float
        Saccade rate while watching a video.
    heart_rate_bpm, respiration_hz, skin_conductance_us, skin_temperature_c : float
        Resting peripheral levels.
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
    """

    subject: int
    variant: str
    signal_valence: np.ndarray
    signal_arousal: np.ndarray
    rated_valence: np.ndarray
    rated_arousal: np.ndarray
    labels: np.ndarray
    traits: SubjectTraits


# ---------------------------------------------------------------- validation


def variant_settings(variant: str) -> VariantSettings:
    """Return the settings of a cohort variant.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of :data:`VARIANTS`; the message lists them.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[variant]


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {allowed}, got {value}")
    return int(value)


def _check_config(config: SimulationConfig | None) -> SimulationConfig:
    if config is None:
        return SimulationConfig()
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}")
    return config


# ---------------------------------------------------------------- random streams


def _subject_streams(seed: int, subject: int) -> dict[str, np.random.Generator]:
    children = np.random.SeedSequence([seed, subject]).spawn(len(_STREAMS))
    return {name: np.random.default_rng(child) for name, child in zip(_STREAMS, children)}


def _video_means(seed: int, config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    # Subject number 0 is never a participant: its stream draws the video set
    # that all subjects of a cohort watch.
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    per_quadrant = N_TRIALS // len(_QUADRANT_SIGNS)
    signs = np.repeat(np.array(_QUADRANT_SIGNS, dtype=float), per_quadrant, axis=0)
    spread = rng.normal(0.0, config.stimulus_spread_sd, size=(N_TRIALS, 2))
    valence = signs[:, 0] * config.stimulus_valence_separation + spread[:, 0]
    arousal = signs[:, 1] * config.stimulus_arousal_separation + spread[:, 1]
    return valence, arousal


def _responses(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
               config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    personal = rng.normal(0.0, config.response_sd, size=(2, N_TRIALS))
    return valence + personal[0], arousal + personal[1]


def _lognormal(rng: np.random.Generator, median: float, sd: float, size=None) -> np.ndarray | float:
    return median * np.exp(rng.normal(0.0, sd, size=size))


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
        rating_bias=rng.normal(0.0, c.rating_bias_sd, size=len(RATING_SCALES)),
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
    )


def _ratings(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
             traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    c = config
    unexplained = rng.normal(0.0, 1.0, size=(2, N_TRIALS))
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


def _subject_model(subject: int, variant: str, seed: int,
                   config: SimulationConfig | None) -> _Model:
    settings = variant_settings(variant)
    subject = _check_int("subject", subject, 1, MAX_SUBJECTS)
    seed = _check_int("seed", seed, 0)
    config = _check_config(config)
    streams = _subject_streams(seed, subject)
    video_valence, video_arousal = _video_means(seed, config)
    signal_valence, signal_arousal = _responses(streams["responses"], video_valence, video_arousal, config)
    if settings.ratings_follow_signals:
        rated_valence, rated_arousal = signal_valence, signal_arousal
    else:
        # The same stimulus design, dealt to the trials in another order, and
        # fresh personal responses: a second state with the same distribution.
        order = streams["null_ratings"].permutation(N_TRIALS)
        rated_valence, rated_arousal = _responses(
            streams["null_ratings"], video_valence[order], video_arousal[order], config)
    traits = _draw_traits(streams["traits"], config)
    labels = _ratings(streams["ratings"], rated_valence, rated_arousal, traits, config)
    latents = SubjectLatents(
        subject=subject, variant=variant, signal_valence=signal_valence,
        signal_arousal=signal_arousal, rated_valence=rated_valence, rated_arousal=rated_arousal,
        labels=labels, traits=traits)
    return _Model(settings, config, streams, latents)


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


# ---------------------------------------------------------------- coloured noise


@dataclass(frozen=True)
class _Spectrum:
    """A random spectrum stored only over the bins where it has power (``support``)."""

    support: slice
    values: np.ndarray

    def scattered(self, leading: tuple = (...,)) -> np.ndarray:
        """The full rfft spectrum (zeros off the support) of the series picked by ``leading``."""
        values = self.values[leading]
        full = np.zeros(values.shape[:-1] + (_FREQS.size,), dtype=complex)
        full[..., self.support] = values
        return full


def _random_spectrum(rng: np.random.Generator, amplitude: np.ndarray, leading_shape: tuple[int, ...],
                     mixing: np.ndarray | None = None) -> _Spectrum:
    """Random complex spectrum with the given amplitude, optionally mixed across channels.

    Only frequencies where some amplitude is non-zero are drawn, which keeps
    narrow rhythms cheap. With ``mixing`` (channels x channels), axis -2 is
    channels and the draws are mixed before the amplitude is applied, so every
    frequency has the spatial correlation ``mixing @ mixing.T``. The expected
    variance of a series is ``4 * sum(amplitude**2) / N**2`` (see
    :func:`_amplitude_for_rms`).
    """
    nonzero = np.flatnonzero(np.any(np.reshape(amplitude, (-1, _FREQS.size)) > 0, axis=0))
    support = slice(nonzero[0], nonzero[-1] + 1)
    draws = rng.standard_normal(leading_shape + (support.stop - support.start, 2))
    if mixing is not None:
        draws = np.moveaxis(np.tensordot(mixing, draws, axes=([1], [-3])), 0, -3)
    values = np.ascontiguousarray(draws).view(complex)[..., 0] * amplitude[..., support]
    return _Spectrum(support, values)


def _to_series(spectrum: np.ndarray) -> np.ndarray:
    return np.fft.irfft(spectrum, n=N_SAMPLES, axis=-1)


def _noise_with_spectrum(rng: np.random.Generator, amplitude: np.ndarray,
                         leading_shape: tuple[int, ...]) -> np.ndarray:
    """Gaussian series whose amplitude spectrum is ``amplitude`` (broadcast over leading axes)."""
    return _to_series(_random_spectrum(rng, amplitude, leading_shape).scattered())


def _amplitude_for_rms(shape: np.ndarray, rms: float, band: tuple[float, float] | None = None) -> np.ndarray:
    """Scale a spectral shape so the series' expected RMS within ``band`` is ``rms``."""
    inside = np.ones(_FREQS.size, bool) if band is None else (_FREQS >= band[0]) & (_FREQS <= band[1])
    power = np.sum(shape[..., inside] ** 2, axis=-1, keepdims=True)
    return shape * rms * N_SAMPLES / (2.0 * np.sqrt(power))


def _peak_shape(centre_hz: float, width_hz: float) -> np.ndarray:
    power = np.exp(-0.5 * ((_FREQS - centre_hz) / width_hz) ** 2)
    # Bins beyond three widths hold 0.3 % of the power: not drawn at all.
    return np.where(np.abs(_FREQS - centre_hz) <= 3 * width_hz, np.sqrt(power), 0.0)


# ---------------------------------------------------------------- EEG


_BAND_NAMES: tuple[str, ...] = ("theta", "alpha", "beta", "gamma")
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
        In :data:`~mkdbook.data.channels.EEG_CHANNELS` order.
    """
    name = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"
    positions = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return np.array([positions[channel] for channel in EEG_CHANNELS])


def _distances() -> np.ndarray:
    xyz = electrode_positions()
    return np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)


def _spatial_mixing(length_m: float) -> np.ndarray:
    # Cholesky factor of an exponential covariance: mixing unit-variance
    # independent series with it gives correlation exp(-distance / length).
    return np.linalg.cholesky(np.exp(-_distances() / length_m))


def _topography(foci: tuple[str, ...], width_m: float, floor: float) -> np.ndarray:
    nearest = _distances()[:, [EEG_CHANNELS.index(name) for name in foci]].min(axis=1)
    return floor + (1.0 - floor) * np.exp(-0.5 * (nearest / width_m) ** 2)


def _asymmetry_sides() -> np.ndarray:
    side = np.zeros(len(EEG_CHANNELS))
    for right, left in ASYMMETRY_PAIRS:
        side[EEG_CHANNELS.index(right)] = 1.0
        side[EEG_CHANNELS.index(left)] = -1.0
    return side


def _video_ramp() -> np.ndarray:
    # The film's effect builds up over its first second (raised cosine), so
    # the 3-s baseline carries none of it and no step is introduced.
    ramp = np.clip((_TIMES - BASELINE_SECONDS) / 1.0, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * ramp)


def _band_log_power_change(band: str, valence: np.ndarray, arousal: np.ndarray,
                           traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    """Change of each trial's, each electrode's log power of ``band`` during the video."""
    c = config
    v, a = valence[:, None], arousal[:, None]
    temporal = _topography(_TEMPORAL_FOCI, 0.05, 0.0)[None, :]
    if band == "theta":
        return np.broadcast_to(c.theta_arousal_effect * a, (N_TRIALS, len(EEG_CHANNELS)))
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
    shape = (N_TRIALS, len(EEG_CHANNELS))
    tilt = fingerprint_rng.normal(0.0, config.fingerprint_tilt_sd, size=N_TRIALS)
    state = fingerprint_rng.normal(0.0, config.eeg_state_sd, size=(len(_BAND_NAMES), N_TRIALS))
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

    Every rhythm is a unit series times an amplitude that moves from its
    baseline value to its video value along :func:`_video_ramp`. That sum is
    linear in the amplitudes, so it equals a cross-fade between two whole
    signals, one with every baseline amplitude and one with every video
    amplitude: two inverse FFTs instead of one per rhythm.
    """
    at_baseline = sources.spectra["background"].scattered((slice(None), channels))
    in_video = at_baseline.copy()
    for band in _BAND_NAMES:
        base = sources.baseline[band][:, channels]
        change = _band_log_power_change(band, valence, arousal, traits, config)[:, channels]
        spectrum = sources.spectra[band]
        values = spectrum.values[:, channels]
        at_baseline[..., spectrum.support] += base[..., None] * values
        in_video[..., spectrum.support] += (base * np.exp(0.5 * change))[..., None] * values
    activity = _to_series(in_video)
    ramp = _video_ramp()
    fading = slice(0, np.flatnonzero(ramp < 1.0)[-1] + 1)   # baseline and the ramp itself
    activity[..., fading] *= ramp[fading]
    activity[..., fading] += (1.0 - ramp[fading]) * _to_series(at_baseline)[..., fading]
    activity *= traits.eeg_gain
    return activity


def _recording_nuisance(rng: np.random.Generator, config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-trial electrode noise floor plus residual mains, and per-trial electrode gains."""
    shape = (N_TRIALS, len(EEG_CHANNELS))
    floor = _lognormal(rng, config.fingerprint_noise_floor_uv, 0.3, size=shape)
    line = _lognormal(rng, config.fingerprint_line_noise_uv, 0.5, size=shape)
    phase = rng.uniform(0.0, 2 * np.pi, size=shape)
    gain = _lognormal(rng, 1.0, config.fingerprint_gain_sd, size=shape)
    omega_t = 2 * np.pi * LINE_FREQUENCY_HZ * _TIMES
    nuisance = rng.standard_normal(shape + (N_SAMPLES,))
    nuisance *= floor[..., None]
    nuisance += np.multiply.outer(line * np.cos(phase), np.cos(omega_t))
    nuisance -= np.multiply.outer(line * np.sin(phase), np.sin(omega_t))
    return nuisance, gain


def _ocular_residual(ocular: np.ndarray, config: SimulationConfig) -> np.ndarray:
    """What DEAP's artefact removal left of the ocular potentials in each EEG channel."""
    weights = np.zeros((len(EEG_CHANNELS), 2))
    for name, (horizontal, vertical) in _OCULAR_PROPAGATION.items():
        weights[EEG_CHANNELS.index(name)] = (horizontal, vertical)
    return config.eeg_residual_eog * np.einsum("ck,tks->tcs", weights, ocular)


def _release_preprocessing(eeg: np.ndarray) -> np.ndarray:
    """Average reference and 4-45 Hz band-pass, as in DEAP's preprocessed release (in place)."""
    eeg -= eeg.mean(axis=1, keepdims=True)
    flat = eeg.reshape(-1, N_SAMPLES)
    filtered = mne.filter.filter_data(flat, SFREQ, *EEG_PASSBAND, copy=False, verbose=False)
    return filtered.reshape(eeg.shape)


# ---------------------------------------------------------------- EOG


def _rate_over_time(baseline_rate: float, video_rates: np.ndarray) -> np.ndarray:
    """Events per sample, per trial: the resting rate before the video, then each trial's rate."""
    rate = np.where(_TIMES < BASELINE_SECONDS, baseline_rate, video_rates[:, None])
    return rate / SFREQ


def _events(rng: np.random.Generator, per_sample: np.ndarray) -> np.ndarray:
    # One uniform draw per sample whatever the rate, so that changing a rate
    # never shifts the random numbers of anything drawn after it.
    return rng.uniform(size=per_sample.shape) < per_sample


def _blink_kernel(peak_s: float) -> np.ndarray:
    # A gamma-shaped lid potential: fast rise to the peak, slower return;
    # with a 0.1 s peak it is back under 10 % of the peak by ~0.3 s.
    t = np.arange(int(5 * peak_s * SFREQ)) / SFREQ
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
    lid = signal.oaconvolve(blinks * sizes, _blink_kernel(c.eog_blink_peak_s)[None, :], axes=1)[:, :N_SAMPLES]

    saccade_video = traits.saccade_rate_hz * np.exp(
        c.eog_saccade_arousal_effect * arousal + c.eog_saccade_valence_effect * valence)
    saccades = _events(rng, _rate_over_time(traits.saccade_rate_hz * c.eog_fixation_saccade_factor,
                                            saccade_video))
    horizontal = c.eog_uv_per_degree * _gaze(rng, saccades, c.eog_gaze_sd_deg)
    vertical = c.eog_uv_per_degree * _gaze(rng, saccades, c.eog_vertical_gaze_sd_deg)
    ocular = np.stack([horizontal + traits.blink_heog_fraction * lid, vertical + lid], axis=1)

    drift_shape = 1.0 / np.hypot(_FREQS, 0.02)
    drift_shape[0] = 0.0
    drift = _noise_with_spectrum(rng, _amplitude_for_rms(drift_shape, c.eog_drift_rms_uv), (N_TRIALS, 2))
    noise = rng.normal(0.0, c.eog_noise_rms_uv, size=(N_TRIALS, 2, N_SAMPLES))
    pickup = c.eog_brain_pickup * brain_frontal
    gain = _lognormal(fingerprint_rng, 1.0, c.fingerprint_gain_sd, size=(N_TRIALS, 2, 1))
    offset = fingerprint_rng.normal(0.0, c.fingerprint_eog_offset_uv, size=(N_TRIALS, 2, 1))
    return ocular, gain * (ocular + pickup + drift + noise) + offset


def _frontal_pickup(brain: np.ndarray) -> np.ndarray:
    """Brain activity seen by the EOG derivations: hEOG ~ F8 - F7, vEOG ~ Fp1."""
    index = {name: EEG_CHANNELS.index(name) for name in ("F7", "F8", "Fp1")}
    return np.stack([brain[:, index["F8"]] - brain[:, index["F7"]], brain[:, index["Fp1"]]], axis=1)


# ---------------------------------------------------------------- peripheral


def _bursts(rng: np.random.Generator, per_sample: np.ndarray, amplitude: float,
            duration_s: float) -> np.ndarray:
    """Hann-shaped amplitude bursts at random onsets, sizes spread +-30 % around ``amplitude``."""
    onsets = _events(rng, per_sample) * _lognormal(rng, amplitude, 0.3, size=per_sample.shape)
    window = signal.windows.hann(int(duration_s * SFREQ))
    return signal.oaconvolve(onsets, window[None, :], axes=1)[:, :N_SAMPLES]


def _slow_wander(rng: np.random.Generator, rms: float, cutoff_hz: float) -> np.ndarray:
    shape = np.where((_FREQS > 0) & (_FREQS <= cutoff_hz), 1.0, 0.0)
    return _noise_with_spectrum(rng, _amplitude_for_rms(shape, rms), (N_TRIALS,))


def _video_only(values: np.ndarray) -> np.ndarray:
    """Per-trial values as a time course that is zero during the baseline."""
    return values[:, None] * _video_ramp()[None, :]


def _facial_and_neck_emg(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
                         config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Zygomaticus EMG (tone plus smile-like bursts) and trapezius EMG (tone)."""
    c = config
    shape = (N_TRIALS, N_SAMPLES)
    smile_rate = c.zemg_burst_rate_per_min * np.exp(c.zemg_valence_effect * valence)
    smiles = _bursts(rng, _rate_over_time(c.zemg_burst_rate_per_min / 60, smile_rate / 60),
                     c.zemg_burst_uv, duration_s=1.5)
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
    t = np.arange(int(20 * SFREQ)) / SFREQ
    response = np.exp(-t / 3.0) - np.exp(-t / 0.7)
    responses = signal.oaconvolve(onsets * sizes, (response / response.max())[None, :], axes=1)[:, :N_SAMPLES]
    level = traits.skin_conductance_us * np.exp(rng.normal(0.0, 0.1, size=(N_TRIALS, 1)))
    return level + responses + _slow_wander(rng, 0.1, 0.02)


def _respiration_and_pulse(rng: np.random.Generator, arousal: np.ndarray, traits: SubjectTraits,
                           config: SimulationConfig) -> tuple[np.ndarray, np.ndarray]:
    """Respiration belt and finger plethysmograph (arbitrary units), both faster with arousal."""
    c = config
    breathing_hz = traits.respiration_hz * np.exp(_video_only(c.respiration_arousal_effect * arousal)
                                                  + _slow_wander(rng, 0.05, 0.05))
    breath = 2 * np.pi * np.cumsum(breathing_hz, axis=1) / SFREQ + rng.uniform(0, 2 * np.pi, (N_TRIALS, 1))
    respiration = np.sin(breath) + 0.15 * np.sin(2 * breath) + _slow_wander(rng, 0.2, 0.02)
    # Heart rate rises with arousal and by ~3 bpm with each inspiration (sinus arrhythmia).
    heart_hz = (traits.heart_rate_bpm + _video_only(c.heart_rate_arousal_bpm * arousal)
                + 3.0 * np.sin(breath)) / 60.0
    beat = 2 * np.pi * np.cumsum(heart_hz, axis=1) / SFREQ + rng.uniform(0, 2 * np.pi, (N_TRIALS, 1))
    # Three harmonics give the pulse wave its steep rise and dicrotic shoulder.
    pulse = np.cos(beat) + 0.4 * np.cos(2 * beat - 0.6) + 0.15 * np.cos(3 * beat - 1.2)
    plethysmograph = pulse * (1 + 0.1 * np.sin(breath)) + _slow_wander(rng, 0.3, 0.1)
    return respiration, plethysmograph


def _skin_temperature(rng: np.random.Generator, traits: SubjectTraits) -> np.ndarray:
    """Skin temperature (degrees C): a per-trial level and a slow drift of a few hundredths per minute."""
    level = traits.skin_temperature_c + rng.normal(0.0, 0.1, size=(N_TRIALS, 1))
    drift_per_s = rng.normal(0.0, 0.05 / 60, size=(N_TRIALS, 1))
    return level + drift_per_s * _TIMES[None, :] + 0.005 * rng.standard_normal((N_TRIALS, N_SAMPLES))


def _peripheral(rng: np.random.Generator, valence: np.ndarray, arousal: np.ndarray,
                traits: SubjectTraits, config: SimulationConfig) -> np.ndarray:
    """zEMG, tEMG, GSR, respiration, plethysmograph and temperature, (trials, 6, samples)."""
    zygomaticus, trapezius = _facial_and_neck_emg(rng, valence, arousal, config)
    respiration, plethysmograph = _respiration_and_pulse(rng, arousal, traits, config)
    return np.stack([zygomaticus, trapezius, _skin_conductance(rng, arousal, traits, config),
                     respiration, plethysmograph, _skin_temperature(rng, traits)], axis=1)


# ---------------------------------------------------------------- one subject


def _simulate_signals(model: _Model) -> np.ndarray:
    settings, config, streams, latents = model.settings, model.config, model.streams, model.latents
    traits = latents.traits
    valence, arousal = latents.signal_valence, latents.signal_arousal
    no_valence = np.zeros_like(valence)
    valence_elsewhere = valence if settings.valence_outside_eeg else no_valence

    sources = _draw_brain_sources(streams["eeg"], streams["fingerprints"], traits, config)
    brain = _brain_activity(sources, valence, arousal, traits, config)
    if settings.valence_outside_eeg:
        brain_seen_by_eog = _frontal_pickup(brain)
    else:
        # The EOG electrodes see the same frontal rhythms, but as they would be
        # without valence: the pathway stays, its valence content does not.
        frontal = [EEG_CHANNELS.index(name) for name in ("F7", "F8", "Fp1")]
        neutral = _brain_activity(sources, no_valence, arousal, traits, config, frontal)
        brain_seen_by_eog = np.stack([neutral[:, 1] - neutral[:, 0], neutral[:, 2]], axis=1)

    ocular, eog = _eog(streams["eog"], streams["fingerprints"], valence_elsewhere, arousal,
                       brain_seen_by_eog, traits, config)
    nuisance, electrode_gain = _recording_nuisance(streams["fingerprints"], config)
    # In place from here on: the brain activity becomes what the electrodes record.
    eeg = brain
    eeg += nuisance
    eeg += _ocular_residual(ocular, config)
    eeg *= electrode_gain[..., None]
    eeg = _release_preprocessing(eeg)
    peripheral = _peripheral(streams["peripheral"], valence_elsewhere, arousal, traits, config)
    # hEOG and vEOG follow the EEG, then the other peripheral channels: DEAP's layout.
    return np.concatenate([eeg, eog, peripheral], axis=1)


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
        A key of :data:`VARIANTS`: ``"default"``, ``"null"`` or ``"eeg-only-valence"``.
    seed : int
        Non-negative cohort seed.
    config : SimulationConfig, optional
        Model parameters; the defaults when omitted.

    Returns
    -------
    dict
        ``"data"``: float64 array (40 trials, 40 channels, 8064 samples) in
        microvolts (EEG, EOG, EMG) or the units given in the module notes;
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


# ---------------------------------------------------------------- cohort on disk


def _identity(variant: str, seed: int, config: SimulationConfig) -> dict:
    """What makes two cohorts the same cohort (the number of subjects aside)."""
    described = {"variant": variant, "seed": seed, "config": asdict(config), "package_version": __version__}
    # Through JSON so a manifest read back compares equal (tuples become lists).
    return json.loads(json.dumps(described))


def _write_json(path: Path, content: dict) -> None:
    write_atomically(path, lambda stream: stream.write(json.dumps(content, indent=1).encode()))


def _write_subject_file(path: Path, recording: dict[str, np.ndarray]) -> None:
    # Protocol 2 is what DEAP's Python-2 pickles use; they load with encoding="latin1".
    write_atomically(path, lambda stream: pickle.dump(recording, stream, protocol=2))


def _check_folder(folder: Path, identity: dict, n_subjects: int) -> None:
    """Refuse to write into a folder that holds another cohort or data we did not write."""
    for marker in (MANIFEST_NAME, PENDING_NAME):
        path = folder / marker
        if path.is_file():
            existing = json.loads(path.read_text())
            found = {key: existing.get(key) for key in identity}
            if found != identity:
                differing = sorted(key for key in identity if found[key] != identity[key])
                raise ValueError(
                    f"{folder} holds a simulated cohort with a different {' and '.join(differing)}; "
                    "refusing to mix cohorts: choose another folder or delete it")
            break
    else:
        if any(folder.glob("s[0-9][0-9].dat")):
            raise ValueError(f"{folder} holds sNN.dat files but no {MANIFEST_NAME} (real DEAP?); "
                             "refusing to overwrite them: choose another folder")
    beyond = sorted(p.name for p in folder.glob("s[0-9][0-9].dat") if int(p.name[1:3]) > n_subjects)
    if beyond:
        raise ValueError(f"{folder} already holds {', '.join(beyond)}, beyond n_subjects={n_subjects}; "
                         "a folder must hold one cohort: choose another folder or delete it")


def _latents_record(latents: SubjectLatents) -> dict:
    return {
        "signal_valence": latents.signal_valence.tolist(),
        "signal_arousal": latents.signal_arousal.tolist(),
        "rated_valence": latents.rated_valence.tolist(),
        "rated_arousal": latents.rated_arousal.tolist(),
        "iaf_hz": latents.traits.iaf_hz,
    }


def simulate_cohort(out_dir: Path | str, *, n_subjects: int = 32, variant: str = "default",
                    seed: int = 0, config: SimulationConfig | None = None,
                    progress: bool = True) -> list[Path]:
    """Write a simulated cohort as ``s01.dat`` ... ``sNN.dat`` plus a manifest.

    Every file is written to a temporary name and renamed when complete, so an
    interrupted run never leaves a partial ``sNN.dat``; it leaves a marker
    (:data:`PENDING_NAME`) that lets the same call finish the job later. The
    manifest (:data:`MANIFEST_NAME`) is written last, so it marks a complete
    cohort, and records the variant, seed,
    number of subjects, every configuration value, the package version and
    each subject's per-trial latent state, so a figure can always say which
    data it used. Running again regenerates the files (identically).

    Parameters
    ----------
    out_dir : path-like
        Folder to write into; created if missing.
    n_subjects : int
        Number of subjects, 1-32 (``s01`` to ``sNN``).
    variant : str
        A key of :data:`VARIANTS`.
    seed : int
        Non-negative cohort seed.
    config : SimulationConfig, optional
        Model parameters; the defaults when omitted.
    progress : bool
        Show a progress bar on standard error.

    Returns
    -------
    list of Path
        The subject files, in subject order.

    Raises
    ------
    ValueError
        If an argument is out of range, or ``out_dir`` already holds a cohort
        made with another variant, seed, configuration or package version,
        subject files beyond ``n_subjects``, or ``sNN.dat`` files without a
        manifest (perhaps real DEAP, which is never overwritten).
    """
    settings = variant_settings(variant)
    n_subjects = _check_int("n_subjects", n_subjects, 1, MAX_SUBJECTS)
    seed = _check_int("seed", seed, 0)
    config = _check_config(config)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    identity = _identity(variant, seed, config)
    _check_folder(folder, identity, n_subjects)

    # While the pending marker exists the folder is no complete cohort, so no manifest either.
    _write_json(folder / PENDING_NAME, identity)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)
    paths, records = [], {}
    for subject in tqdm(range(1, n_subjects + 1), desc=f"simulating ({variant})", unit="subject",
                        disable=not progress):
        model = _subject_model(subject, variant, seed, config)
        recording = {"data": _simulate_signals(model), "labels": model.latents.labels}
        path = folder / f"s{subject:02d}.dat"
        _write_subject_file(path, recording)
        paths.append(path)
        records[f"s{subject:02d}"] = _latents_record(model.latents)

    manifest = {
        "generator": __name__, **identity, "n_subjects": n_subjects,
        "variant_settings": asdict(settings), "subjects": records,
    }
    _write_json(folder / MANIFEST_NAME, manifest)
    (folder / PENDING_NAME).unlink()
    return paths


def load_manifest(folder: Path | str) -> dict | None:
    """Return the manifest of a simulated cohort, or ``None`` for any other folder (real DEAP).

    Parameters
    ----------
    folder : path-like
        A folder written by :func:`simulate_cohort`, or a DEAP folder.

    Returns
    -------
    dict or None
        Keys ``variant``, ``seed``, ``n_subjects``, ``config``,
        ``package_version``, ``variant_settings`` and ``subjects`` (per subject,
        the per-trial ``signal_valence``, ``signal_arousal``, ``rated_valence``
        and ``rated_arousal``).
    """
    path = Path(folder) / MANIFEST_NAME
    return json.loads(path.read_text()) if path.is_file() else None
