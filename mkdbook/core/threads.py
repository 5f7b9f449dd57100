"""How many torch threads compute a grid's cell: one number for every executor.

On the CPU, the thread count changes how a convolution's or a matrix
product's sums are split, and so the last bits of a network's weights and
scores: a cell trained on two threads and the same cell trained on one agree
in accuracy but may differ in AUC by ~1e-4. A cell is therefore computed on
:func:`cell_threads` threads wherever it runs (this process, a local Dask
worker, a batch job), so that a grid's numbers do not depend on who computed
it. ``MKDBOOK_CELL_THREADS`` sets the number (default 1, which is also the
fastest way to train several small networks side by side).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from mkdbook.core.checks import check_int

__all__ = ["THREADS_VARIABLE", "cell_threads", "torch_threads"]

#: Environment variable that sets :func:`cell_threads`.
THREADS_VARIABLE = "MKDBOOK_CELL_THREADS"


def cell_threads() -> int:
    """The torch threads a cell is computed on: ``MKDBOOK_CELL_THREADS``, else 1.

    Raises
    ------
    ValueError
        If the variable is not an integer >= 1.
    """
    text = os.environ.get(THREADS_VARIABLE)
    if text is None:
        return 1
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{THREADS_VARIABLE} must be a number of threads, got {text!r}") from None
    return check_int(THREADS_VARIABLE, value, 1)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block on ``threads`` torch (intra-op) threads, then restore the previous number.

    Parameters
    ----------
    threads : int
        Threads for :func:`torch.set_num_threads` (>= 1).
    """
    threads = check_int("threads", threads, 1)
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
