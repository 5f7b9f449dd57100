"""Trials and segments as MNE objects, so chapters plot with MNE.

DEAP stores EEG, EOG and EMG in microvolts; MNE works in volts, so those
channels are scaled by 1e-6 on the way in. Electrode positions come from
MNE's template 10-20 montage, which names all 32 DEAP electrodes.
"""

from __future__ import annotations

from collections.abc import Sequence

import mne
import numpy as np
import pandas as pd

from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.readers.base import SubjectRecording
from mkdbook.data.segments import SegmentSet

_MICROVOLT_TYPES = {"eeg", "eog", "emg"}
#: MNE 1.13 renamed the template ``standard_1020`` to ``colin27_1020`` (same positions).
MONTAGE = "colin27_1020" if "colin27_1020" in mne.channels.get_builtin_montages() else "standard_1020"


def make_info(names: Sequence[str], layout: Layout = DEAP) -> mne.Info:
    """An :class:`mne.Info` for channels of ``layout`` (DEAP's by default), with the 10-20 montage set."""
    types = [layout.channel_type(n) for n in names]
    info = mne.create_info(list(names), layout.sfreq, types, verbose=False)
    if "eeg" in types:
        info.set_montage(MONTAGE, on_missing="ignore", verbose=False)
    return info


def _to_volts(values: np.ndarray, names: Sequence[str], layout: Layout) -> np.ndarray:
    # Works on (channels, times) and (epochs, channels, times) alike.
    scale = np.array([1e-6 if layout.channel_type(n) in _MICROVOLT_TYPES else 1.0 for n in names])
    return values * scale[:, None]


def trial_to_raw(recording: SubjectRecording, trial: int,
                 modalities: Sequence[str] = ("eeg", "eog")) -> mne.io.RawArray:
    """One whole trial (baseline included) as an :class:`mne.io.RawArray`.

    Parameters
    ----------
    recording : SubjectRecording
        From :func:`mkdbook.data.read_subject_file`, or any reader
        (:func:`mkdbook.data.read_recordings`); its ``layout`` names the channels.
    trial : int
        Trial index, 0-39 for DEAP.
    modalities : sequence of str
        Which modalities to include.
    """
    layout = recording.layout
    names = layout.channel_names(modalities)
    picks = [layout.channels.index(n) for n in names]
    values = _to_volts(np.asarray(recording.data[trial, picks], dtype=np.float64), names, layout)
    raw = mne.io.RawArray(values, make_info(names, layout), verbose=False)
    raw.set_annotations(mne.Annotations(0.0, layout.baseline_seconds, "baseline"))
    return raw


def segments_to_epochs(data: SegmentSet, index: np.ndarray,
                       modalities: Sequence[str] = ("eeg", "eog")) -> mne.EpochsArray:
    """Segments as :class:`mne.EpochsArray`, with subject, trial and ratings as metadata."""
    layout = data.layout
    names = layout.channel_names(modalities)
    picks = [layout.channels.index(n) for n in names]
    values = _to_volts(np.asarray(data.signals[index][:, picks], dtype=np.float64), names, layout)
    metadata = pd.DataFrame({"subject": data.subject[index], "trial": data.trial[index],
                             "position": data.position[index]})
    for column, scale in enumerate(layout.rating_scales):
        metadata[scale] = data.ratings[index, column]
    return mne.EpochsArray(values, make_info(names, layout), metadata=metadata, verbose=False)
