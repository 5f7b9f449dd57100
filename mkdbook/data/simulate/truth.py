"""The known truth of a simulated cohort: latent valence and arousal per trial, second and segment.

The simulator writes it beside the subject files, in ``latent/sNN.npz``
(never inside ``sNN.dat``, which holds only what DEAP holds), so a chapter can
compute what the latent state allows (the best accuracy any model could reach)
and build an oracle teacher from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr

from mkdbook.core.checks import check_int
from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.segments import SegmentConfig

#: Sub-folder of a simulated cohort that holds the latent state, one ``sNN.npz`` per subject.
LATENT_FOLDER = "latent"

#: Seconds of stimulus after DEAP's 3-s baseline: the span of :attr:`Latent.per_second`.
STIMULUS_SECONDS = round(DEAP.n_samples / DEAP.sfreq - DEAP.baseline_seconds)


@dataclass(frozen=True, eq=False)
class Latent:
    """One simulated subject's latent state, and the rating model that turns it into labels.

    Latent units: a video quadrant sits about one unit from neutral (see
    :class:`~mkdbook.data.simulate.SimulationConfig`). The last axis of every
    state array is (valence, arousal).

    Attributes
    ----------
    subject : int
        Subject number.
    trial : ndarray, shape (40, 2)
        The state of each trial that the ratings report (under the ``null``
        variant, the signals follow another state: see ``signal_trial``).
    per_second : ndarray, shape (40, 60, 2)
        The state that drives the signals, second by second over the
        stimulus (second ``k`` covers trial time ``3 + k`` to ``4 + k`` s).
        It fluctuates around ``signal_trial``.
    signal_trial : ndarray, shape (40, 2)
        The trial state the signals fluctuate around; equal to ``trial``
        except under the ``null`` variant.
    rating_scale : float
        Rating points per latent unit.
    rating_bias : ndarray, shape (2,)
        The subject's offset on the valence and arousal scales (points).
    rating_noise_sd : float
        SD of the subject's self-report noise (points).
    """

    subject: int
    trial: np.ndarray
    per_second: np.ndarray
    signal_trial: np.ndarray
    rating_scale: float
    rating_bias: np.ndarray
    rating_noise_sd: float


def label_probability(latent: Latent, state: np.ndarray, threshold: float = 5.0) -> np.ndarray:
    """Probability that the binary label is "high" given a latent state, under the rating model.

    A rating is ``5 + rating_scale * state + rating_bias + noise`` (noise
    normal with SD ``rating_noise_sd``), clipped to 1-9, and the label is 1
    when the rating exceeds ``threshold`` (clipping never moves a rating
    across a threshold inside 1-9). So ``P(label = 1) = Phi((5 +
    rating_scale * state + bias - threshold) / rating_noise_sd)``. Applied to
    ``latent.trial`` it is the Bayes-optimal oracle for the trial's label;
    applied to a segment's signal state it is an oracle teacher for segments.

    Parameters
    ----------
    latent : Latent
    state : ndarray, shape (..., 2)
        Valence and arousal in latent units.
    threshold : float
        The class threshold on the 1-9 scale (``SegmentConfig.threshold``).

    Returns
    -------
    ndarray, shape (..., 2)
        P(high valence), P(high arousal).
    """
    margin = 5.0 + latent.rating_scale * np.asarray(state) + latent.rating_bias - threshold
    return ndtr(margin / latent.rating_noise_sd)


def per_sample_state(per_second: np.ndarray, layout: Layout = DEAP) -> np.ndarray:
    """The latent state at every sample of a trial, as the simulator applies it.

    Linear interpolation between the centres of the seconds of
    ``per_second``, held constant before the first centre and after the last.

    Returns
    -------
    ndarray, shape (40, layout.n_samples, 2)
    """
    centres = layout.baseline_seconds + 0.5 + np.arange(per_second.shape[1])
    times = np.arange(layout.n_samples) / layout.sfreq
    # Interpolation weights are shared by every trial and both dimensions.
    position = np.clip(np.interp(times, centres, np.arange(len(centres))), 0, len(centres) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(centres) - 1)
    weight = (position - low)[None, :, None]
    return per_second[:, low] * (1 - weight) + per_second[:, high] * weight


def segment_latent(latent: Latent, segment_config: SegmentConfig = SegmentConfig(),
                   layout: Layout = DEAP) -> np.ndarray:
    """Mean signal state over every segment window, cut as :func:`~mkdbook.data.segments.segment_trials` cuts.

    Parameters
    ----------
    latent : Latent
    segment_config : SegmentConfig
        Segment length and baseline, as used for the segments.
    layout : Layout
        The layout the cohort was written in (DEAP's).

    Returns
    -------
    ndarray, shape (40, n_segments, 2)
        Segment ``j`` of trial ``i`` is ``out[i, j]``, matching the segments'
        ``trial`` and ``position``.
    """
    state = per_sample_state(latent.per_second, layout)
    start = layout.samples(segment_config.baseline_seconds)
    n_seg, seg_len = segment_config.segments_per_trial(layout), segment_config.segment_samples(layout)
    body = state[:, start:start + n_seg * seg_len]
    return body.reshape(len(state), n_seg, seg_len, 2).mean(axis=2)


def latent_path(folder: Path | str, subject: int) -> Path:
    """Where :func:`read_latent` finds a subject's latent state in a cohort folder."""
    return Path(folder) / LATENT_FOLDER / f"s{subject:02d}.npz"


def read_latent(folder: Path | str, subject: int) -> Latent:
    """Read one subject's latent state from a simulated cohort folder.

    Parameters
    ----------
    folder : path-like
        A folder written by :func:`~mkdbook.data.simulate.simulate_cohort`.
    subject : int
        Subject number, 1-32.

    Returns
    -------
    Latent

    Raises
    ------
    FileNotFoundError
        If the folder holds no latent state for ``subject`` (real DEAP, or a
        cohort written before the latent state was stored).
    """
    subject = check_int("subject", subject, 1, 32)
    path = latent_path(folder, subject)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no latent state for subject {subject} "
                                "(only simulated cohorts have one; simulate the cohort again)")
    with np.load(path, allow_pickle=False) as stored:
        return Latent(subject=subject, trial=stored["trial"], per_second=stored["per_second"],
                      signal_trial=stored["signal_trial"], rating_scale=float(stored["rating_scale"]),
                      rating_bias=stored["rating_bias"], rating_noise_sd=float(stored["rating_noise_sd"]))


def _latent_arrays(latent: Latent) -> dict[str, np.ndarray]:
    return {"trial": latent.trial, "per_second": latent.per_second, "signal_trial": latent.signal_trial,
            "rating_scale": np.float64(latent.rating_scale), "rating_bias": latent.rating_bias,
            "rating_noise_sd": np.float64(latent.rating_noise_sd)}


def _within_trial(rng: np.random.Generator, trial: np.ndarray, sd: float, tau_s: float) -> np.ndarray:
    """Per-second state: the trial state plus a stationary AR(1) fluctuation of SD ``sd``.

    The fluctuation starts from its stationary distribution, so every second
    of the stimulus varies as much as every other.
    """
    rho = np.exp(-1.0 / tau_s) if tau_s > 0 else 0.0
    shocks = rng.standard_normal((len(trial), STIMULUS_SECONDS, 2))
    wander = np.empty_like(shocks)
    wander[:, 0] = shocks[:, 0]
    for k in range(1, STIMULUS_SECONDS):
        wander[:, k] = rho * wander[:, k - 1] + np.sqrt(1 - rho ** 2) * shocks[:, k]
    return trial[:, None, :] + sd * wander
