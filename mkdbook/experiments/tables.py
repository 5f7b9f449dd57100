"""The tidy results table of a grid: one row per cell and test subject, and its summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mkdbook.experiments.results import CellResult
from mkdbook.training.metrics import score

__all__ = ["TABLE_COLUMNS", "per_subject", "summarise"]

#: Columns of the table :func:`mkdbook.experiments.grids.run_grid` returns, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "method", "target", "fold", "seed", "subject", "accuracy", "majority_rate", "balanced_accuracy",
    "auc", "f1", "n_segments", "n_trials",
)


def per_subject(result: CellResult) -> pd.DataFrame:
    """One row per test subject of a cell, scored as the trainer scores (:func:`~mkdbook.training.metrics.score`)."""
    cell = result.cell
    majority = result.record["test"]["majority_class"]
    columns = sorted((c for c in result.segments.columns if c.startswith("p") and c[1:].isdigit()),
                     key=lambda c: int(c[1:]))
    rows = []
    for subject, part in result.segments.groupby("subject", sort=True):
        labels = part["label"].to_numpy()
        scores = score(part[columns].to_numpy(), labels)
        rows.append({
            "method": cell.method, "target": cell.target, "fold": cell.fold, "seed": cell.seed,
            "subject": int(subject), "accuracy": scores.accuracy,
            # Always answering the training folds' majority class: the bar a constant predictor sets.
            "majority_rate": float(np.mean(labels == majority)),
            "balanced_accuracy": scores.balanced_accuracy, "auc": scores.auc, "f1": scores.f1,
            "n_segments": len(part), "n_trials": part["trial"].nunique(),
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
        As returned by :func:`mkdbook.experiments.grids.run_grid`.

    Returns
    -------
    DataFrame
        Columns ``method, target, accuracy_mean, accuracy_sd, majority_rate_mean,
        balanced_accuracy_mean, balanced_accuracy_sd, auc_mean, auc_sd, f1_mean,
        f1_sd, n_cells``, methods in their order of first appearance: the
        majority-class rate stands beside every accuracy, and a balanced
        accuracy or AUC of 0.5 marks a constant predictor.
    """
    scores = ["accuracy", "majority_rate", "balanced_accuracy", "auc", "f1"]
    cells = table.groupby(["method", "target", "fold", "seed"], sort=False)[scores].mean()
    summary = cells.groupby(["method", "target"], sort=False).agg(
        accuracy_mean=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
        majority_rate_mean=("majority_rate", "mean"),
        balanced_accuracy_mean=("balanced_accuracy", "mean"), balanced_accuracy_sd=("balanced_accuracy", "std"),
        auc_mean=("auc", "mean"), auc_sd=("auc", "std"),
        f1_mean=("f1", "mean"), f1_sd=("f1", "std"), n_cells=("accuracy", "size"))
    return summary.reset_index()
