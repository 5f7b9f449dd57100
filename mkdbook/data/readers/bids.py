"""Reading an EEG data set in BIDS (Brain Imaging Data Structure) with ``mne-bids``.

A BIDS data set is a folder with a ``dataset_description.json`` and one
``sub-<label>/`` folder per subject. This reader takes one EEG recording per
subject (``sub-<label>[/ses-<label>]/eeg/*_eeg.vhdr``, ``.edf``, ``.bdf`` or
``.set``) and the two tables beside it:

* ``*_channels.tsv``: every channel's ``name``, ``type`` and ``units``. Which
  channels are EEG (the teacher's) and EOG (``EOG``, ``HEOG`` or ``VEOG``, the
  student's) comes from ``type``, never from names; every other type becomes
  a modality of its own (``EMG`` -> ``"emg"``, ``GSR`` -> ``"gsr"``, ...).
  The sampling rate is its ``sampling_frequency`` column, else the
  ``SamplingFrequency`` of ``*_eeg.json``.
* ``*_events.tsv``: one trial per row (only the rows whose ``trial_type`` is
  :attr:`BidsReader.trial_type`, when set), starting at ``onset`` and lasting
  ``duration`` seconds, pre-trial baseline (:attr:`BidsReader.baseline_seconds`)
  included; every trial must last as long. The ratings are the columns
  :attr:`BidsReader.rating_columns`, by default those named like the rating
  scales (:attr:`BidsReader.rating_scales`, by default DEAP's: ``valence``,
  ``arousal``, ``dominance``, ``liking``).

From these, :meth:`BidsReader.layout` builds the data set's
:class:`~mkdbook.data.layout.Layout` without reading a sample. The samples are
read by :func:`mne_bids.read_raw_bids`; MNE holds them in volts, and they are
handed on in the units ``channels.tsv`` gives (DEAP's microvolts, usually),
rounded to float32, the segment cache's type. A recording whose samples are
float32 in those units, as BrainVision files written by
``mkdbook simulate --format bids`` are, is so read back exactly.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mkdbook.core.checks import check_number
from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.readers.base import (
    DataFormatError,
    Reader,
    SubjectRecording,
    SubjectSource,
    check_ratings,
    check_samples,
)

__all__ = ["BidsFormatError", "BidsReader", "DESCRIPTION_FILE", "EEG_EXTENSIONS"]

#: The file that marks a folder as a BIDS data set.
DESCRIPTION_FILE = "dataset_description.json"
#: The EEG data files this reader takes (BrainVision, EDF, BDF, EEGLAB).
EEG_EXTENSIONS: tuple[str, ...] = (".vhdr", ".edf", ".bdf", ".set")
#: BIDS channel type -> modality name (other types: the type in lower case).
MODALITY_OF_TYPE = {"EEG": "eeg", "EOG": "eog", "HEOG": "eog", "VEOG": "eog", "EMG": "emg", "GSR": "gsr",
                    "RESP": "resp", "PPG": "ppg", "TEMP": "temp", "ECG": "ecg"}
#: BIDS channel type -> MNE channel type (other types: ``"misc"``).
MNE_TYPE = {"EEG": "eeg", "EOG": "eog", "HEOG": "eog", "VEOG": "eog", "EMG": "emg", "GSR": "gsr",
            "RESP": "resp", "PPG": "bio", "TEMP": "temperature", "ECG": "ecg", "TRIG": "stim"}
# MNE turns every reader's voltages into volts, and BrainVision's siemens into siemens.
_FROM_VOLTS = {"V": 1.0, "mV": 1e3, "µV": 1e6, "μV": 1e6, "uV": 1e6, "nV": 1e9}
_FROM_SIEMENS_BRAINVISION = {"µS": 1e6, "μS": 1e6, "uS": 1e6}
_SUBJECT_FOLDER = re.compile(r"^sub-([A-Za-z0-9]+)$")


class BidsFormatError(DataFormatError):
    """A BIDS file is missing or does not hold what the reader expects (one line, naming the file)."""


@dataclass(frozen=True)
class _Table:
    """A TSV file's rows, as strings."""

    path: Path
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    def numbers(self, column: str, rows: Sequence[int] | None = None) -> np.ndarray:
        values = []
        for i in range(len(self.rows)) if rows is None else rows:
            text = self.rows[i].get(column) or ""
            try:
                values.append(float(text))
            except ValueError:
                raise BidsFormatError(self.path, f"column {column!r}, row {i + 1}: expected a number, "
                                                 f"got {text!r}") from None
            if not math.isfinite(values[-1]):
                raise BidsFormatError(self.path, f"column {column!r}, row {i + 1}: expected a finite "
                                                 f"number, got {text!r}")
        return np.array(values, dtype=np.float64)


