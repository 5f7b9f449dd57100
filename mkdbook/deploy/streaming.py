"""Classifying continuous EOG as it arrives: a ring buffer of the last window, a decision every hop.

Training saw 4-s segments cut from the trials; a device sees one unending
signal. :class:`StreamingClassifier` keeps the last ``window_s`` seconds in a
ring buffer, and every ``hop_s`` seconds (once the buffer is full) hands the
window, oldest sample first, to a function that returns class probabilities:
an exported student (:func:`~mkdbook.deploy.runtime.onnx_probabilities`) or
the PyTorch module (:class:`~mkdbook.deploy.export.StandardisedStudent`),
both of which band-pass and standardise inside, as in training. A window
that starts at a segment's first sample *is* that segment, so on those
windows the stream decides exactly what the batch model decides.

Each decision is also smoothed: an exponential moving average of the
probability of the high class with time constant ``smoothing_s``, causal
and one number of state, which trades a delay of about ``smoothing_s`` at a
change of state for fewer flips within one.

:func:`continuous_recording` lays trials of a segment set back to back,
their segments in order, into one recording whose truth is known: a stand-in
for a wearer watching several videos in a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mkdbook.core.checks import check_number
from mkdbook.data.segments import SegmentSet

__all__ = ["Decision", "Recording", "StreamingClassifier", "StreamingConfig", "continuous_recording"]


@dataclass(frozen=True)
class StreamingConfig:
    """How a stream is cut into decisions.

    Attributes
    ----------
    window_s : float, default 4.0
        Seconds each decision reads: the training segments' length.
    hop_s : float, default 0.5
        Seconds between decisions (> 0, at most ``window_s``).
    smoothing_s : float, default 4.0
        Time constant of the exponential smoothing of the decisions, in
        seconds; 0 turns smoothing off.
    """

    window_s: float = 4.0
    hop_s: float = 0.5
    smoothing_s: float = 4.0

    def __post_init__(self) -> None:
        check_number("window_s", self.window_s, 0.0, strict=True)
        check_number("hop_s", self.hop_s, 0.0, strict=True)
        check_number("smoothing_s", self.smoothing_s, 0.0)
        if self.hop_s > self.window_s:
            raise ValueError(f"hop_s must be at most window_s ({self.window_s:g}), got {self.hop_s!r}")


@dataclass(frozen=True)
class Decision:
    """One decision of a stream.

    Attributes
    ----------
    time_s : float
        Seconds of signal seen when it was taken: the window ends there.
    probability : float
        The model's probability of the high class for the window.
    smoothed : float
        Its exponential moving average over the decisions so far.
    """

    time_s: float
    probability: float
    smoothed: float


class StreamingClassifier:
    """A ring buffer of the last window of a multichannel signal and a decision every hop.

    Parameters
    ----------
    decide : callable
        Maps windows ``(batch, n_channels, window samples)`` float32 to class
        probabilities ``(batch, n_classes)``; class 1 is the high class.
    n_channels : int
    sfreq : float
        Sampling rate in Hz.
    config : StreamingConfig, optional

    Raises
    ------
    ValueError
        If the window or the hop is not a whole number of samples.
    """

    def __init__(self, decide: Callable[[np.ndarray], np.ndarray], n_channels: int, sfreq: float,
                 config: StreamingConfig = StreamingConfig()) -> None:
        self.decide, self.sfreq, self.config = decide, sfreq, config
        self.window, self.hop = (_samples(name, getattr(config, name), sfreq) for name in ("window_s", "hop_s"))
        self.buffer = np.zeros((n_channels, self.window), dtype=np.float32)
        # Per-decision weight of the new probability in the moving average.
        self.weight = 1.0 - math.exp(-config.hop_s / config.smoothing_s) if config.smoothing_s else 1.0
        self.reset()

    def reset(self) -> None:
        """Forget the signal: an empty buffer, no smoothed state."""
        self.seen, self.head, self.smoothed = 0, 0, None

    def push(self, chunk: np.ndarray) -> list[Decision]:
        """Append ``chunk``, ``(n_channels, n_samples)``, and return the decisions it completed, in order."""
        decisions = []
        chunk = np.asarray(chunk, dtype=np.float32)
        start = 0
        while start < chunk.shape[1]:
            # Up to the next hop boundary, and never past the buffer's end.
            due = self.hop - self.seen % self.hop
            take = min(due, chunk.shape[1] - start, self.window - self.head)
            self.buffer[:, self.head:self.head + take] = chunk[:, start:start + take]
            self.head, self.seen, start = (self.head + take) % self.window, self.seen + take, start + take
            if self.seen % self.hop == 0 and self.seen >= self.window:
                decisions.append(self._decide())
        return decisions

    def _decide(self) -> Decision:
        window = np.concatenate([self.buffer[:, self.head:], self.buffer[:, :self.head]], axis=1)
        probability = float(self.decide(window[None])[0, 1])
        previous = probability if self.smoothed is None else self.smoothed
        self.smoothed = previous + self.weight * (probability - previous)
        return Decision(self.seen / self.sfreq, probability, self.smoothed)

    def run(self, signal: np.ndarray, chunk_s: float = 0.25) -> list[Decision]:
        """Stream a whole recording ``(n_channels, n_samples)`` in chunks of ``chunk_s`` seconds, from a reset."""
        self.reset()
        step = max(1, round(chunk_s * self.sfreq))
        return [d for start in range(0, signal.shape[1], step) for d in self.push(signal[:, start:start + step])]


def _samples(name: str, seconds: float, sfreq: float) -> int:
    samples = seconds * sfreq
    if abs(samples - round(samples)) > 1e-9:
        raise ValueError(f"{name}={seconds} s is not a whole number of samples at {sfreq} Hz")
    return round(samples)


@dataclass(frozen=True)
class Recording:
    """Trials of one subject back to back, with what each was.

    Attributes
    ----------
    signal : ndarray, shape (n_channels, n_samples), float32
        The modality's samples in microvolts.
    sfreq : float
    starts_s : ndarray of float
        Where each trial begins, in seconds.
    trial_ids : ndarray of int
        The trials, in order (:attr:`~mkdbook.data.SegmentSet.trial_id`).
    labels : ndarray of int
        Each trial's class (1 high, 0 low).
    """

    signal: np.ndarray
    sfreq: float
    starts_s: np.ndarray
    trial_ids: np.ndarray
    labels: np.ndarray

    def truth(self, times_s: np.ndarray) -> np.ndarray:
        """The class of the trial that is playing at each time (in seconds)."""
        return self.labels[np.searchsorted(self.starts_s, times_s, side="right") - 1]


def continuous_recording(data: SegmentSet, trial_ids: Sequence[int], target: str,
                         modality: str = "eog") -> Recording:
    """Lay the segments of ``trial_ids`` end to end, each trial's in order: one continuous recording.

    Segments are cut without overlap or gaps from the signal after the
    baseline, so a trial's segments in order are that stretch of its
    recording (less any remainder shorter than a segment).

    Raises
    ------
    ValueError
        If a trial has no segments in ``data``.
    """
    pieces, starts, labels, at = [], [], [], 0
    for trial in trial_ids:
        rows = np.flatnonzero(data.trial_id == trial)
        if not len(rows):
            raise ValueError(f"trial {trial} has no segments in these data")
        rows = rows[np.argsort(data.position[rows])]
        segments = data.modality(modality, rows)
        pieces.append(np.concatenate(list(segments), axis=1))
        starts.append(at / data.sfreq)
        labels.append(int(data.labels(target)[rows[0]]))
        at += pieces[-1].shape[1]
    return Recording(np.concatenate(pieces, axis=1).astype(np.float32), data.sfreq, np.asarray(starts),
                     np.asarray(trial_ids), np.asarray(labels))
