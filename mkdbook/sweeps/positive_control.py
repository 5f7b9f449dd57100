"""The registered positive control: a setting where distillation must help, stated before it ran.

A null result says something only if the same pipeline finds a gain where
one is known to exist. This module holds the book's registered positive
control as a value, :data:`POSITIVE_CONTROL`: the regime, the endpoint and
the predictions, committed to the repository before the first run of the
regime (the book's page *Registered: the positive control of chapter 7*
quotes it, and the repository's history shows the order). Chapter 7 runs the regime and sets the measured
numbers beside these.

The regime is the case distillation was invented for (Hinton et al., 2015): a
student with few labelled examples of its own and many recordings without
labels (a *transfer set*), on which the teacher's soft labels are the only
supervision beyond the labels. The teacher is trained on the labelled
trials only, so its answers on the transfer set are out-of-sample. In the
simulator the EEG's and the EOG's noise are independent given the latent
state, so the teacher's errors on the transfer set are unrelated to what the
student reads: two views of one state, the setting in which pseudo-labels
from one view teach the other (Blum and Mitchell, 1998); Lopez-Paz et al.
(2016) frame the same gain as generalized distillation with privileged
information.

Works cited:

* G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a Neural
  Network," arXiv:1503.02531, 2015.
* A. Blum and T. Mitchell, "Combining labeled and unlabeled data with
  co-training," COLT 1998, pp. 92-100.
* D. Lopez-Paz, L. Bottou, B. Schoelkopf and V. Vapnik, "Unifying
  distillation and privileged information," ICLR 2016.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mkdbook.sweeps.band_power_networks import BandPowerData
from mkdbook.sweeps.dose_response import Setting, gains

__all__ = ["POSITIVE_CONTROL", "PositiveControl", "assess", "control_setting"]


@dataclass(frozen=True)
class PositiveControl:
    """A registered positive control of the pocket networks: regime, endpoint and predictions.

    Attributes
    ----------
    target : str
        The rating the networks classify.
    n_subjects : int
        Subjects of the book's default simulated cohort (variant ``"default"``,
        the chapter's cohort seed).
    n_labelled : int
        Rated (labelled) training trials per subject and fold, the first ones
        in the labelling order of :func:`~mkdbook.sweeps.band_power_networks.trial_folds`
        (one from each block of ten videos when it is 4). Teacher and student
        see the labels of these trials only.
    transfer : bool
        ``True``: every other training trial of the fold is in the transfer
        set, recorded (EEG and EOG) but unrated; the taught students learn
        from the teacher's soft labels there, and from labels on the rated
        trials only.
    seeds : tuple of int
        Seeds of the folds and the networks' initial weights; every fold of
        each seed is tested.
    endpoint : str
        What is compared, in words.
    smallest_effect : float
        The smallest gain in AUC worth a teacher: below it, a gain is of no
        practical interest.
    min_oracle_gain : float
        Predicted: the oracle teacher's gain is at least this, with its
        interval above zero.
    learned_gain_sign : int
        Predicted sign of the learned teacher's gain (its interval on that
        side of zero).
    shuffled_gain_below : float
        Predicted: the shuffled teacher's interval ends below this (no gain of
        interest).
    level : float
        Confidence level of the intervals.
    """

    target: str = "valence"
    n_subjects: int = 12
    n_labelled: int = 4
    transfer: bool = True
    seeds: tuple[int, ...] = (0, 1, 2)
    endpoint: str = ("per-subject test AUC (segments of the subject's held-out trials, each fold "
                     "scored alone, folds then seeds averaged), paired with the student on the "
                     "rated trials alone; 95 % t-interval over subjects")
    smallest_effect: float = 0.02
    min_oracle_gain: float = 0.03
    learned_gain_sign: int = 1
    shuffled_gain_below: float = 0.02
    level: float = 0.95


#: The registered positive control of chapter 7 (registered before its first run).
POSITIVE_CONTROL = PositiveControl()


def control_setting(data: BandPowerData, control: PositiveControl = POSITIVE_CONTROL) -> Setting:
    """The sweep setting of the registered regime on ``data`` (its value is the number of rated trials)."""
    return Setting(control.n_labelled, data, n_train=control.n_labelled, transfer=control.transfer)


def assess(scores: pd.DataFrame, control: PositiveControl = POSITIVE_CONTROL) -> pd.DataFrame:
    """The registered predictions beside the measured gains, each judged by its registered criterion.

    Parameters
    ----------
    scores : DataFrame
        :func:`~mkdbook.sweeps.dose_response.sweep` of :func:`control_setting`,
        for the registered seeds.
    control : PositiveControl

    Returns
    -------
    DataFrame
        One row per prediction (``P1`` oracle, ``P2`` learned teacher, ``P3``
        shuffled teacher): ``arm``, ``registered`` (the prediction in words),
        ``gain`` with ``ci_low`` and ``ci_high`` (paired over subjects, seeds
        averaged; :func:`~mkdbook.sweeps.dose_response.gains`), ``verdict``
        (at the smallest effect of interest) and ``outcome``, ``"confirmed"``
        or ``"failed"``.
    """
    table = gains(scores, level=control.level, smallest_effect=control.smallest_effect).set_index("arm")
    sign = "above" if control.learned_gain_sign > 0 else "below"
    predictions = {
        "P1": ("oracle", f"gain >= {control.min_oracle_gain:+.2f}, interval above 0",
               lambda g: g["gain"] >= control.min_oracle_gain and g["ci_low"] > 0),
        "P2": ("distilled", f"interval {sign} 0",
               lambda g: g["ci_low"] > 0 if control.learned_gain_sign > 0 else g["ci_high"] < 0),
        "P3": ("shuffled", f"interval ends below {control.shuffled_gain_below:+.2f}",
               lambda g: g["ci_high"] < control.shuffled_gain_below),
    }
    rows = []
    for name, (arm, registered, holds) in predictions.items():
        gain = table.loc[arm]
        rows.append({"prediction": name, "arm": arm, "registered": registered, "gain": gain["gain"],
                     "ci_low": gain["ci_low"], "ci_high": gain["ci_high"], "verdict": gain["verdict"],
                     "outcome": "confirmed" if holds(gain) else "failed"})
    return pd.DataFrame(rows).set_index("prediction")
