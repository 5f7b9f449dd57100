"""Writing recordings as a BIDS EEG data set, the counterpart of :mod:`mkdbook.data.readers.bids`.

Each subject becomes ``sub-NN/eeg/sub-NN_task-<task>_eeg.vhdr`` (BrainVision,
float32, written by ``pybv``) with the sidecars :func:`mne_bids.write_raw_bids`
writes beside it: ``channels.tsv`` (every channel's BIDS type, taken from the
layout's modalities: ``eeg`` -> ``EEG``, ``eog`` -> ``EOG``, ``ppg`` ->
``PPG`` ...), ``events.tsv`` (one row per trial, with its onset, its duration
and every rating in a column named after its scale) and ``eeg.json``.

Samples are written as float32 in the units the recording holds (microvolts
for EEG, EOG, EMG and ECG; microsiemens for GSR; degrees Celsius for
temperature; as they are for other channels), at a resolution of 1: a
sample that float32 can hold is written exactly, and
:class:`~mkdbook.data.readers.bids.BidsReader` reads it back exactly. (EDF,
16-bit, would not keep it; ``mne-bids``'s own BrainVision conversion writes
at a resolution of 0.1 µV, which does not either.) Ratings are written in
full (Python's shortest round-trip form).

A subject is written into a temporary folder beside its final place and
moved there when complete, so an interrupted run leaves whole subjects only.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from mkdbook.data.layout import Layout
from mkdbook.data.readers.base import SubjectRecording

__all__ = ["BIDS_TYPE_OF_MODALITY", "bids_subject_folder", "write_bids_description", "write_bids_recording"]

#: Modality name -> BIDS channel type (channels of any other modality, or none, are ``MISC``).
BIDS_TYPE_OF_MODALITY = {"eeg": "EEG", "eog": "EOG", "emg": "EMG", "gsr": "GSR", "resp": "RESP",
                         "ppg": "PPG", "temp": "TEMP", "ecg": "ECG"}
# MNE channel type -> the unit written (DEAP's units); "n/a" for any other type.
_UNIT_OF_TYPE = {"eeg": "µV", "eog": "µV", "emg": "µV", "ecg": "µV", "gsr": "µS", "temperature": "°C"}
# Files that BIDS validators should not judge (mkdbook's own, beside the data set).
_BIDS_IGNORE = ("mkdbook-simulated.json", ".mkdbook-simulated.pending", "latent/")


def bids_subject_folder(root: Path | str, subject: int) -> Path:
    """The folder of subject ``subject`` in the BIDS data set at ``root`` (``sub-07`` for 7)."""
    return Path(root) / f"sub-{subject:02d}"


def write_bids_description(root: Path | str, name: str, subjects: list[int]) -> None:
    """Write a data set's ``dataset_description.json``, ``participants.tsv`` and ``.bidsignore``.

    Parameters
    ----------
    root : path-like
        The data set's folder (created if missing).
    name : str
        The data set's ``Name``, which the reader takes as the layout's name.
    subjects : list of int
        The subjects, for ``participants.tsv``.
    """
    import mne_bids

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    mne_bids.make_dataset_description(path=root, name=name, dataset_type="raw", overwrite=True, verbose=False)
    participants = "participant_id\n" + "".join(f"sub-{s:02d}\n" for s in subjects)
    (root / "participants.tsv").write_text(participants, encoding="utf-8")
    (root / ".bidsignore").write_text("".join(f"{line}\n" for line in _BIDS_IGNORE), encoding="utf-8")


def _write_brainvision(folder: Path, recording: SubjectRecording) -> Path:
    """The recording's trials, one after the other, as a float32 BrainVision file in ``folder``."""
    import pybv

    layout = recording.layout
    units = [_UNIT_OF_TYPE.get(kind, "n/a") for kind in layout.channel_types]
    # pybv takes voltages in volts and writes them in the unit named; other units as they are.
    to_pybv = np.array([1e-6 if unit == "µV" else 1.0 for unit in units])[:, None]
    continuous = np.asarray(recording.data, dtype=np.float64).transpose(1, 0, 2).reshape(len(layout.channels), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pybv warns of units other than µV, which BIDS allows
        pybv.write_brainvision(data=continuous * to_pybv, sfreq=layout.sfreq, ch_names=list(layout.channels),
                               fname_base="recording", folder_out=str(folder), resolution=1.0, unit=units,
                               fmt="binary_float32", overwrite=True)
    return folder / "recording.vhdr"


def _set_bids_types(channels_tsv: Path, layout: Layout) -> None:
    """Rewrite the ``type`` column of ``channels_tsv`` from the layout's modalities."""
    kind = {name: BIDS_TYPE_OF_MODALITY.get(modality, "MISC")
            for modality, names in layout.modality_channels for name in names}
    with channels_tsv.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    for row in rows:
        row["type"] = kind.get(row["name"], "MISC")
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    channels_tsv.write_text(text.getvalue(), encoding="utf-8")


def write_bids_recording(root: Path | str, recording: SubjectRecording, *, task: str = "emotion") -> list[Path]:
    """Write one subject's trials and ratings into the BIDS data set at ``root``.

    Parameters
    ----------
    root : path-like
        The data set's folder; :func:`write_bids_description` writes its
        top-level files.
    recording : SubjectRecording
        The subject, its layout (``recording.layout``) included; ratings
        must be the layout's scales, in its order.
    task : str
        The BIDS task label.

    Returns
    -------
    list of Path
        Every file written, in ``sub-NN/``, sorted.
    """
    import mne
    import mne_bids
    import pandas as pd

    root = Path(root)
    layout = recording.layout
    final = bids_subject_folder(root, recording.subject)
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{final.name}-") as scratch:
        scratch = Path(scratch)
        raw = mne.io.read_raw_brainvision(_write_brainvision(scratch, recording), verbose="error")
        raw.set_channel_types(dict(zip(layout.channels, layout.channel_types)), on_unit_change="ignore",
                              verbose="error")
        trial_seconds = layout.n_samples / layout.sfreq
        raw.set_annotations(mne.Annotations(np.arange(layout.n_trials) * trial_seconds, trial_seconds,
                                            ["trial"] * layout.n_trials))
        ratings = pd.DataFrame({scale: np.asarray(recording.labels[:, column], dtype=np.float64).tolist()
                                for column, scale in enumerate(layout.rating_scales)})
        low, high = layout.rating_range
        described = {scale: f"self-reported {scale}, from {low:g} to {high:g}" for scale in layout.rating_scales}
        path = mne_bids.BIDSPath(subject=f"{recording.subject:02d}", task=task, datatype="eeg",
                                 root=scratch / "bids")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # about missing electrode positions, line frequency...
            mne_bids.write_raw_bids(raw, path, event_id={"trial": 1}, event_metadata=ratings,
                                    extra_columns_descriptions=described, overwrite=True, verbose="error")
        _set_bids_types(path.copy().update(suffix="channels", extension=".tsv").fpath, layout)
        written = scratch / "bids" / final.name
        if final.exists():
            shutil.rmtree(final)
        os.replace(written, final)
    return sorted(p for p in final.rglob("*") if p.is_file())
