"""From trials to the samples the models see: 4-s segments with their ids and labels.

Every segment keeps the subject and trial it came from, so a split can be
made by trial (or subject) *before* any model sees a segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mkdbook.data.layout import DEAP, Layout

#: Key of the trial ids (:attr:`SegmentSet.trial_id`) in every batch dict
#: :meth:`SegmentSet.batch` returns, beside the modalities: per-subject and
#: per-trial standardisation (:class:`mkdbook.training.standardisation.ChannelScaler`) need them.
TRIAL_ID = "trial_id"
#: How segments can be standardised: per subject, per trial by its pre-trial
#: baseline, or globally (:class:`mkdbook.training.standardisation.ChannelScaler`,
#: :func:`mkdbook.analysis.band_power.standardise_features`).
STANDARDISATIONS: tuple[str, ...] = ("subject", "baseline", "global")


@dataclass(frozen=True)
class SegmentConfig:
    """How trials become segments and ratings become classes.

    The configuration is in seconds; the sample counts follow from a
    :class:`~mkdbook.data.layout.Layout` (:meth:`segment_samples`,
    :meth:`segments_per_trial`), so one configuration serves any sampling rate.

    Attributes
    ----------
    segment_seconds : float
        Length of a non-overlapping segment. Default 4.0, the paper's (512
        samples at DEAP's 128 Hz).
    baseline_seconds : float
        Pre-trial baseline removed from the start of each trial. Default 3.0,
        DEAP's.
    threshold : float
        A rating strictly above it is "high" (class 1). Default 5.0: the paper
        does not state its threshold; 5, the middle of the 1-9 scale, is the
        common choice.
    """

    segment_seconds: float = 4.0
    baseline_seconds: float = DEAP.baseline_seconds
    threshold: float = 5.0

    def __post_init__(self) -> None:
        if self.segment_seconds <= 0 or self.baseline_seconds < 0:
            raise ValueError(
                f"segment_seconds must be > 0 and baseline_seconds >= 0, got "
                f"{self.segment_seconds} and {self.baseline_seconds}"
            )
        if not 1.0 <= self.threshold < 9.0:
            raise ValueError(f"threshold must lie in [1, 9), got {self.threshold}")

    def segment_samples(self, layout: Layout) -> int:
        """Samples per segment at ``layout``'s sampling rate (512 for 4 s of DEAP)."""
        return layout.samples(self.segment_seconds)

    def segments_per_trial(self, layout: Layout) -> int:
        """Whole segments in a trial of ``layout`` after the baseline (15 for 4 s of DEAP).

        Raises
        ------
        ValueError
            If not one segment fits after the baseline.
        """
        after_baseline = layout.n_samples - layout.samples(self.baseline_seconds)
        count = after_baseline // self.segment_samples(layout) if after_baseline > 0 else 0
        if count < 1:
            raise ValueError(
                f"segment_seconds={self.segment_seconds} does not fit in one {layout.name} trial "
                f"after baseline_seconds={self.baseline_seconds}: a trial has "
                f"{layout.n_samples / layout.sfreq:g} s"
            )
        return count


def segment_trials(data: np.ndarray, config: SegmentConfig = SegmentConfig(),
                   layout: Layout = DEAP, out: np.ndarray | None = None) -> np.ndarray:
    """Drop the baseline and cut trials into non-overlapping segments.

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_channels, layout.n_samples)
        Trials as stored in a subject file (8064 samples for DEAP).
    config : SegmentConfig
        Segment length and baseline.
    layout : Layout
        The data set's layout, which gives the sampling rate.
    out : ndarray, optional
        A float32 array of the result's shape to write into; the cache
        reuses one, so that segmenting is a single pass that casts as it copies.

    Returns
    -------
    ndarray, shape (n_trials, segments_per_trial, n_channels, segment_samples), float32
        Segment ``j`` of trial ``i`` is ``out[i, j]``; any remainder shorter
        than a segment at the end of a trial is dropped.

    Raises
    ------
    ValueError
        If ``out`` is not a float32 array of that shape.
    """
    n_trials, n_channels, _ = data.shape
    start = layout.samples(config.baseline_seconds)
    n_seg, seg_len = config.segments_per_trial(layout), config.segment_samples(layout)
    body = data[:, :, start : start + n_seg * seg_len]
    cut = body.reshape(n_trials, n_channels, n_seg, seg_len).transpose(0, 2, 1, 3)
    if out is None:
        return np.ascontiguousarray(cut, dtype=np.float32)
    if out.shape != cut.shape or out.dtype != np.float32:
        raise ValueError(f"out must be a float32 array of shape {cut.shape}, got {out.dtype} {out.shape}")
    np.copyto(out, cut, casting="same_kind")
    return out


@dataclass(frozen=True)
class TrialBaseline:
    """Per-channel mean and standard deviation of every trial's pre-trial baseline.

    The segments drop the baseline (:attr:`SegmentConfig.baseline_seconds`);
    its statistics are kept so that a trial can be normalised by its own
    resting seconds, DEAP's classic choice (Koelstra et al., 2012).

    Attributes
    ----------
    trial_id : ndarray of int64, shape (n_trials,)
        The trials' :attr:`SegmentSet.trial_id`, sorted.
    mean, std : ndarray of float32, shape (n_trials, n_channels)
        Over the baseline's samples, every channel of the layout.
    """

    trial_id: np.ndarray
    mean: np.ndarray
    std: np.ndarray


