"""The chance reference of :mod:`mkdbook.book.plots` against a direct count."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from mkdbook.analysis.stats import chance_interval
from mkdbook.book.plots import ChanceReference, chance_reference, draw_chance
from mkdbook.data.segments import SegmentSet
from mkdbook.experiments.grids import Grid
from mkdbook.splits import make_split

from conftest import make_segments

N_SUBJECTS, N_TRIALS, PER_TRIAL = 3, 40, 2


def skewed_segments() -> SegmentSet:
    """Segments whose trials are rated high on valence about 70 % of the time."""
    rng = np.random.default_rng(0)
    n_trials = N_SUBJECTS * N_TRIALS
    valence = np.where(rng.random(n_trials) < 0.7, 8.0, 2.0)
    return make_segments(N_SUBJECTS, N_TRIALS, PER_TRIAL, 8, ratings=np.stack([valence] * 4, 1),
                         signals="zeros", source="skewed")


@pytest.mark.parametrize("part", ["test", "val"])
def test_chance_reference_counts_the_training_majority_on_the_evaluated_set(part):
    data = skewed_segments()
    grid = Grid(("eog",), targets=("valence",), folds=(0, 2), seeds=(0, 1), n_folds=5)
    labels = data.labels("valence")
    rates, trials = [], []
    for seed in (0, 1):
        for fold in (0, 2):
            split = make_split(data, "trial", fold=fold, n_folds=5, seed=seed)
            majority = int(labels[split.train].mean() > 0.5)
            index = getattr(split, part)
            rates.append(np.mean(labels[index] == majority))
            trials.append(len(np.unique(data.trial_id[index])))
    reference = chance_reference(data, grid, "valence", part)
    assert reference.majority == pytest.approx(np.mean(rates))
    assert reference.majority > 0.6
    assert reference.n_trials == int(np.median(trials))


def test_guess_range_reaches_up_to_the_majority_rate():
    reference = ChanceReference(majority=0.7, n_trials=24)
    low, high = reference.guess_range
    assert low == chance_interval(24, 0.5)[0]
    assert high == chance_interval(24, 0.7)[1] > chance_interval(24, 0.5)[1]


def test_draw_chance_draws_a_band_and_a_line():
    fig, ax = plt.subplots()
    draw_chance(ax, ChanceReference(majority=0.6, n_trials=24))
    labels = ax.get_legend_handles_labels()[1]
    assert labels == ["chance range (24 trials)", "training-majority class"]
    assert ax.lines[0].get_ydata()[0] == pytest.approx(0.6)
    plt.close(fig)