def _read_table(path: Path, needs: Iterable[str], expected: str) -> _Table:
    """Read a TSV with a header row; ``expected`` says what it should be, for the message."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as stream:
            reader = csv.DictReader(stream, delimiter="\t")
            rows = tuple(reader)
            columns = tuple(reader.fieldnames or ())
    except FileNotFoundError:
        raise BidsFormatError(path, f"missing; expected {expected}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise BidsFormatError(path, f"cannot be read ({err}); expected {expected}") from None
    missing = [column for column in needs if column not in columns]
    if missing:
        raise BidsFormatError(path, f"has no column {', '.join(map(repr, missing))}; expected {expected}")
    return _Table(path, columns, rows)


def _read_json(path: Path, expected: str) -> dict:
    try:
        content = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise BidsFormatError(path, f"missing; expected {expected}") from None
    except (OSError, ValueError, RecursionError) as err:
        raise BidsFormatError(path, f"not UTF-8 JSON ({type(err).__name__}); expected {expected}") from None
    if not isinstance(content, dict):
        raise BidsFormatError(path, f"holds a JSON {type(content).__name__}; expected {expected}")
    return content


def _names(argument: str, names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names or not all(isinstance(name, str) and name for name in names) or len(set(names)) != len(names):
        raise ValueError(f"{argument} must name one or more columns, each once, got {names!r}")
    return names


def _subject_numbers(labels: list[str]) -> dict[str, int]:
    """``sub-07`` is subject 7 when every label is a number >= 1; otherwise labels are numbered 1, 2, ... in order."""
    if all(label.isdigit() and int(label) >= 1 for label in labels) and \
            len({int(label) for label in labels}) == len(labels):
        return {label: int(label) for label in labels}
    return {label: number for number, label in enumerate(sorted(labels), start=1)}


@dataclass(frozen=True)
class _Subject:
    """One subject's metadata: its layout, trial starts (samples) and ratings."""

    layout: Layout
    starts: np.ndarray
    ratings: np.ndarray
    units: tuple[str, ...]
    events: Path


