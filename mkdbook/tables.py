"""The tidy results table of a grid: one row per cell and test subject, and its summary."""

from __future__ import annotations

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

from mkdbook.results import CellResult

__all__ = ["TABLE_COLUMNS", "per_subject", "summarise"]

#: Columns of the table :func:`mkdbook.experiments.run_grid` returns, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "method", "target", "fold", "seed", "subject", "accuracy", "f1", "n_segments", "n_trials",
)


def per_subject(result: CellResult) -> pd.DataFrame:
    """One row per test subject of a cell (rows of :func:`mkdbook.experiments.run_grid`'s table)."""
    cell = result.cell
    rows = []
    for subject, part in result.segments.groupby("subject", sort=True):
        rows.append({
            "method": cell.method, "target": cell.target, "fold": cell.fold, "seed": cell.seed,
            "subject": int(subject),
            "accuracy": accuracy_score(part["label"], part["prediction"]),
            # Macro-F1 as the trainer computes it: over the classes present.
            "f1": f1_score(part["label"], part["prediction"], average="macro", zero_division=0),
            "n_segments": len(part),
            "n_trials": part["trial"].nunique(),
        })
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds and seeds, per method and target.

    Each cell's score is first the mean over its test subjects; the mean and
    sample standard deviation (``ddof=1``; NaN for a single cell) are then
    taken over cells.

    Parameters
    ----------
    table : DataFrame
        As returned by :func:`mkdbook.experiments.run_grid`.

    Returns
    -------
    DataFrame
        Columns ``method, target, accuracy_mean, accuracy_sd, f1_mean, f1_sd,
        n_cells``, methods in their order of first appearance.
    """
    cells = table.groupby(["method", "target", "fold", "seed"], sort=False)[["accuracy", "f1"]].mean()
    summary = cells.groupby(["method", "target"], sort=False).agg(
        accuracy_mean=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
        f1_mean=("f1", "mean"), f1_sd=("f1", "std"), n_cells=("accuracy", "size"))
    return summary.reset_index()
