"""Experiments: the table of methods, grids of cached cells, their results, and who computes them.

Taught in chapter 8 (ablations and baselines) and on the protocol page.

:mod:`~mkdbook.experiments.methods`
    The methods of the comparison, in one explicit table.
:mod:`~mkdbook.experiments.grids`
    Grids of training runs, cached on disk, and their tidy results table.
:mod:`~mkdbook.experiments.results`
    A cell's stored result: written atomically, read back or computed again.
:mod:`~mkdbook.experiments.tables`
    One row per cell and test subject, and its summary.
:mod:`~mkdbook.experiments.executors`
    Who computes a grid's cells: this process, or the workers of a Dask cluster.
:mod:`~mkdbook.experiments.progress`
    Where a grid stands, read from the cache.
:mod:`~mkdbook.experiments.leases`
    One process at a time works on a cell.
:mod:`~mkdbook.experiments.published`
    A build's finished cells as one archive with a SHA-256 manifest.
:mod:`~mkdbook.experiments.fetch`
    Published results installed into ``MKDBOOK_HOME``, each file verified first.
"""

from mkdbook.experiments.grids import (
    GRIDS,
    TABLE_COLUMNS,
    Grid,
    complete_cells,
    make_grid,
    profile_train_config,
    run_cell,
    run_grid,
    summarise,
    trained_network,
)
from mkdbook.experiments.methods import METHODS, method_named, method_names

__all__ = ["GRIDS", "METHODS", "TABLE_COLUMNS", "Grid", "complete_cells", "make_grid", "method_named",
           "method_names", "profile_train_config", "run_cell", "run_grid", "summarise", "trained_network"]
