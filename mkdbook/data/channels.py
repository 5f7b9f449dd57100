"""The channel layout of DEAP's preprocessed Python release, and modality picks.

Every other module asks for channels by modality name (``"eeg"``, ``"eog"``,
...) through :func:`modality_picks`, never by raw index arithmetic, so the
layout is written down exactly once: here.
"""

from __future__ import annotations

#: The 32 EEG electrodes in DEAP's "Geneva" order (channels 0-31).
EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3",
    "P7", "PO3", "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6",
    "FC2", "Cz", "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)

#: The eight peripheral channels that follow the EEG (channels 32-39).
PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "Plet", "Temp",
)

#: All 40 channels of a DEAP trial, in file order.
CHANNELS: tuple[str, ...] = EEG_CHANNELS + PERIPHERAL_CHANNELS

#: Modality name -> channel names. ``eog`` is the student's two electrodes.
MODALITIES: dict[str, tuple[str, ...]] = {
    "eeg": EEG_CHANNELS,
    "eog": ("hEOG", "vEOG"),
    "emg": ("zEMG", "tEMG"),
    "gsr": ("GSR",),
    "resp": ("Resp",),
    "ppg": ("Plet",),
    "temp": ("Temp",),
}

#: MNE channel type of each channel, for :mod:`mkdbook.data.mne_bridge`.
CHANNEL_TYPES: dict[str, str] = {
    **{name: "eeg" for name in EEG_CHANNELS},
    "hEOG": "eog", "vEOG": "eog", "zEMG": "emg", "tEMG": "emg",
    "GSR": "gsr", "Resp": "resp", "Plet": "bio", "Temp": "temperature",
}

#: The four self-report scales in the ``labels`` array, in column order.
RATING_SCALES: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")

#: DEAP's preprocessed sampling rate, trial length and pre-trial baseline.
SFREQ: float = 128.0
N_TRIALS: int = 40
N_SAMPLES: int = 8064
BASELINE_SECONDS: float = 3.0


def modality_picks(modality: str) -> list[int]:
    """Return the channel indices (into :data:`CHANNELS`) of one modality.

    Parameters
    ----------
    modality : str
        A key of :data:`MODALITIES`, for example ``"eeg"`` or ``"eog"``.

    Returns
    -------
    list of int
        Indices in file order.

    Raises
    ------
    ValueError
        If ``modality`` is not a known modality name.
    """
    if modality not in MODALITIES:
        raise ValueError(
            f"unknown modality {modality!r}; expected one of {sorted(MODALITIES)}"
        )
    return [CHANNELS.index(name) for name in MODALITIES[modality]]


def rating_column(scale: str) -> int:
    """Return the column of ``scale`` (``"valence"``, ``"arousal"``, ...) in ``labels``."""
    if scale not in RATING_SCALES:
        raise ValueError(f"unknown rating scale {scale!r}; expected one of {RATING_SCALES}")
    return RATING_SCALES.index(scale)
