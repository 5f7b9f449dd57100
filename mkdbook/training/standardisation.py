"""Standardising the input: each channel centred and scaled, by statistics of training data only.

:class:`ChannelScaler` centres and scales each channel per subject (statistics
of that subject's training segments), per trial (its pre-trial baseline) or
globally (all training segments). It is the second half of every network's
input path; the first, reading segments from the memory map in batches, is
:func:`mkdbook.training.batches.iterate_batches`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from mkdbook.core.checks import check_option
from mkdbook.data.segments import STANDARDISATIONS, TRIAL_ID, SegmentSet

__all__ = ["STANDARDISATIONS", "ChannelScaler"]


@dataclass
class ChannelScaler:
    """Per-channel standardisation whose statistics never come from validation or test trials.

    Signals arrive in microvolts with very different ranges (EEG tens, EOG
    hundreds), and every subject's recording has its own offsets and gains.
    Each channel is centred and scaled by one of three sets of statistics:

    ``"subject"``
        the mean and standard deviation of that subject's *training* segments
        (one set per subject). A subject without training trials (a
        leave-subject-out test subject) gets the pooled training statistics,
        never statistics of its own test data.
    ``"baseline"``
        those of the trial's own 3-s pre-trial baseline (DEAP's classic
        choice): no training data is needed, and no rating is read.
    ``"global"``
        those of all training segments pooled.

    The pooled statistics are always fitted; they are the ``"global"`` mode
    and the fallback. Batches carry their rows' trial ids under
    :data:`~mkdbook.data.segments.TRIAL_ID` (:meth:`SegmentSet.batch
    <mkdbook.data.segments.SegmentSet.batch>` adds them), from which a row's
    statistics are looked up.

    Attributes
    ----------
    mean, std : dict of str to Tensor, each (n_channels, 1)
        Pooled training statistics per modality.
    mode : str
        One of :data:`STANDARDISATIONS`.
    groups : Tensor of int64, shape (n_groups,)
        Sorted keys of the per-group statistics: subject numbers
        (``"subject"``), trial ids (``"baseline"``), empty (``"global"``).
    group_mean, group_std : dict of str to Tensor, each (n_groups, n_channels, 1)
    """

    mean: dict[str, Tensor]
    std: dict[str, Tensor]
    mode: str = "global"
    groups: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    group_mean: dict[str, Tensor] = field(default_factory=dict)
    group_std: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_option("standardise", self.mode, STANDARDISATIONS)

    @classmethod
    def fit(cls, data: SegmentSet, index: np.ndarray, modalities: tuple[str, ...],
            max_segments: int = 2048, seed: int = 0, mode: str = "global",
            per_subject: int = 512) -> ChannelScaler:
        """Estimate the statistics from (a sample of) the training segments ``index``.

        Parameters
        ----------
        data : SegmentSet
        index : ndarray of int
            The training segments; nothing else is read (``"baseline"`` reads
            each trial's own baseline, which is not a training segment).
        modalities : tuple of str
        max_segments : int
            Sample size for the pooled statistics.
        seed : int
            Seeds the samples.
        mode : {"subject", "baseline", "global"}
        per_subject : int
            Sample size per subject for ``"subject"``.

        Raises
        ------
        ValueError
            For ``"baseline"`` when ``data`` holds no baseline statistics.
        """
        check_option("standardise", mode, STANDARDISATIONS)
        rng = np.random.default_rng(seed)
        mean, std = _statistics(data, rng.choice(index, size=min(len(index), max_segments),
                                                 replace=False), modalities)
        if mode == "global":
            return cls(mean, std)
        if mode == "baseline":
            if data.baseline is None:
                raise ValueError("standardise='baseline' needs the trials' baseline statistics, which "
                                 "these segments lack (cut with baseline_seconds > 0 from a segment cache)")
            stats = data.baseline
            group_mean = {m: torch.tensor(stats.mean[:, data.layout.picks(m)])[..., None] for m in modalities}
            # A flat baseline (a channel at rest) must not blow the trial up.
            group_std = {m: torch.tensor(stats.std[:, data.layout.picks(m)] + 1e-6)[..., None]
                         for m in modalities}
            return cls(mean, std, mode, torch.as_tensor(stats.trial_id, dtype=torch.int64),
                       group_mean, group_std)
        subjects = np.unique(data.subject[index])
        per = [_statistics(data, rng.choice(rows, size=min(len(rows), per_subject), replace=False),
                           modalities)
               for rows in (index[data.subject[index] == s] for s in subjects)]
        return cls(mean, std, mode, torch.as_tensor(subjects, dtype=torch.int64),
                   {m: torch.stack([p[0][m] for p in per]) for m in modalities},
                   {m: torch.stack([p[1][m] for p in per]) for m in modalities})

    def statistics(self, name: str, ids: Tensor | None) -> tuple[Tensor, Tensor]:
        """Mean and standard deviation of modality ``name`` for rows with trial ids ``ids``.

        Returns
        -------
        mean, std : Tensor
            (n_channels, 1) in ``"global"`` mode, (len(ids), n_channels, 1)
            otherwise; a row whose subject (or trial) has no statistics gets
            the pooled ones.
        """
        mean, std = self.mean[name], self.std[name]
        if self.mode == "global":
            return mean, std
        if ids is None:
            raise ValueError(f"standardise={self.mode!r} needs the rows' trial ids: pass the batch "
                             f"with its {TRIAL_ID!r} entry (SegmentSet.batch adds it)")
        keys = ids // 1000 if self.mode == "subject" else ids
        groups = self.groups.to(keys.device)
        mean, std = mean.to(keys.device), std.to(keys.device)
        if not len(groups):
            return mean.expand(len(keys), -1, -1), std.expand(len(keys), -1, -1)
        position = torch.searchsorted(groups, keys).clamp(max=len(groups) - 1)
        known = (groups[position] == keys)[:, None, None]
        return (torch.where(known, self.group_mean[name].to(keys.device)[position], mean),
                torch.where(known, self.group_std[name].to(keys.device)[position], std))

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Standardise every modality of ``batch``; other entries (the trial ids) pass unchanged."""
        ids = batch.get(TRIAL_ID)
        out = dict(batch)
        for name in self.mean:
            if name in batch:
                value = batch[name]
                mean, std = self.statistics(name, ids)
                out[name] = (value - mean.to(value.device)) / std.to(value.device)
        return out

    def state_dict(self) -> dict:
        """Tensors and the mode's name only, so checkpoints load with ``weights_only=True``."""
        return {"mean": self.mean, "std": self.std, "mode": self.mode, "groups": self.groups,
                "group_mean": self.group_mean, "group_std": self.group_std}

    @classmethod
    def from_state_dict(cls, state: dict) -> ChannelScaler:
        """Inverse of :meth:`state_dict` (a state without ``mode`` is a global scaler)."""
        if "mode" not in state:
            return cls(dict(state["mean"]), dict(state["std"]))
        return cls(dict(state["mean"]), dict(state["std"]), state["mode"], state["groups"],
                   dict(state["group_mean"]), dict(state["group_std"]))


def _statistics(data: SegmentSet, rows: np.ndarray,
                modalities: tuple[str, ...]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Per-channel mean and standard deviation of the segments ``rows``, each (n_channels, 1)."""
    rows = np.sort(rows)
    mean, std = {}, {}
    for name in modalities:
        values = np.asarray(data.modality(name, rows), dtype=np.float64)
        mean[name] = torch.tensor(values.mean(axis=(0, 2)), dtype=torch.float32)[:, None]
        std[name] = torch.tensor(values.std(axis=(0, 2)) + 1e-6, dtype=torch.float32)[:, None]
    return mean, std
