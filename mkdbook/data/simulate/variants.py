"""Cohort variants: which pathways of the generative model a simulated cohort keeps."""

from __future__ import annotations

from dataclasses import dataclass

from mkdbook.core.checks import check_option


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
    emg_in_eog : bool
        ``True``: the EOG channels record periocular muscle activity
        (scaled by ``SimulationConfig.emg_crosstalk``). ``False``: they record
        eye movements, brain activity, drift and noise only.
    description : str
        One line for figure captions.
    """

    name: str
    ratings_follow_signals: bool
    valence_outside_eeg: bool
    description: str
    emg_in_eog: bool = True


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
    "no-emg": VariantSettings(
        "no-emg", ratings_follow_signals=True, valence_outside_eeg=True, emg_in_eog=False,
        description="EOG without periocular muscle activity: emotion only through eye movements"),
}


def variant_settings(variant: str) -> VariantSettings:
    """Return the settings of a cohort variant.

    Raises
    ------
    ValueError
        If ``variant`` is not a key of :data:`VARIANTS`; the message lists them.
    """
    check_option("variant", variant, tuple(VARIANTS))
    return VARIANTS[variant]
