"""``mkdbook experiment DATA_DIR --grid NAME --out DIR``: a cached grid of methods, folds and seeds.

Cells are computed in this process (``--executor serial``, the default) or on
a Dask cluster (``--executor dask``): local worker processes (``--workers``),
a running scheduler (``--scheduler``) or batch jobs (``--cluster``). The
numbers do not depend on the executor. ``--status`` prints where the grid
stands (cells done, running, pending, and the time left estimated from the
measured cost of finished cells) without computing anything.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from typing import Any

from mkdbook.cli.common import add_data_argument, non_negative_int, output_folder, positive_float, positive_int
from mkdbook.core.atomic import write_atomically

#: Options that only a Dask executor reads, with the names the command line shows.
_DASK_ONLY = {"workers": "--workers", "scheduler": "--scheduler", "cluster": "--cluster",
              "threads_per_worker": "--threads-per-worker"}
#: Options that only a batch cluster (``--cluster``) reads.
_CLUSTER_ONLY = {"jobs": "--jobs", "gpus_per_job": "--gpus-per-job", "queue": "--queue",
                 "walltime": "--walltime", "memory": "--memory", "account": "--account",
                 "job_extra": "--job-extra", "job_prologue": "--job-prologue"}

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "experiment"
HELP = "run a cached grid of methods, folds and seeds"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``experiment`` to the sub-commands.

    The grid's size comes from ``MKDBOOK_PROFILE``; ``--folds``, ``--seeds``
    and ``--epochs`` override it. Writes ``results.csv``
    (:func:`~mkdbook.experiments.grids.run_grid`) and ``summary.csv``
    (:func:`~mkdbook.experiments.grids.summarise`) into ``--out``.
    """
    from mkdbook.experiments.grids import GRIDS
    from mkdbook.experiments.executors import CLUSTER_SYSTEMS
    from mkdbook.training.trainer import DEVICES

    parser = subparsers.add_parser(NAME, help=HELP)
    add_data_argument(parser)
    parser.add_argument("--grid", required=True, choices=tuple(GRIDS), help="which named grid")
    parser.add_argument("--folds", type=positive_int, default=None, metavar="K",
                        help="run the first K folds of the profile's k-fold partition (default: the "
                             "profile's folds; fast: 1 of 3, default: 1 of 5, paper: 10 of 10)")
    parser.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                        help="seeds 0..N-1 (default: the profile's)")
    parser.add_argument("--epochs", type=positive_int, default=None, metavar="E",
                        help="maximum epochs per network (default: the profile's)")
    parser.add_argument("--device", default=None, choices=DEVICES,
                        help="auto (CUDA when available, the default), cpu or cuda")
    # One or the other: --status computes and writes nothing.
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--out", default=None, help="folder for results.csv and summary.csv")
    action.add_argument("--status", action="store_true",
                        help="print the cells done, running and pending and the time left; compute nothing")
    parser.add_argument("--lease-timeout", type=positive_float, default=None, metavar="SECONDS",
                        help="a cell whose worker gave no sign of life for this long is taken over "
                             "(default: MKDBOOK_LEASE_TIMEOUT, else 300)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    engine = parser.add_argument_group("executor")
    engine.add_argument("--executor", default="serial", choices=("serial", "dask"),
                        help="serial (this process, the default) or dask")
    engine.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="local Dask worker processes (default: one per GPU, else one per core)")
    engine.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask scheduler: tcp://host:port or a scheduler file (.json); one that "
                             "does not answer within Dask's connect timeout (distributed.comm.timeouts.connect, "
                             "30 s by default) is an error")
    engine.add_argument("--threads-per-worker", type=positive_int, default=None, metavar="T",
                        help="torch threads per cell on a worker (default: MKDBOOK_CELL_THREADS, else 1, as "
                             "a serial run uses: equal thread counts give equal numbers)")
    engine.add_argument("--cluster", default=None, choices=CLUSTER_SYSTEMS,
                        help="submit workers as batch jobs (dask-jobqueue)")
    engine.add_argument("--jobs", type=positive_int, default=None, metavar="N", help="batch jobs (default 1)")
    engine.add_argument("--gpus-per-job", type=non_negative_int, default=None, metavar="G",
                        help="GPUs per job, one worker each (default 0: one CPU worker per job)")
    engine.add_argument("--queue", default=None, help="partition or queue of the jobs")
    engine.add_argument("--walltime", default=None, help="wall-clock limit per job (e.g. 04:00:00)")
    engine.add_argument("--memory", default=None, help="memory per job (default 16GB)")
    engine.add_argument("--account", default=None, help="account or project charged for the jobs")
    engine.add_argument("--job-extra", action="append", default=None, metavar="DIRECTIVE",
                        help="a further job-script directive (repeatable)")
    engine.add_argument("--job-prologue", action="append", default=None, metavar="LINE",
                        help="a shell line run before each worker starts (repeatable)")
    parser.set_defaults(run=run)