def baseline_statistics(data: np.ndarray, config: SegmentConfig = SegmentConfig(),
                        layout: Layout = DEAP) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and standard deviation of each trial's baseline, per channel.

    Parameters
    ----------
    data : ndarray, shape (n_trials, n_channels, layout.n_samples)
        Trials as stored in a subject file.

    Returns
    -------
    (mean, std) : ndarrays of float32, shape (n_trials, n_channels), or None
        ``None`` when ``config.baseline_seconds`` is 0 (no baseline to use).
    """
    n = layout.samples(config.baseline_seconds)
    if n < 1:
        return None
    baseline = np.asarray(data[:, :, :n], dtype=np.float64)
    return baseline.mean(axis=2).astype(np.float32), baseline.std(axis=2).astype(np.float32)


@dataclass(frozen=True)
class SegmentSet:
    """All segments of a cohort with the subject, trial and ratings of each.

    Attributes
    ----------
    signals : ndarray, shape (n_segments, n_channels, n_times), float32
        Usually a read-only memory map of the segment cache; ``n_channels``
        is the layout's (40 for DEAP).
    subject, trial, position : ndarray of int, shape (n_segments,)
        Subject number, trial index (0-39 in DEAP, video order) and the
        segment's place within its trial.
    ratings : ndarray, shape (n_segments, n_scales), float32
        The trial's ratings, in ``layout.rating_scales`` order (DEAP: valence,
        arousal, dominance and liking).
    config : SegmentConfig
        How the segments were cut and where the class threshold lies.
    source : str
        Where the data came from, for figure captions (real DEAP or which
        simulated cohort).
    layout : Layout
        The data set's channels, modalities, sampling rate and rating scales.
        Default :data:`~mkdbook.data.layout.DEAP`.
    baseline : TrialBaseline or None
        Statistics of every trial's pre-trial baseline (the segment cache
        stores them); ``None`` when unknown.
    """

    signals: np.ndarray
    subject: np.ndarray
    trial: np.ndarray
    position: np.ndarray
    ratings: np.ndarray
    config: SegmentConfig
    source: str
    layout: Layout = DEAP
    baseline: TrialBaseline | None = None

    def __post_init__(self) -> None:
        if np.ndim(self.signals) != 3 or self.signals.shape[1] != len(self.layout.channels):
            raise ValueError(
                f"signals must have shape (n_segments, {len(self.layout.channels)}, n_times) "
                f"for {self.layout.name}'s {len(self.layout.channels)} channels, "
                f"got {np.shape(self.signals)}"
            )

    def __len__(self) -> int:
        return len(self.subject)

    @property
    def sfreq(self) -> float:
        """Sampling rate in Hz."""
        return self.layout.sfreq

    @property
    def channel_names(self) -> tuple[str, ...]:
        """Names of the layout's channels, in file order."""
        return self.layout.channels

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
            One of ``layout.rating_scales``: ``"valence"``, ``"arousal"``,
            ``"dominance"`` or ``"liking"`` for DEAP.
        threshold : float, optional
            Overrides ``config.threshold``.

        Returns
        -------
        ndarray of int64, shape (n_segments,)
        """
        cut = self.config.threshold if threshold is None else threshold
        return (self.ratings[:, self.layout.rating_column(target)] > cut).astype(np.int64)

    def modality(self, name: str, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Signals of one modality for the segments in ``index``.

        Parameters
        ----------
        name : str
            A key of ``layout.modalities``.
        index : array of int or slice
            Which segments; all by default.

        Returns
        -------
        ndarray, shape (n, n_channels_of_modality, n_times), float32
        """
        return _pick_channels(self.signals[index], self.layout.picks(name))

    def batch(self, index: np.ndarray, modalities: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The segments in ``index`` as a dict keyed by modality name, as networks take them.

        The rows are read from the memory map once and shared by all modalities.
        The dict also holds the rows' trial ids under :data:`TRIAL_ID`, which
        networks ignore and per-subject or per-trial standardisation reads.
        """
        rows = self.signals[index]
        arrays = {name: _pick_channels(rows, self.layout.picks(name)) for name in modalities}
        arrays[TRIAL_ID] = self.subject[index].astype(np.int64) * 1000 + self.trial[index]
        return arrays

    def model_inputs(self) -> dict[str, Any]:
        """What a network must be told about these segments, as :func:`~mkdbook.models.build_model` takes it.

        Returns
        -------
        dict
            ``n_channels`` (modality -> number of channels, every modality of
            the layout), ``n_times`` (samples per segment) and ``sfreq`` (Hz),
            so that ``build_model("teacher", **data.model_inputs(), seed=0)``
            fits the network to the data.
        """
        return {"n_channels": self.layout.channel_counts(), "n_times": self.signals.shape[-1],
                "sfreq": self.layout.sfreq}


def _pick_channels(rows: np.ndarray, picks: list[int]) -> np.ndarray:
    # A contiguous block of channels is a slice, which avoids numpy's slower gather.
    if picks == list(range(picks[0], picks[-1] + 1)):
        return np.ascontiguousarray(rows[:, picks[0] : picks[-1] + 1])
    return rows[:, picks]
