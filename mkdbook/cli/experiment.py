"""``mkdbook experiment DEAP_DIR --grid NAME --out DIR``: a cached grid of methods, folds and seeds."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from mkdbook.atomic import write_atomically
from mkdbook.cli.common import add_data_argument, output_folder, positive_int


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``experiment`` to the sub-commands.

    The grid's size comes from ``MKDBOOK_PROFILE``; ``--folds``, ``--seeds``
    and ``--epochs`` override it. Writes ``results.csv``
    (:func:`~mkdbook.experiments.run_grid`) and ``summary.csv``
    (:func:`~mkdbook.experiments.summarise`) into ``--out``.
    """
    from mkdbook.experiments import GRIDS

    parser = subparsers.add_parser("experiment", help="run a cached grid of methods, folds and seeds")
    add_data_argument(parser)
    parser.add_argument("--grid", required=True, choices=tuple(GRIDS), help="which named grid")
    parser.add_argument("--folds", type=positive_int, default=None, metavar="K",
                        help="run all K folds of a K-fold split (default: the profile's)")
    parser.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                        help="seeds 0..N-1 (default: the profile's)")
    parser.add_argument("--epochs", type=positive_int, default=None, metavar="E",
                        help="maximum epochs per network (default: the profile's)")
    parser.add_argument("--out", required=True, help="folder for results.csv and summary.csv")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the grid and write its tables."""
    from mkdbook.experiments import make_grid, run_grid, summarise

    grid = make_grid(args.grid)
    changes: dict[str, Any] = {}
    if args.folds is not None:
        changes.update(n_folds=args.folds, folds=None)
    if args.seeds is not None:
        changes["seeds"] = tuple(range(args.seeds))
    if args.epochs is not None:
        changes["train"] = replace(grid.train, epochs=args.epochs)
    grid = replace(grid, **changes)
    out = output_folder(args.out)  # checked before the grid runs, not after
    table = run_grid(grid, args.deap_dir, progress=not args.quiet)
    summary = summarise(table)
    for name, frame in (("results.csv", table), ("summary.csv", summary)):
        write_atomically(out / name, lambda f, frame=frame: f.write(frame.to_csv(index=False).encode()))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out / 'results.csv'} ({len(table)} rows) and {out / 'summary.csv'}")
    return 0
