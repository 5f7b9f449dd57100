"""From trials to the samples the models see: 4-s segments with their ids and labels.

Every segment keeps the subject and trial it came from, so a split can be
made by trial (or subject) *before* any model sees a segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mkdbook.data.channels import (
    BASELINE_SECONDS,
    CHANNELS,
    N_SAMPLES,
    SFREQ,
    modality_picks,
    rating_column,
)


@dataclass(frozen=True)
class SegmentConfig:
    """How trials become segments and ratings become classes.

    Attributes
    ----------
    segment_seconds : float
        Length of a non-overlapping segment (the paper: 4 s, 512 samples).
    baseline_seconds : float
        Pre-trial baseline removed from the start of each trial (DEAP: 3 s).
    threshold : float
        A rating strictly above it is "high" (class 1). The paper does not
        state its threshold; 5, the middle of the 1-9 scale, is the common choice.
    """

    segment_seconds: float = 4.0
    baseline_seconds: float = BASELINE_SECONDS
    threshold: float = 5.0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.baseline_seconds < 0:
            raise ValueError(
                f"segment_seconds must be > 0 and baseline_seconds >= 0, got "
                f"{self.segment_seconds} and {self.baseline_seconds}"
            )
        if self.segments_per_trial < 1:
            raise ValueError(f"a {self.segment_seconds} s segment does not fit in one trial")
        if not 1.0 <= self.threshold < 9.0:
            raise ValueError(f"threshold must lie in [1, 9), got {self.threshold}")

    @property
    def segment_samples(self) -> int:
        """Samples per segment at 128 Hz (512 for 4 s)."""
        return round(self.segment_seconds * SFREQ)

    @property
    def segments_per_trial(self) -> int:
        """Whole segments in the 60 s after the baseline (15 for 4 s)."""
        return (N_SAMPLES - round(self.baseline_seconds * SFREQ)) // self.segment_samples


def segment_trials(data: np.ndarray, config: SegmentConfig = SegmentConfig()) -> np.ndarray:
    """Drop the baseline and cut trials into non-overlapping segments.

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_channels, 8064)
        Trials as stored in a DEAP file.
    config : SegmentConfig
        Segment length and baseline.

    Returns
    -------
    ndarray, shape (n_trials, segments_per_trial, n_channels, segment_samples), float32
        Segment ``j`` of trial ``i`` is ``out[i, j]``; any remainder shorter
        than a segment at the end of a trial is dropped.
    """
    n_trials, n_channels, _ = data.shape
    start = round(config.baseline_seconds * SFREQ)
    n_seg, seg_len = config.segments_per_trial, config.segment_samples
    body = data[:, :, start : start + n_seg * seg_len]
    cut = body.reshape(n_trials, n_channels, n_seg, seg_len).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(cut, dtype=np.float32)


@dataclass(frozen=True)
class SegmentSet:
    """All segments of a cohort with the subject, trial and ratings of each.

    Attributes
    ----------
    signals : ndarray, shape (n_segments, 40, n_times), float32
        Usually a read-only memory map of the segment cache.
    subject, trial, position : ndarray of int, shape (n_segments,)
        Subject number, trial index (0-39, video order) and the segment's
        place within its trial.
    ratings : ndarray, shape (n_segments, 4), float32
        The trial's valence, arousal, dominance and liking ratings.
    config : SegmentConfig
        How the segments were cut and where the class threshold lies.
    source : str
        Where the data came from, for figure captions (real DEAP or which
        simulated cohort).
    """

    signals: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    position: np.ndarray
    ratings: np.ndarray
    config: SegmentConfig
    source: str

    def __len__(self) -> int:
        return len(self.subject)

    @property
    def sfreq(self) -> float:
        """Sampling rate in Hz."""
        return SFREQ

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the 40 channels, in file order."""
        return CHANNELS

    @property
    def trial_id(self) -> np.ndarray:
        """One integer per (subject, trial), the grouping unit of trial-level splits."""
        return self.subject.astype(np.int64) * 1000 + self.trial

    @property
    def subjects(self) -> np.ndarray:
        """Subject numbers present, sorted."""
        return np.unique(self.subject)

    def labels(self, target: str, threshold: float | None = None) -> np.ndarray:
        """Binary class of every segment: 1 when the rating exceeds the threshold.

        Parameters
        ----------
        target : str
            ``"valence"``, ``"arousal"``, ``"dominance"`` or ``"liking"``.
        threshold : float, optional
            Overrides ``config.threshold``.

        Returns
        -------
        ndarray of int64, shape (n_segments,)
        """
        cut = self.config.threshold if threshold is None else threshold
        return (self.ratings[:, rating_column(target)] > cut).astype(np.int64)

    def modality(self, name: str, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Signals of one modality for the segments in ``index``.

        Parameters
        ----------
        name : str
            A key of :data:`~mkdbook.data.channels.MODALITIES`.
        index : array of int or slice
            Which segments; all by default.

        Returns
        -------
        ndarray, shape (n, n_channels_of_modality, n_times), float32
        """
        return _pick_channels(self.signals[index], modality_picks(name))

    def batch(self, index: np.ndarray, modalities: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The segments in ``index`` as a dict keyed by modality name, as networks take them.

        The rows are read from the memory map once and shared by all modalities.
        """
        rows = self.signals[index]
        return {name: _pick_channels(rows, modality_picks(name)) for name in modalities}


def _pick_channels(rows: np.ndarray, picks: list[int]) -> np.ndarray:
    # A contiguous block of channels is a slice, which avoids numpy's slower gather.
    if picks == list(range(picks[0], picks[-1] + 1)):
        return np.ascontiguousarray(rows[:, picks[0] : picks[-1] + 1])
    return rows[:, picks]
