"""Measured cost of the cells in a result cache, and what the full protocol would cost at that rate.

Reads every ``result.json`` under ``$MKDBOOK_HOME/results`` (or ``--home``):
each records the seconds its cell took, the epochs it ran and the size of its
training set (capped by ``max_batches`` in the fast profile). Prints, per method, the cells found, the mean seconds per cell,
per epoch and per 1,000 training segments and epochs, and an estimate of the
paper's protocol (14 methods x 2 targets x 10 folds x 3 seeds, 32 subjects:
15,360 training segments per cell) on one worker, assuming every network
runs ``--epochs`` epochs (the paper profile allows 100 with patience 20;
early stopping usually ends sooner). Run from the repository root::

    python benchmarks/grid_cost.py [--home DIR] [--epochs 60] [--json OUT.json]

An estimate scales measured seconds linearly with training segments and
epochs; evaluation and start-up costs do not scale that way, so treat it as a
rough guide. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

#: The paper's protocol: cells per method (2 targets x 10 folds x 3 seeds) and training segments per cell.
PAPER_CELLS_PER_METHOD = 2 * 10 * 3
PAPER_TRAIN_SEGMENTS = 32 * 40 * 15 * 8 // 10


def _trained_per_epoch(record: dict) -> int:
    """Training segments one epoch of the cell visited (``max_batches`` caps them in the fast profile)."""
    train = record["cell"]["train"]
    if train.get("max_batches") is None:
        return record["split"]["train"]
    return min(record["split"]["train"], train["max_batches"] * train["batch_size"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=os.environ.get("MKDBOOK_HOME", str(Path.home() / ".cache" / "mkdbook")))
    parser.add_argument("--epochs", type=float, default=60.0,
                        help="epochs per network assumed for the estimate (default 60)")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()

    cells: dict[str, list[dict]] = defaultdict(list)
    for path in sorted(Path(args.home, "results").glob("*/result.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        cells[record["cell"]["method"]].append(record)
    rows = []
    for method, records in cells.items():
        seconds = sum(r["seconds"] for r in records) / len(records)
        epochs = sum(len(r["history"]) for r in records) / len(records)
        segments = sum(_trained_per_epoch(r) for r in records) / len(records)
        per_kilo = seconds / max(epochs, 1) / (segments / 1000)
        rows.append({"method": method, "cells": len(records), "seconds_per_cell": seconds,
                     "epochs_per_cell": epochs, "train_segments": segments,
                     "seconds_per_epoch": seconds / max(epochs, 1),
                     "seconds_per_kilo_segment_epoch": per_kilo,
                     "paper_seconds_per_cell": per_kilo * PAPER_TRAIN_SEGMENTS / 1000 * args.epochs})
    print(f"{'method':<18}{'cells':>6}{'s/cell':>9}{'epochs':>8}{'train seg':>10}{'s/epoch':>9}"
          f"{'paper s/cell':>14}")
    for row in rows:
        print(f"{row['method']:<18}{row['cells']:>6}{row['seconds_per_cell']:>9.1f}{row['epochs_per_cell']:>8.1f}"
              f"{row['train_segments']:>10.0f}{row['seconds_per_epoch']:>9.2f}{row['paper_seconds_per_cell']:>14.0f}")
    total = sum(row["paper_seconds_per_cell"] for row in rows) * PAPER_CELLS_PER_METHOD
    print(f"\nthe {len(rows)} methods found, paper protocol at {args.epochs:g} epochs per network, one worker: "
          f"{total / 3600:.1f} h ({PAPER_CELLS_PER_METHOD} cells per method)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump({"home": args.home, "epochs_assumed": args.epochs, "methods": rows,
                       "paper_hours_one_worker": total / 3600}, stream, indent=1)


if __name__ == "__main__":
    main()
