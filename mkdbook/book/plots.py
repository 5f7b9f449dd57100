"""The chance reference drawn on every accuracy figure of the book.

Fifty per cent is not the bar a binary classifier has to clear. A network
that learned only the class balance scores the rate of the training folds'
majority class on the test set, which can lie above or below one half; and a
guesser tested on a finite number of *trials* (the segments of a trial share
label and recording) scatters around its expectation. Every accuracy figure
therefore shows both: the majority-class rate as a dashed line and the central
95 % range of a guesser as a grey band (Combrisson, E., & Jerbi, K., 2015,
"Exceeding chance level by chance", Journal of Neuroscience Methods 250,
126-136).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.axes import Axes

from mkdbook.analysis.stats import chance_interval
from mkdbook.data.segments import SegmentSet
from mkdbook.experiments.grids import Grid
from mkdbook.splits import make_split


@dataclass(frozen=True)
class ChanceReference:
    """What a classifier without information scores on a grid's test sets.

    :func:`chance_reference` computes it for the folds of a :class:`Grid`.
    When the test predictions of all folds are pooled instead, so that every
    trial is tested once, build it directly from the pooled majority-class
    rate and the number of trials of the whole cohort.

    Attributes
    ----------
    majority : float
        Accuracy of always answering the training folds' majority class,
        averaged over the grid's folds and seeds.
    n_trials : int
        Median number of trials in one evaluated set: the honest sample size
        of one fold's accuracy.
    """

    majority: float
    n_trials: int

    @property
    def guess_range(self) -> tuple[float, float]:
        """Central 95 % range of a guesser on ``n_trials`` trials, stretched up to the majority rate."""
        low = chance_interval(self.n_trials, 0.5)[0]
        high = chance_interval(self.n_trials, max(0.5, self.majority))[1]
        return low, high


def chance_reference(data: SegmentSet, grid: Grid, target: str, part: str = "test") -> ChanceReference:
    """The chance reference of ``target`` on the grid's splits.

    Parameters
    ----------
    data : SegmentSet
        The segments the grid ran on.
    grid : Grid
        Supplies the split kind, the number of folds, the folds run and the seeds.
    target : str
        ``"valence"`` or ``"arousal"``.
    part : str
        ``"test"`` or ``"val"``: the set the accuracies were measured on.
    """
    labels = data.labels(target)
    rates, trials = [], []
    for seed in grid.seeds:
        for fold in grid.fold_list:
            split = make_split(data, grid.split_kind, fold=fold, n_folds=grid.n_folds, seed=seed)
            majority = np.bincount(labels[split.train], minlength=2).argmax()
            index = getattr(split, part)
            rates.append(float(np.mean(labels[index] == majority)))
            trials.append(len(np.unique(data.trial_id[index])))
    return ChanceReference(float(np.mean(rates)), int(np.median(trials)))


def draw_chance(ax: Axes, reference: ChanceReference) -> None:
    """Draw the guessing range (grey band) and the majority-class rate (dashed line) on ``ax``."""
    low, high = reference.guess_range
    ax.axhspan(low, high, color="grey", alpha=0.25, label=f"chance range ({reference.n_trials} trials)")
    ax.axhline(reference.majority, color="grey", ls="--", lw=1, label="training-majority class")
