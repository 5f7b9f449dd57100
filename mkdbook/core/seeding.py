"""One way to build something reproducibly: :func:`seeded`.

Networks, projectors and discriminators are built under a seed so that the
same configuration gives the same initial weights, and without disturbing
the caller's random state, so that building one more module never changes
what is drawn afterwards.

Limits: the same seed gives the same numbers on the CPU with the same
PyTorch release; CUDA kernels and other releases may differ in rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded by ``seed``, then restore it.

    Parameters
    ----------
    seed : int
        Seed for :func:`torch.manual_seed`.

    Examples
    --------
    >>> from torch import nn
    >>> with seeded(0):
    ...     layer = nn.Linear(4, 2)
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