def _given(args: argparse.Namespace, names: dict[str, str]) -> list[str]:
    return [flag for name, flag in names.items() if getattr(args, name) is not None]


def make_executor(args: argparse.Namespace):
    """The executor the arguments describe: ``None`` for serial, else a :class:`~mkdbook.experiments.executors.DaskExecutor`.

    Raises
    ------
    ValueError
        When an option is given that the chosen executor does not read.
    """
    from mkdbook.experiments.executors import ClusterConfig, DaskConfig, DaskExecutor

    if args.executor == "serial":
        stray = _given(args, _DASK_ONLY) + _given(args, _CLUSTER_ONLY)
        if stray:
            raise ValueError(f"{stray[0]} needs --executor dask")
        return None
    where = _given(args, {"workers": "--workers", "scheduler": "--scheduler", "cluster": "--cluster"})
    if len(where) > 1:
        raise ValueError(f"give only one of --workers, --scheduler and --cluster, got {' and '.join(where)}")
    if args.cluster is None:
        stray = _given(args, _CLUSTER_ONLY)
        if stray:
            raise ValueError(f"{stray[0]} needs --cluster")
    cluster = None
    if args.cluster is not None:
        given = {"jobs": args.jobs, "gpus_per_job": args.gpus_per_job, "memory": args.memory,
                 "walltime": args.walltime, "queue": args.queue, "account": args.account,
                 "cores_per_worker": args.threads_per_worker,
                 "job_extra": tuple(args.job_extra or ()), "prologue": tuple(args.job_prologue or ())}
        cluster = ClusterConfig(args.cluster, **{k: v for k, v in given.items() if v is not None})
    return DaskExecutor(DaskConfig(workers=args.workers, scheduler=args.scheduler, cluster=cluster,
                                   threads_per_worker=args.threads_per_worker))


def make_cli_grid(args: argparse.Namespace):
    """The named grid with ``--folds``, ``--seeds``, ``--epochs`` and ``--device`` applied.

    Raises
    ------
    ValueError
        If ``--folds`` asks for more folds than the grid's partition has.
    """
    from mkdbook.experiments.grids import make_grid

    grid = make_grid(args.grid)
    changes: dict[str, Any] = {}
    if args.folds is not None:
        if args.folds > grid.n_folds:
            raise ValueError(f"--folds must be at most {grid.n_folds} (the folds of the {args.grid} grid's "
                             f"partition), got {args.folds}")
        changes["folds"] = tuple(range(args.folds))
    if args.seeds is not None:
        changes["seeds"] = tuple(range(args.seeds))
    train = grid.train
    if args.epochs is not None:
        train = replace(train, epochs=args.epochs)
    if args.device is not None:
        train = replace(train, device=args.device)
    return replace(grid, train=train, **changes)


def run(args: argparse.Namespace) -> int:
    """Run the grid and write its tables, or (``--status``) print where it stands."""
    from mkdbook.experiments.grids import run_grid, summarise

    if args.lease_timeout is not None:
        # Through the environment, so that local workers inherit it.
        os.environ["MKDBOOK_LEASE_TIMEOUT"] = repr(args.lease_timeout)
    grid = make_cli_grid(args)
    executor = make_executor(args)
    if args.status:
        return _status(grid, args, executor.workers if executor else 1)
    if args.out is None:
        raise ValueError("--out is required (unless --status)")
    _check_format(args)
    out = output_folder(args.out)  # checked before the grid runs, not after
    if executor is not None:
        executor.check()  # a missing scheduler file or submit command, before the data are loaded
    table = run_grid(grid, args.data_dir, progress=not args.quiet, executor=executor)
    summary = summarise(table)
    for name, frame in (("results.csv", table), ("summary.csv", summary)):
        write_atomically(out / name, lambda f, frame=frame: f.write(frame.to_csv(index=False).encode()))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out / 'results.csv'} ({len(table)} rows) and {out / 'summary.csv'}")
    return 0


def _check_format(args: argparse.Namespace) -> None:
    """Refuse ``--format`` where the folder holds another format: workers infer it from the folder."""
    from mkdbook.data.readers import infer_format, reader_for

    if args.format is not None:
        reader_for(args.data_dir, args.format)  # a mismatch is one line, before any work
        try:
            infer_format(args.data_dir)
        except ValueError:
            raise ValueError(f"{args.data_dir}: holds data of several formats; experiment infers the format "
                             "wherever a cell runs, so give it a folder of one format") from None


def _status(grid, args: argparse.Namespace, workers: int) -> int:
    from mkdbook.data.cache import load_segments
    from mkdbook.experiments.progress import format_status, status_table

    data = load_segments(args.data_dir, reader=args.format, config=grid.segments, progress=not args.quiet)
    print(format_status(status_table(grid.work_cells(data)), workers))
    return 0
