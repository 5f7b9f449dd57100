"""From memory-mapped segments to batches keyed by modality: the first half of every network's input path.

:func:`iterate_batches` reads segments from the memory map in batches keyed
by modality, as the networks take them; the second half, standardising each
channel, is :class:`mkdbook.training.standardisation.ChannelScaler`.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor

from mkdbook.data.segments import SegmentSet

__all__ = ["iterate_batches"]


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
        Plus the rows' trial ids under ``"trial_id"`` (int64, (B,)).
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
