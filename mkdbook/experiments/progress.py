"""Where a grid stands, read from the cache: cells done, running and pending, and the time left.

Everything here is read from ``$MKDBOOK_HOME/results``, never from the
process that computes the cells, so the same table describes a grid run by
this process, by a cluster, or by another machine sharing the cache:

* a cell is *done* when its ``result.json`` exists;
* *running* when its lease (:func:`mkdbook.experiments.results.lease_path`) is live;
* *pending* otherwise (a stale lease counts as pending: nobody works on it).

The time left is estimated from measured costs: every ``result.json``
records the seconds its cell took, and an unfinished cell is expected to
cost the mean of the finished cells of its method (of all finished cells
when none of its method has finished yet), divided among the workers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from mkdbook.core.paths import results_dir
from mkdbook.experiments.leases import lease_config, read_lease
from mkdbook.experiments.results import lease_path
from mkdbook.training.runs import Cell, cell_key

__all__ = ["STATES", "GridProgress", "cell_states", "format_duration", "format_status", "status_table"]

#: What :func:`cell_states` says about a cell.
STATES: tuple[str, ...] = ("done", "running", "pending")


def _seconds(folder) -> float | None:
    try:
        return float(json.loads((folder / "result.json").read_text(encoding="utf-8"))["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class _Measured:
    """Seconds of the cells already found done, read once per cell."""

    seconds: dict[str, float] = field(default_factory=dict)

    def read(self, key: str, folder) -> None:
        if key not in self.seconds:
            value = _seconds(folder)
            if value is not None:
                self.seconds[key] = value


def cell_states(cells: Sequence[Cell], measured: _Measured | None = None) -> list[str]:
    """``"done"``, ``"running"`` or ``"pending"`` for each cell (see the module's description)."""
    config = lease_config()
    root = results_dir()
    states = []
    for cell in cells:
        key = cell_key(cell)
        folder = root / key
        if (folder / "result.json").is_file():
            states.append("done")
            if measured is not None:
                measured.read(key, folder)
            continue
        lease = read_lease(lease_path(folder))
        states.append("running" if lease is not None and not lease.is_stale(config) else "pending")
    return states


def _estimates(cells: Sequence[Cell], states: Sequence[str], measured: _Measured) -> list[float]:
    """Measured seconds of done cells; expected seconds (NaN when nothing is measured) of the others."""
    keys = [cell_key(cell) for cell in cells]
    by_method: dict[str, list[float]] = {}
    for cell, key in zip(cells, keys):
        if key in measured.seconds:
            by_method.setdefault(cell.method, []).append(measured.seconds[key])
    every = [s for values in by_method.values() for s in values]
    overall = sum(every) / len(every) if every else math.nan
    mean = {method: sum(v) / len(v) for method, v in by_method.items()}
    return [measured.seconds.get(key, math.nan) if state == "done" else mean.get(cell.method, overall)
            for cell, key, state in zip(cells, keys, states)]


def status_table(cells: Sequence[Cell], measured: _Measured | None = None) -> pd.DataFrame:
    """One row per method and target: numbers of cells done, running and pending, and their cost.

    Columns ``method, target, cells, done, running, pending, seconds_per_cell``
    (the mean measured over done cells; NaN when none is done) and
    ``seconds_left`` (expected seconds of the unfinished cells, one worker).
    """
    measured = measured or _Measured()
    states = cell_states(cells, measured)
    estimates = _estimates(cells, states, measured)
    frame = pd.DataFrame({"method": [c.method for c in cells], "target": [c.target for c in cells],
                          "state": states, "estimate": estimates})
    rows = []
    for (method, target), part in frame.groupby(["method", "target"], sort=False):
        done = part[part["state"] == "done"]
        rows.append({"method": method, "target": target, "cells": len(part),
                     **{state: int((part["state"] == state).sum()) for state in STATES},
                     "seconds_per_cell": done["estimate"].mean() if len(done) else math.nan,
                     "seconds_left": part.loc[part["state"] != "done", "estimate"].sum(min_count=1)
                     if (part["state"] != "done").any() else 0.0})
    return pd.DataFrame(rows)


def format_duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``42s``, or ``?`` when unknown."""
    if not math.isfinite(seconds):
        return "?"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_status(table: pd.DataFrame, workers: int = 1) -> str:
    """The table of :func:`status_table` as text, with a total line and the time left on ``workers``."""
    shown = table.assign(seconds_per_cell=table["seconds_per_cell"].map(format_duration),
                         seconds_left=table["seconds_left"].map(format_duration))
    left = table["seconds_left"].sum(min_count=1) if len(table) else 0.0
    unknown = bool(((table["seconds_left"].isna()) & (table["done"] < table["cells"])).any())
    total = {state: int(table[state].sum()) for state in ("cells", *STATES)}
    eta = "?" if unknown else format_duration(float(left or 0.0) / max(1, workers))
    return (shown.to_string(index=False) + "\n"
            + f"{total['cells']} cells: {total['done']} done, {total['running']} running, "
              f"{total['pending']} pending; time left on {workers} worker(s): {eta}")


class GridProgress:
    """A progress bar over a grid's cells: done / total, with running, pending and the time left.

    Parameters
    ----------
    cells : sequence of Cell
        Every cell the grid computes (teachers included).
    workers : int
        Cells computed at once; the time left is divided by it.
    enabled : bool
        Show the bar; when ``False``, :meth:`update` does nothing.
    """

    def __init__(self, cells: Sequence[Cell], *, workers: int = 1, enabled: bool = True) -> None:
        self.cells, self.workers, self.enabled = list(cells), max(1, workers), enabled
        self.measured = _Measured()
        self.bar = tqdm(total=len(self.cells), desc="grid", unit="cell", disable=not enabled,
                        bar_format="{desc}: {n}/{total} cells |{bar}| {elapsed}{postfix}")

    def update(self, note: str = "") -> None:
        """Look at the cache again and redraw; ``note`` (the cell at work, say) ends the line."""
        if not self.enabled:
            return
        states = cell_states(self.cells, self.measured)
        left = [e for e, s in zip(_estimates(self.cells, states, self.measured), states) if s != "done"]
        eta = sum(left) / self.workers if left else 0.0
        self.bar.n = states.count("done")
        self.bar.set_postfix_str(f"running {states.count('running')}, pending {states.count('pending')}, "
                                 f"ETA {format_duration(eta)}{', ' + note if note else ''}", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        """Draw the final state and release the bar."""
        self.update()
        self.bar.close()
