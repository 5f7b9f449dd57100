"""The parameters of the simulated cohort, and the checks of the simulator's arguments."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np


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
    tuned to favour any method; the arbitrary ones say so. The EMG values
    (``eog_emg_*``) were set, and only they, so that the band-power logistic
    regression of chapter 2 reaches the information levels of
    :data:`mkdbook.analysis.information_levels.TARGET_LEVELS` on the 12-subject default cohort
    (EOG segment AUC 0.56-0.64 on each target, EEG above EOG on valence,
    EEG+EOG above either), before any distillation result was seen. Four values were
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
        Fraction of frontal brain activity the EOG derivations record (0.3).
        DEAP's vEOG pair sits above and below the right eye and its hEOG pair
        at the outer canthi, hEOG1 (left) minus hEOG2 (right) [Koelstra2012]_,
        so vEOG sees Fp2 and hEOG sees F7 - F8.
    eog_film_locked_share : float
        Share of blinks and of gaze variance that is locked to the film and
        so shared by every viewer of a video (0.3): blinks synchronise across
        viewers of the same video [Nakano2009]_ and gaze clusters on the same
        places in dynamic scenes [Dorr2010]_. It carries no emotion. The
        value is an estimate.
    within_trial_sd : float
        SD of the fluctuation of the felt state around the trial's state
        within a video (0.5 latent units); emotion during a film moves from
        moment to moment [Kuppens2017]_, and a single rating summarises it.
        The value is an estimate.
    within_trial_tau_s : float
        Time constant of that fluctuation (10 s, an estimate).
    emg_crosstalk : float
        Strength of periocular muscle activity in the EOG channels (1.0 =
        the magnitudes below; 0 = none, the EOG of earlier versions). The
        EOG electrodes sit on or beside corrugator supercilii, frontalis,
        orbicularis oculi and temporalis, and DEAP's peripheral channels were
        only down-sampled, so the EOG keeps this activity up to 64 Hz; away
        from the vertex EMG dominates scalp recordings above ~25 Hz [Pope2022]_.
    eog_emg_rms_uv : float
        Median RMS of tonic periocular EMG (20-64 Hz) at the EOG electrodes
        at neutral state (2 uV): a few microvolts at rest [Pope2022]_.
    eog_emg_subject_sd : float
        Between-subject spread of that EMG gain (0.5, ln): skin, fat and
        electrode position make surface EMG amplitudes differ by factors
        between people.
    eog_emg_trial_sd : float
        Trial-to-trial spread of the tonic EMG unrelated to emotion (0.3, ln;
        posture, tension, electrode contact). Set while fixing the EOG's
        information level.
    eog_emg_valence_effect : float
        Log EMG amplitude per unit valence (-0.3): corrugator activity falls
        with valence, more steeply than zygomaticus rises [Larsen2003]_, and
        separates valence even without visible expression [Cacioppo1986]_.
        Set while fixing the EOG's information level.
    eog_emg_arousal_effect : float
        Log EMG amplitude per unit arousal (0.15): frontalis and temporalis
        tension rises with arousal. Set while fixing the EOG's information level.
    eog_orbicularis_fraction : float
        Orbicularis oculi activity at the EOG electrodes during each
        zygomaticus smile burst, as a fraction of that burst (0.3): genuine
        smiles recruit orbicularis oculi as well [Larsen2003]_.
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
    .. [Nakano2009] Nakano T, Yamamoto Y, Kitajo K, Takahashi T, Kitazawa S
       (2009). Synchronization of spontaneous eyeblinks while viewing video
       stories. Proc R Soc B 276:3635-3644.
    .. [Kuppens2017] Kuppens P, Verduyn P (2017). Emotion dynamics. Curr Opin
       Psychol 17:22-26.
    .. [Pope2022] Pope KJ, et al. (2022). Managing electromyogram
       contamination in scalp recordings: an approach identifying reliable
       beta and gamma EEG features of psychoses or other disorders. Brain
       Behav 12:e2721.
    .. [Cacioppo1986] Cacioppo JT, Petty RE, Losch ME, Kim HS (1986).
       Electromyographic activity over facial muscle regions can differentiate
       the valence and intensity of affective reactions. J Pers Soc Psychol
       50:260-268.
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
    eog_film_locked_share: float = 0.3
    within_trial_sd: float = 0.5
    within_trial_tau_s: float = 10.0
    emg_crosstalk: float = 1.0
    eog_emg_rms_uv: float = 2.0
    eog_emg_subject_sd: float = 0.5
    eog_emg_trial_sd: float = 0.3
    eog_emg_valence_effect: float = _signed(-0.3)
    eog_emg_arousal_effect: float = _signed(0.15)
    eog_orbicularis_fraction: float = 0.3
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
        if self.eog_film_locked_share > 1:
            raise ValueError(f"SimulationConfig.eog_film_locked_share must be <= 1, got {self.eog_film_locked_share!r}")
        if self.eeg_iaf_hz <= 0 or self.eeg_spatial_length_m <= 0 or self.eog_blink_peak_s <= 0:
            raise ValueError("SimulationConfig: eeg_iaf_hz, eeg_spatial_length_m and "
                             "eog_blink_peak_s must be > 0")


def _check_config(config: SimulationConfig | None) -> SimulationConfig:
    if config is None:
        return SimulationConfig()
    if not isinstance(config, SimulationConfig):
        raise TypeError(f"config must be a SimulationConfig, got {type(config).__name__}")
    return config
