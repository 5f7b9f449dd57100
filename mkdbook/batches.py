"""From memory-mapped segments to standardised batches: the input path of every network.

:class:`ChannelScaler` centres and scales each channel with statistics of the
training segments only; :func:`iterate_batches` reads segments from the
memory map in batches keyed by modality, as the networks take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mkdbook.data.segments import SegmentSet

__all__ = ["ChannelScaler", "iterate_batches"]


@dataclass
class ChannelScaler:
    """Per-channel standardisation fitted on training segments only.

    Signals arrive in microvolts with very different ranges (EEG tens, EOG
    hundreds); each channel is centred and scaled by statistics of the
    *training* set, so nothing about validation or test data reaches the model.
    """

    mean: dict[str, Tensor]
    std: dict[str, Tensor]

    @classmethod
    def fit(cls, data: SegmentSet, index: np.ndarray, modalities: tuple[str, ...],
            max_segments: int = 2048, seed: int = 0) -> ChannelScaler:
        """Estimate channel means and standard deviations from (a sample of) ``index``."""
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(index, size=min(len(index), max_segments), replace=False))
        mean, std = {}, {}
        for name in modalities:
            values = np.asarray(data.modality(name, sample), dtype=np.float64)
            mean[name] = torch.tensor(values.mean(axis=(0, 2)), dtype=torch.float32)[:, None]
            std[name] = torch.tensor(values.std(axis=(0, 2)) + 1e-6, dtype=torch.float32)[:, None]
        return cls(mean, std)

    def __call__(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {k: (v - self.mean[k].to(v.device)) / self.std[k].to(v.device) for k, v in batch.items()}

    def state_dict(self) -> dict[str, dict[str, Tensor]]:
        """Tensors only, so checkpoints load with ``weights_only=True``."""
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state_dict(cls, state: dict[str, dict[str, Tensor]]) -> ChannelScaler:
        """Inverse of :meth:`state_dict`."""
        return cls(dict(state["mean"]), dict(state["std"]))


def iterate_batches(data: SegmentSet, index: np.ndarray, target: str,
                    modalities: tuple[str, ...], batch_size: int,
                    rng: np.random.Generator | None = None) -> Iterator[tuple[dict[str, Tensor], Tensor]]:
    """Yield ``(batch, labels)`` from the memory-mapped segments.

    Parameters
    ----------
    data : SegmentSet
    index : ndarray of int
        Segments to visit.
    target : str
        Rating scale that gives the labels.
    modalities : tuple of str
        Keys of the batch dicts (the network's ``modalities``).
    batch_size : int
    rng : numpy Generator, optional
        Shuffles the order when given; sequential otherwise.

    Yields
    ------
    batch : dict of str to Tensor, each (B, n_channels, n_times), float32
    labels : Tensor of int64, shape (B,)
    """
    order = rng.permutation(index) if rng is not None else np.asarray(index)
    labels = data.labels(target)
    for start in range(0, len(order), batch_size):
        # Sorted rows read the memory map in file order, which is faster.
        rows = np.sort(order[start:start + batch_size])
        arrays = data.batch(rows, modalities)
        yield ({k: torch.from_numpy(v) for k, v in arrays.items()},
               torch.from_numpy(labels[rows]))
