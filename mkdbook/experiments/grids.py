"""Grids of training runs, cached on disk, and their tidy results table.

An experiment is a grid of *cells* (:class:`~mkdbook.training.runs.Cell`): one
method of :data:`mkdbook.experiments.methods.METHODS` on one target, one fold and one
seed of one split protocol. :func:`run_grid` runs every cell of a
:class:`Grid` that is not already stored (:mod:`mkdbook.experiments.results` says where
and how) and returns one row per (cell, test subject), the table
:mod:`mkdbook.analysis.stats` consumes.

A method that learns from a teacher receives its teacher as a
:class:`~mkdbook.training.trainer.Trainer` holding the teacher's best-validation
weights: the teacher is itself an ordinary cached cell (same target, fold,
seed, split, data and training settings), trained once and shared by every
student method. Each student gets its own freshly loaded copy, so a method
that updates its teacher (dynamic feedback) cannot change the teacher another
method sees.

An interrupted grid leaves complete cells and at most a resumable ``last.pt``;
running it again skips the former and continues training from the latter.
A process computes a cell only while it holds the cell's lease
(:mod:`mkdbook.experiments.leases`): processes that share one ``MKDBOOK_HOME`` (several
drivers, the workers of a cluster) never compute a cell twice at once, and
one that finds a cell at work waits for its result.

:func:`run_grid` computes cells one after the other in this process unless it
is given an *executor* (:class:`CellExecutor`; :mod:`mkdbook.experiments.executors` has
one that runs cells on a Dask cluster). Executors only make sure cells are
stored; the table is always read back from the cache.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from mkdbook.core.checks import check_option
from mkdbook.core.paths import results_dir
from mkdbook.core.profiles import Profile, active_profile
from mkdbook.core.threads import cell_threads, torch_threads
from mkdbook.data.cache import load_segments
from mkdbook.data.fingerprint import fingerprint_data
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.experiments.leases import held, lease_config, read_lease
from mkdbook.experiments.methods import method_named, method_names
from mkdbook.experiments.progress import GridProgress
from mkdbook.experiments.results import CellResult, lease_path, load_result, store_result
from mkdbook.experiments.tables import TABLE_COLUMNS, per_subject, summarise
from mkdbook.splits import Split, make_split
from mkdbook.training.checkpoints import DamagedCheckpointError, read_checkpoint
from mkdbook.training.runs import Cell, MethodResult, cell_key, freeze_options
from mkdbook.training.trainer import ChannelScaler, TrainConfig, Trainer, TrainResult

__all__ = [
    "GRIDS",
    "TABLE_COLUMNS",
    "CellExecutor",
    "Grid",
    "check_methods",
    "complete_cells",
    "make_grid",
    "profile_train_config",
    "run_cell",
    "run_grid",
    "summarise",
    "trained_network",
]

def check_methods(names: tuple[str, ...]) -> None:
    """Fail before any work when a method, or the teacher it needs, is not in the method table.

    Raises
    ------
    ValueError
        Naming the unknown methods, or a teacher that is not a network method.
    """
    known = method_names()
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; the method table has {list(known)}")
    for name in names:
        method = method_named(name)
        if method.needs_teacher:
            teacher = method_named(method.teacher) if method.teacher in known else None
            if teacher is None or teacher.build is None:
                raise ValueError(f"method {name!r} needs teacher {method.teacher!r}, which is not a "
                                 f"network method of the method table")


def _split_for(cell: Cell, data: SegmentSet, split: Split | None) -> Split:
    if split is None:
        return make_split(data, cell.split_kind, fold=cell.fold, n_folds=cell.n_folds, seed=cell.seed)
    if (split.kind, split.fold, split.n_folds, split.seed) != (cell.split_kind, cell.fold, cell.n_folds,
                                                                cell.seed):
        raise ValueError(f"{split.describe()} is not the split of {cell.describe()}")
    return split


def run_cell(cell: Cell, data: SegmentSet, split: Split | None = None) -> CellResult:
    """Return a cell's result: from the cache when complete, computing it otherwise.

    A cell whose method needs a teacher first makes sure the teacher's cell
    is computed (cached like any other) and hands the method a fresh copy
    of the trained teacher. The method runs on
    :func:`~mkdbook.core.threads.cell_threads` torch threads (1 unless
    ``MKDBOOK_CELL_THREADS`` says otherwise), whoever calls this, so the
    numbers do not depend on the executor. The cell is computed under its lease: if
    another process holds it, this one waits and then reads that process's
    result; if that process died, this one takes the lease over and resumes
    from the cell's ``last.pt``.

    Parameters
    ----------
    cell : Cell
    data : SegmentSet
        The data the cell describes (its fingerprint is not re-checked here;
        :func:`run_grid` builds cells from the data it runs on).
    split : Split, optional
        The cell's split, when the caller already has it.

    Returns
    -------
    CellResult
    """
    folder = results_dir() / cell_key(cell)
    cached = load_result(cell, folder)
    if cached is not None:
        return cached
    check_methods((cell.method,))
    method = method_named(cell.method)
    split = _split_for(cell, data, split)
    teacher = None
    if method.needs_teacher:
        if cell.teacher is None or cell.teacher.method != method.teacher:
            raise ValueError(f"{cell.describe()}: needs a teacher cell of method {method.teacher!r}")
        teacher = trained_network(cell.teacher, data, split)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with held(lease_path(folder), what=cell.describe()):
        # Whoever held the lease before may have finished the cell meanwhile.
        cached = load_result(cell, folder)
        if cached is not None:
            return cached
        (folder / "train").mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        # On as many threads wherever it runs: the thread count changes the last bits.
        with torch_threads(cell_threads()):
            output = method.run(cell, data, split, teacher, folder / "train")
        if isinstance(output, TrainResult):
            output = MethodResult(output)
        store_result(cell, folder, data, split, output, time.perf_counter() - began)
    return load_result(cell, folder)


def trained_network(cell: Cell, data: SegmentSet, split: Split | None = None) -> Trainer:
    """Return a :class:`~mkdbook.training.trainer.Trainer` holding a network cell's best-validation weights.

    Runs the cell first if it is not cached. The network is built anew and
    loaded from disk on every call, so callers may change it freely. Both
    files are loaded only when their checksums match
    (:func:`~mkdbook.training.checkpoints.read_checkpoint`): a cached cell
    whose ``best.pt`` or ``scaler.pt`` is unverified (damaged, truncated,
    without its checksum) or deleted is computed again, with a warning, so
    no student learns from weights that are not the teacher's.

    Raises
    ------
    ValueError
        If the cell's method trains no single network (its row has no ``build``).
    """
    check_methods((cell.method,))
    method = method_named(cell.method)
    if method.build is None:
        raise ValueError(f"method {cell.method!r} trains no single network that could be loaded")
    for attempt in (1, 2):
        result = run_cell(cell, data, split)
        trainer = Trainer(method.build(cell, data), cell.train)
        try:
            state = read_checkpoint(result.folder / "train" / "best.pt", trainer.device)
            scaler = read_checkpoint(result.folder / "train" / "scaler.pt")
        except (FileNotFoundError, DamagedCheckpointError) as err:
            if attempt == 2:
                raise
            warnings.warn(f"cached network {result.folder} cannot be loaded ({err}); training it again",
                          stacklevel=2)
            shutil.rmtree(result.folder, ignore_errors=True)
            continue
        trainer.model.load_state_dict(state["model"])
        trainer.scaler = ChannelScaler.from_state_dict(scaler)
        trainer.model.eval()
        return trainer
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Grid:
    """Methods x targets x folds x seeds, with the settings they share.

    Attributes
    ----------
    methods : tuple of str
        Names of methods in :data:`mkdbook.experiments.methods.METHODS`.
    targets : tuple of str, default ("valence", "arousal")
    folds : tuple of int or None, default None
        Test folds to run; every fold (``range(n_folds)``) when ``None``.
    seeds : tuple of int, default (0,)
    split_kind : str, default "trial"
    n_folds : int, default 10
    train : TrainConfig, default TrainConfig(progress=False)
        Its ``seed`` is replaced by each cell's seed. Per-epoch progress bars
        are off by default; :func:`run_grid` shows one bar over cells.
    segments : SegmentConfig, default SegmentConfig()
    options : dict of str to dict, default {}
        Settings per method name (see :attr:`mkdbook.training.runs.Cell.options`),
        also applied to a method when it is the teacher of another.
    """

    methods: tuple[str, ...]
    targets: tuple[str, ...] = ("valence", "arousal")
    folds: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    split_kind: str = "trial"
    n_folds: int = 10
    train: TrainConfig = TrainConfig(progress=False)
    segments: SegmentConfig = SegmentConfig()
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("methods", "targets", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be non-empty and without repeats, got {values!r}")
        if self.n_folds < 3:
            raise ValueError(f"n_folds must be at least 3 (train, validation, test), got {self.n_folds}")
        bad = [k for k in self.folds or () if not 0 <= k < self.n_folds]
        if bad:
            raise ValueError(f"folds {bad} are outside [0, {self.n_folds - 1}]")

    @property
    def fold_list(self) -> tuple[int, ...]:
        """The folds that are run."""
        return tuple(range(self.n_folds)) if self.folds is None else tuple(self.folds)

    def cell(self, method: str, target: str, fold: int, seed: int, *, data: SegmentSet) -> Cell:
        """The cell of one method, target, fold and seed on ``data``, with its teacher's cell if it needs one.

        The data's identity (its description and content fingerprint) is part
        of the cell, so results computed on other data are never reused.
        """
        check_methods((method,))
        spec = method_named(method)
        teacher = None
        if spec.needs_teacher:
            teacher = self.cell(spec.teacher, target, fold, seed, data=data)
        return Cell(method, target, fold, seed, self.split_kind, self.n_folds,
                    replace(self.train, seed=seed), self.segments, data.source, fingerprint_data(data),
                    freeze_options(self.options.get(method)), teacher)

    def cells(self, data: SegmentSet) -> Iterator[Cell]:
        """Every cell, seeds outermost and methods innermost (a fold's methods run together)."""
        for seed in self.seeds:
            for fold in self.fold_list:
                for target in self.targets:
                    for method in self.methods:
                        yield self.cell(method, target, fold, seed, data=data)

    def work_cells(self, data: SegmentSet) -> list[Cell]:
        """Every cell to compute, each once: the teachers the grid needs first, then :meth:`cells`."""
        cells = list(self.cells(data))
        teachers = [cell.teacher for cell in cells if cell.teacher is not None]
        return list(dict.fromkeys(teachers + cells))

    def __len__(self) -> int:
        return len(self.methods) * len(self.targets) * len(self.fold_list) * len(self.seeds)


def _resolve_data(grid: Grid, data: Path | str | SegmentSet, progress: bool) -> SegmentSet:
    if not isinstance(data, SegmentSet):
        return load_segments(data, config=grid.segments, progress=progress)
    if data.config != grid.segments:
        raise ValueError(f"the segment set was cut with {data.config}, the grid asks for {grid.segments}")
    return data


class CellExecutor(Protocol):
    """Who computes a grid's cells for :func:`run_grid` (:mod:`mkdbook.experiments.executors` has two).

    ``complete(cells, data, source, progress)`` computes every cell not yet
    stored, teachers (listed first) before their students; ``source`` is the
    data folder (``None`` for segments in memory). ``workers`` is how many
    cells it computes at once.
    """

    workers: int

    def complete(self, cells: Sequence[Cell], data: SegmentSet, source: Path | None,
                 progress: GridProgress) -> None: ...


def _taken(cell: Cell) -> bool:
    """Whether another process holds the lease of this unfinished cell right now."""
    folder = results_dir() / cell_key(cell)
    lease = read_lease(lease_path(folder))
    return lease is not None and not lease.is_stale(lease_config()) and not (folder / "result.json").is_file()


def complete_cells(cells: Sequence[Cell], data: SegmentSet, progress: GridProgress | None = None) -> None:
    """Compute the cells one after the other in this process, drawing ``progress`` as they go.

    A cell another process is computing is put off while any other is free,
    so that drivers sharing a cache split a grid between them instead of
    queueing behind one another; when only such cells remain, this process
    waits for them (and takes over those whose process died).
    """
    splits: dict[tuple, Split] = {}
    remaining = list(cells)
    while remaining:
        cell = next((cell for cell in remaining if not _taken(cell)), remaining[0])
        remaining.remove(cell)
        if progress is not None:
            progress.update(cell.describe())
        where = (cell.split_kind, cell.fold, cell.n_folds, cell.seed)
        if where not in splits:
            splits[where] = make_split(data, cell.split_kind, fold=cell.fold, n_folds=cell.n_folds,
                                       seed=cell.seed)
        run_cell(cell, data, splits[where])


def _read_back(cell: Cell) -> CellResult:
    folder = results_dir() / cell_key(cell)
    result = load_result(cell, folder)
    if result is None:
        raise RuntimeError(f"{cell.describe()}: no result in {folder} after the grid ran")
    return result


def run_grid(grid: Grid, data: Path | str | SegmentSet, *, progress: bool = True,
             executor: CellExecutor | None = None) -> pd.DataFrame:
    """Run every cell of a grid that is not cached, and return the per-subject results.

    Parameters
    ----------
    grid : Grid
    data : path-like or SegmentSet
        A DEAP-format folder (loaded with ``grid.segments``) or segments
        already loaded with that configuration.
    progress : bool
        Show a progress bar over cells (done, running, pending, time left).
    executor : CellExecutor, optional
        Who computes the cells; by default this process, one after the
        other. The numbers do not depend on it.

    Returns
    -------
    DataFrame
        Columns :data:`TABLE_COLUMNS`: one row per method, target, fold,
        seed and test subject, with that subject's segment accuracy and
        macro-F1 and its numbers of test segments and trials.

    Raises
    ------
    ValueError
        Before any work, if a method (or the teacher it needs) is not in the method table.
    """
    check_methods(grid.methods)
    source = None if isinstance(data, SegmentSet) else Path(data)
    data = _resolve_data(grid, data, progress)
    work = grid.work_cells(data)
    bar = GridProgress(work, workers=executor.workers if executor else 1, enabled=progress)
    try:
        if executor is None:
            complete_cells(work, data, bar)
        else:
            executor.complete(work, data, source, bar)
    finally:
        bar.close()
    return pd.concat([per_subject(_read_back(cell)) for cell in grid.cells(data)], ignore_index=True)


def profile_train_config(profile: Profile | None = None) -> TrainConfig:
    """The training settings of a profile (:func:`~mkdbook.core.profiles.active_profile` by default).

    Chapters and named grids take their :class:`~mkdbook.training.trainer.TrainConfig`
    from here, so one profile means one set of settings everywhere.
    """
    profile = profile or active_profile()
    return TrainConfig(epochs=profile.epochs, patience=profile.patience,
                       batch_size=profile.batch_size, max_batches=profile.max_batches,
                       progress=False)


def _profile_grid(methods: tuple[str, ...], profile: Profile) -> Grid:
    return Grid(methods, targets=profile.targets, folds=profile.folds, n_folds=profile.n_folds,
                seeds=tuple(range(profile.n_seeds)), train=profile_train_config(profile))


def _baselines(profile: Profile) -> Grid:
    return _profile_grid(method_names("reference") + method_names("student baseline"), profile)


def _ablation(profile: Profile) -> Grid:
    return _profile_grid(method_names("ablation variant") + method_names("proposed"), profile)


def _paper(profile: Profile) -> Grid:
    return Grid(method_names(), n_folds=10, seeds=tuple(range(profile.n_seeds)),
                train=profile_train_config(profile))


#: Named grids, each built from a :class:`~mkdbook.core.profiles.Profile`:
#: ``baselines`` (the reference networks and student baselines, trained
#: without distillation), ``ablation`` (V1-V3), ``paper`` (every method of
#: the method table, 10 folds, both targets).
GRIDS: dict[str, Callable[[Profile], Grid]] = {
    "baselines": _baselines,
    "ablation": _ablation,
    "paper": _paper,
}


def make_grid(name: str, profile: Profile | None = None) -> Grid:
    """Build a named grid (a key of :data:`GRIDS`) at the size of ``profile``.

    Parameters
    ----------
    name : str
    profile : Profile, optional
        :func:`~mkdbook.core.profiles.active_profile` by default.
    """
    check_option("grid", name, tuple(GRIDS))
    return GRIDS[name](profile or active_profile())
