"""Shared fixtures: small DEAP-format folders written on the fly, and segment sets built in memory.

Every test that needs a :class:`~mkdbook.data.segments.SegmentSet` without
a folder behind it builds one with :func:`make_segments`, importing it
(``from conftest import make_segments``): most build theirs once, at module
level, where a pytest fixture cannot reach, and ``cluster_methods.py`` builds
its own in other processes as well.
"""

from __future__ import annotations

import os

# Under pytest-xdist every worker gets one thread (and so does every process
# it starts): workers with a thread pool per core each would start more
# threads than there are cores, and those threads wait on each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pickle
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.segments import SegmentConfig, SegmentSet, TrialBaseline


def deap_dict(subject: int, *, dtype=np.float32) -> dict[str, np.ndarray]:
    """A valid DEAP subject dict whose samples encode where they come from.

    Sample values are ``subject * 1000 + trial + channel / 100``, plus the
    time index scaled to stay small, so tests can check that segmenting and
    caching put every sample in its place.
    """
    rng = np.random.default_rng(subject)
    trial = np.arange(DEAP.n_trials)[:, None, None]
    channel = np.arange(len(DEAP.channels))[None, :, None]
    time = np.arange(DEAP.n_samples)[None, None, :]
    data = (subject * 1000 + trial + channel / 100 + time * 1e-5).astype(dtype)
    labels = rng.uniform(1, 9, size=(DEAP.n_trials, len(DEAP.rating_scales)))
    return {"data": data, "labels": labels}


def write_pickle(path: Path, obj: object) -> Path:
    with path.open("wb") as stream:
        pickle.dump(obj, stream, protocol=2)
    return path


@pytest.fixture(scope="session")
def deap_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two valid subject files, written once per session (pickling them is slow)."""
    folder = tmp_path_factory.mktemp("template")
    for subject in (1, 2):
        write_pickle(folder / f"s{subject:02d}.dat", deap_dict(subject))
    return folder


@pytest.fixture
def deap_dir(tmp_path: Path, deap_template: Path) -> Path:
    """A fresh folder with two valid subject files, s01.dat and s02.dat, safe to damage."""
    folder = tmp_path / "data_preprocessed_python"
    shutil.copytree(deap_template, folder)
    return folder


def make_segments(n_subjects: int, n_trials: int, per_trial: int, n_times: int, *, seed: int = 0,
                  ratings: np.ndarray | None = None,
                  signals: np.ndarray | Literal["noise", "zeros"] = "noise",
                  shift: Mapping[int, float] | None = None, gain: Mapping[int, float] | None = None,
                  eeg_scale: float = 1.0, source: str = "test", layout: Layout = DEAP,
                  config: SegmentConfig | None = None, baseline: TrialBaseline | None = None) -> SegmentSet:
    """Segments of ``n_subjects`` subjects who each watched the same ``n_trials`` trials.

    Subjects are numbered from 1, trials from 0 in each subject, and each
    trial has ``per_trial`` segments (positions 0, 1, ...), subject by
    subject and trial by trial. By default the valence of each trial is drawn
    uniformly in [1, 9] and every rating scale of the trial equals it; the
    signals are drawn from a standard normal distribution, after the
    ratings, from the same generator; ``shift`` and ``gain`` then let chosen
    channels follow the valence, so that a network has something to learn.

    Parameters
    ----------
    n_subjects, n_trials, per_trial, n_times : int
        The sizes: ``n_subjects * n_trials * per_trial`` segments of
        ``n_times`` samples.
    seed : int, default 0
        Seed of the generator that draws the ratings and the signals.
    ratings : ndarray, shape (n_subjects * n_trials, n_scales), optional
        Each trial's ratings, subject by subject, in ``layout.rating_scales``
        order; drawn when omitted. Every segment of a trial gets them.
    signals : ndarray or {"noise", "zeros"}, default "noise"
        The signals, shape ``(n_segments, n_channels, n_times)``, or how to
        make them.
    shift : mapping of int to float, optional
        Channel row -> value added to the segments of high-valence trials
        (valence above 5).
    gain : mapping of int to float, optional
        Channel row -> the amplitude of high-valence trials' segments is
        multiplied by ``1 + gain``; applied after ``shift``.
    eeg_scale : float, default 1.0
        Factor on every EEG channel, applied last: EEG and EOG on different
        scales, as in DEAP.
    source : str, default "test"
    layout : Layout, default DEAP
    config : SegmentConfig, optional
        ``SegmentConfig()`` when omitted.
    baseline : TrialBaseline, optional

    Returns
    -------
    SegmentSet
    """
    rng = np.random.default_rng(seed)
    n_segments = n_subjects * n_trials * per_trial
    if ratings is None:
        valence = rng.uniform(1, 9, size=n_subjects * n_trials)
        ratings = np.stack([valence] * len(layout.rating_scales), 1)
    segment_ratings = np.repeat(ratings, per_trial, axis=0).astype(np.float32)
    if isinstance(signals, str):
        shape = (n_segments, len(layout.channels), n_times)
        signals = (rng.standard_normal(shape) if signals == "noise" else np.zeros(shape)).astype(np.float32)
    high = segment_ratings[:, layout.rating_column("valence"), None] > 5
    for row, value in (shift or {}).items():
        signals[:, row] += value * high
    for row, value in (gain or {}).items():
        signals[:, row] *= 1.0 + value * high
    if eeg_scale != 1.0:
        signals[:, layout.picks("eeg")] *= eeg_scale
    return SegmentSet(signals, np.repeat(np.arange(1, n_subjects + 1), n_trials * per_trial),
                      np.tile(np.repeat(np.arange(n_trials), per_trial), n_subjects),
                      np.tile(np.arange(per_trial), n_subjects * n_trials), segment_ratings,
                      config or SegmentConfig(), source, layout, baseline)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A simulated cohort of one subject in DEAP's format, written once per test module."""
    from mkdbook.data.simulate import simulate_cohort

    folder = tmp_path_factory.mktemp("cohort")
    simulate_cohort(folder, n_subjects=1, progress=False)
    return folder