@dataclass(frozen=True)
class BidsReader(Reader):
    """An EEG data set in BIDS, read with ``mne-bids`` (see the module notes for what it takes).

    Attributes
    ----------
    task : str or None
        Read the recordings of this task (``*_task-<task>_*``); by default
        the one EEG recording of each subject, whatever its task.
    trial_type : str or None
        The ``trial_type`` of the rows of ``events.tsv`` that are trials; by
        default every row is a trial.
    rating_scales : tuple of str
        The rating scales, as the layout (and ``--target``) names them.
        Default: DEAP's four, ``valence``, ``arousal``, ``dominance``, ``liking``.
    rating_columns : tuple of str or None
        The ``events.tsv`` column of each scale, in the same order; by
        default the columns named like the scales.
    rating_range : tuple of (float, float)
        Lowest and highest possible rating. Default DEAP's (1, 9).
    baseline_seconds : float
        Length of the pre-trial baseline at the start of every trial. Default
        DEAP's 3 s.
    """

    format = "bids"
    task: str | None = None
    trial_type: str | None = None
    rating_scales: tuple[str, ...] = DEAP.rating_scales
    rating_columns: tuple[str, ...] | None = None
    rating_range: tuple[float, float] = DEAP.rating_range
    baseline_seconds: float = DEAP.baseline_seconds

    def __post_init__(self) -> None:
        for name in ("task", "trial_type"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, str) and value):
                raise ValueError(f"{name} must be None or a non-empty string, got {value!r}")
        scales = _names("rating_scales", self.rating_scales)
        columns = scales if self.rating_columns is None else _names("rating_columns", self.rating_columns)
        if len(columns) != len(scales):
            raise ValueError(f"rating_columns must name one column per rating scale ({len(scales)}), "
                             f"got {self.rating_columns!r}")
        bounds = tuple(check_number("rating_range", bound) for bound in self.rating_range)
        if len(bounds) != 2 or not bounds[0] < bounds[1]:
            raise ValueError(f"rating_range must be (low, high) with low < high, got {self.rating_range!r}")
        object.__setattr__(self, "rating_scales", scales)
        object.__setattr__(self, "rating_columns", columns)
        object.__setattr__(self, "rating_range", bounds)
        object.__setattr__(self, "baseline_seconds", check_number("baseline_seconds", self.baseline_seconds, 0.0))

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """Whether ``folder`` has a ``dataset_description.json``, as every BIDS data set does."""
        return (Path(folder) / DESCRIPTION_FILE).is_file()

    def find(self, folder: Path, subjects: Iterable[int] | None = None) -> list[SubjectSource]:
        """One source per ``sub-<label>`` folder: its EEG recording, then the files beside it.

        Raises
        ------
        FileNotFoundError
            If the folder, its subjects or a requested subject are missing.
        BidsFormatError
            If ``dataset_description.json`` is missing, or a subject has no
            EEG recording or several (choose one with :attr:`task`).
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: not a folder; expected a BIDS data set")
        if not self.recognises(folder):
            raise BidsFormatError(folder / DESCRIPTION_FILE, "missing; expected the root of a BIDS data set")
        with os.scandir(folder) as entries:
            labels = sorted(m.group(1) for entry in entries
                            if (m := _SUBJECT_FOLDER.match(entry.name)) and entry.is_dir())
        if not labels:
            raise FileNotFoundError(f"{folder}: no sub-<label> folders; expected a BIDS data set's subjects")
        numbers = _subject_numbers(labels)
        wanted = sorted(numbers.values()) if subjects is None else sorted(set(subjects))
        by_number = {number: label for label, number in numbers.items()}
        missing = [n for n in wanted if n not in by_number]
        if missing:
            raise FileNotFoundError(f"{folder}: missing subject {', '.join(map(str, missing))}; it has "
                                    f"{', '.join(f'sub-{label}' for label in labels)}")
        return [SubjectSource(n, self._files(folder / f"sub-{by_number[n]}")) for n in wanted]

    def _files(self, subject_folder: Path) -> tuple[Path, ...]:
        task = f"_task-{self.task}_" if self.task else "_"
        found = sorted(path for path in subject_folder.glob("**/eeg/*_eeg.*")
                       if path.suffix.lower() in EEG_EXTENSIONS and task in path.name)
        if len(found) != 1:
            what = "none" if not found else f"{len(found)} ({', '.join(p.name for p in found)})"
            hint = "" if not found else "; choose one with the reader's task option"
            raise BidsFormatError(subject_folder, f"expected one EEG recording (eeg/*{task}eeg with "
                                                  f"{', '.join(EEG_EXTENSIONS)}), found {what}{hint}")
        data = found[0]
        prefix = data.name[: -len(f"_eeg{data.suffix}")] + "_"
        beside = sorted(p for p in data.parent.iterdir() if p.name.startswith(prefix) and p != data and p.is_file())
        return (data, *beside)

    def _dataset_name(self, folder: Path) -> str:
        description = _read_json(folder / DESCRIPTION_FILE, "the BIDS data set's description with its 'Name'")
        name = description.get("Name")
        return name.strip() if isinstance(name, str) and name.strip() else folder.name

    def _subject(self, source: SubjectSource, name: str) -> _Subject:
        stem = source.path.name[: -len(f"eeg{source.path.suffix}")]
        beside = source.path.parent
        channels = _read_table(beside / f"{stem}channels.tsv", ("name", "type"),
                               "a channels.tsv beside the recording with columns name, type and units")
        names = tuple(row["name"] for row in channels.rows)
        types = tuple((row["type"] or "").upper() for row in channels.rows)
        if not any(t == "EEG" for t in types) or not any(MODALITY_OF_TYPE.get(t) == "eog" for t in types):
            raise BidsFormatError(channels.path, f"expected EEG channels and at least one EOG channel "
                                                 f"(type EOG, HEOG or VEOG), found types {sorted(set(types))}")
        sfreq = self._sampling_rate(channels, beside / f"{stem}eeg.json")
        events = self._events(beside / f"{stem}events.tsv")
        rows = [i for i, row in enumerate(events.rows)
                if self.trial_type is None or row.get("trial_type") == self.trial_type]
        if not rows:
            raise BidsFormatError(events.path, f"no trials; expected rows with trial_type {self.trial_type!r}")
        starts = np.round(events.numbers("onset", rows) * sfreq).astype(np.int64)
        lengths = np.round(events.numbers("duration", rows) * sfreq).astype(np.int64)
        if np.any(lengths != lengths[0]) or lengths[0] < 1:
            raise BidsFormatError(events.path, f"trial durations of {sorted(set((lengths / sfreq).tolist()))} s; "
                                               "expected every trial to last as long, and longer than 0 s")
        modalities: dict[str, list[str]] = {}
        for channel, kind in zip(names, types):
            modalities.setdefault(MODALITY_OF_TYPE.get(kind, kind.lower() or "misc"), []).append(channel)
        try:
            layout = Layout(name=name, channels=names, modality_channels=modalities,
                            channel_types=tuple(MNE_TYPE.get(t, "misc") for t in types), sfreq=sfreq,
                            n_trials=len(rows), n_samples=int(lengths[0]), baseline_seconds=self.baseline_seconds,
                            rating_scales=self.rating_scales, rating_range=self.rating_range)
        except ValueError as err:
            raise BidsFormatError(channels.path, f"does not describe a usable layout with {events.path.name} "
                                                 f"({err})") from None
        ratings = np.stack([events.numbers(column, rows) for column in self.rating_columns], axis=1)
        check_ratings(events.path, ratings, layout, f"ratings ({', '.join(self.rating_columns)})", BidsFormatError)
        units = tuple(row.get("units") or "n/a" for row in channels.rows)
        return _Subject(layout, starts, ratings, units, events.path)

    def _events(self, path: Path) -> _Table:
        needs = ("onset", "duration", *self.rating_columns, *(("trial_type",) if self.trial_type else ()))
        return _read_table(path, needs, "an events.tsv beside the recording with one row per trial: onset, "
                                        f"duration and the ratings {', '.join(self.rating_columns)}")

    @staticmethod
    def _sampling_rate(channels: _Table, sidecar: Path) -> float:
        if "sampling_frequency" in channels.columns:
            rates = set(channels.numbers("sampling_frequency").tolist())
            if len(rates) != 1:
                raise BidsFormatError(channels.path, f"sampling frequencies {sorted(rates)}; expected one for "
                                                     "every channel")
            return rates.pop()
        rate = _read_json(sidecar, "the recording's sidecar with its SamplingFrequency").get("SamplingFrequency")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0:
            raise BidsFormatError(sidecar, f"'SamplingFrequency' must be a number > 0, got {rate!r}")
        return float(rate)

    def layout(self, folder: Path, sources: Sequence[SubjectSource]) -> Layout:
        """The layout every subject's ``channels.tsv`` and ``events.tsv`` describe.

        Raises
        ------
        BidsFormatError
            If a table is missing or malformed, there is no EOG channel, a
            rating lies outside :attr:`rating_range`, or two subjects differ.
        """
        name = self._dataset_name(Path(folder))
        layouts = [(source, self._subject(source, name).layout) for source in sources]
        first_source, first = layouts[0] if layouts else (None, None)
        for source, layout in layouts[1:]:
            if layout != first:
                raise BidsFormatError(source.path, f"its channels or trials differ from those of "
                                                   f"{first_source.path.name}; expected one layout for all")
        if first is None:
            raise ValueError("a layout needs at least one subject")
        return first

    def read(self, source: SubjectSource, *, mapped: bool = False) -> SubjectRecording:
        """Read one subject with :func:`mne_bids.read_raw_bids`; samples in ``channels.tsv``'s units, as float32.

        Raises
        ------
        BidsFormatError
            If ``mne-bids`` cannot read the recording, its channels are not
            those of ``channels.tsv``, or a trial lies outside it.
        """
        import mne_bids

        folder = source.path.parents[3 if source.path.parent.parent.name.startswith("ses-") else 2]
        info = self._subject(source, self._dataset_name(folder))
        layout = info.layout
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # mne-bids warns of every unusual sidecar entry
                raw = mne_bids.read_raw_bids(mne_bids.get_bids_path_from_fname(source.path), verbose="error")
        except Exception as err:  # noqa: BLE001 - any reader's failure is the file's fault
            message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BidsFormatError(source.path, f"mne-bids cannot read it ({message})") from None
        if tuple(raw.ch_names) != layout.channels:
            raise BidsFormatError(source.path, f"holds channels {raw.ch_names}; expected those of its "
                                               f"channels.tsv, {list(layout.channels)}")
        brainvision = source.path.suffix.lower() == ".vhdr"
        scale = np.array([_FROM_VOLTS.get(unit, _FROM_SIEMENS_BRAINVISION.get(unit, 1.0) if brainvision else 1.0)
                          for unit in info.units])[:, None]
        data = np.empty((layout.n_trials, len(layout.channels), layout.n_samples), np.float32)
        for trial, start in enumerate(info.starts.tolist()):
            if start < 0 or start + layout.n_samples > raw.n_times:
                raise BidsFormatError(info.events, f"trial {trial + 1} spans samples {start} to "
                                                   f"{start + layout.n_samples}; expected it within the "
                                                   f"recording's {raw.n_times} samples")
            block = raw.get_data(picks=np.arange(len(layout.channels)), start=start, stop=start + layout.n_samples)
            np.multiply(block, scale, out=data[trial], casting="same_kind")
        check_samples(source.path, data, "data", data.shape, BidsFormatError)
        return SubjectRecording(subject=source.subject, data=data, labels=info.ratings, path=source.path,
                                layout=layout)

    def describe(self, folder: Path) -> str:
        """``"BIDS data set <Name> (<folder name>)"``."""
        return f"BIDS data set {self._dataset_name(Path(folder))!r} ({Path(folder).name})"
