"""Grids of training runs, cached on disk, and their tidy results table.

An experiment is a grid of *cells* (:class:`~mkdbook.results.Cell`): one
method of :data:`mkdbook.methods.METHODS` on one target, one fold and one
seed of one split protocol. :func:`run_grid` runs every cell of a
:class:`Grid` that is not already stored (:mod:`mkdbook.results` says where
and how) and returns one row per (cell, test subject), the table
:mod:`mkdbook.stats` consumes.

A method that learns from a teacher receives its teacher as a
:class:`~mkdbook.train.Trainer` holding the teacher's best-validation
weights: the teacher is itself an ordinary cached cell (same target, fold,
seed, split, data and training settings), trained once and shared by every
student method. Each student gets its own freshly loaded copy, so a method
that updates its teacher (dynamic feedback) cannot change the teacher another
method sees.

An interrupted grid leaves complete cells and at most a resumable ``last.pt``;
running it again skips the former and continues training from the latter.
One process at a time should work on a results folder.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mkdbook.checks import check_option
from mkdbook.data.cache import load_segments
from mkdbook.data.fingerprint import fingerprint_data
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.methods import method_named, method_names
from mkdbook.metrics import score
from mkdbook.profile import Profile, active_profile
from mkdbook.results import (
    Cell,
    CellResult,
    MethodResult,
    cell_key,
    freeze_options,
    load_result,
    results_dir,
    store_result,
)
from mkdbook.splits import Split, make_split
from mkdbook.train import ChannelScaler, TrainConfig, Trainer, TrainResult

__all__ = [
    "GRIDS",
    "TABLE_COLUMNS",
    "Grid",
    "check_methods",
    "make_grid",
    "profile_train_config",
    "run_cell",
    "run_grid",
    "summarise",
    "trained_network",
]

#: Columns of the table :func:`run_grid` returns, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "method", "target", "fold", "seed", "subject", "accuracy", "majority_rate", "balanced_accuracy",
    "auc", "f1", "n_segments", "n_trials",
)


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
    of the trained teacher.

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
    (folder / "train").mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    output = method.run(cell, data, split, teacher, folder / "train")
    if isinstance(output, TrainResult):
        output = MethodResult(output)
    store_result(cell, folder, data, split, output, time.perf_counter() - began)
    return load_result(cell, folder)


def trained_network(cell: Cell, data: SegmentSet, split: Split | None = None) -> Trainer:
    """Return a :class:`~mkdbook.train.Trainer` holding a network cell's best-validation weights.

    Runs the cell first if it is not cached. The network is built anew and
    loaded from disk on every call, so callers may change it freely. A cached
    cell whose ``best.pt`` or ``scaler.pt`` cannot be loaded (damaged or
    deleted) is computed again, with a warning.

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
            state = torch.load(result.folder / "train" / "best.pt", map_location=trainer.device,
                               weights_only=True)
            trainer.model.load_state_dict(state["model"])
            scaler = torch.load(result.folder / "train" / "scaler.pt", map_location="cpu", weights_only=True)
            trainer.scaler = ChannelScaler.from_state_dict(scaler)
        # Damaged bytes make torch.load raise nearly anything (UnpicklingError,
        # EOFError, RuntimeError, zip errors...): whatever it is, train again.
        except Exception as err:
            if attempt == 2:
                raise
            warnings.warn(f"cached network {result.folder} cannot be loaded ({type(err).__name__}: "
                          f"{str(err).splitlines()[0]}); training it again", stacklevel=2)
            shutil.rmtree(result.folder, ignore_errors=True)
            continue
        trainer.model.eval()
        return trainer
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Grid:
    """Methods x targets x folds x seeds, with the settings they share.

    Attributes
    ----------
    methods : tuple of str
        Names of methods in :data:`mkdbook.methods.METHODS`.
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
        Settings per method name (see :attr:`mkdbook.results.Cell.options`),
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

    def __len__(self) -> int:
        return len(self.methods) * len(self.targets) * len(self.fold_list) * len(self.seeds)


def _per_subject(result: CellResult) -> pd.DataFrame:
    """One row per test subject of a cell, scored as the trainer scores (:func:`~mkdbook.metrics.score`)."""
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


def _resolve_data(grid: Grid, data: Path | str | SegmentSet, progress: bool) -> SegmentSet:
    if not isinstance(data, SegmentSet):
        return load_segments(data, config=grid.segments, progress=progress)
    if data.config != grid.segments:
        raise ValueError(f"the segment set was cut with {data.config}, the grid asks for {grid.segments}")
    return data


def run_grid(grid: Grid, data: Path | str | SegmentSet, *, progress: bool = True) -> pd.DataFrame:
    """Run every cell of a grid that is not cached, and return the per-subject results.

    Parameters
    ----------
    grid : Grid
    data : path-like or SegmentSet
        A DEAP-format folder (loaded with ``grid.segments``) or segments
        already loaded with that configuration.
    progress : bool
        Show a progress bar over cells.

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
    data = _resolve_data(grid, data, progress)
    splits: dict[tuple, Split] = {}
    tables = []
    bar = tqdm(grid.cells(data), total=len(grid), desc="experiment", unit="cell",
               disable=not progress)
    for cell in bar:
        bar.set_postfix_str(cell.describe())
        where = (cell.split_kind, cell.fold, cell.n_folds, cell.seed)
        if where not in splits:
            splits[where] = make_split(data, cell.split_kind, fold=cell.fold, n_folds=cell.n_folds,
                                       seed=cell.seed)
        tables.append(_per_subject(run_cell(cell, data, splits[where])))
    return pd.concat(tables, ignore_index=True)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over folds and seeds, per method and target.

    Each cell's score is first the mean over its test subjects; the mean and
    sample standard deviation (``ddof=1``; NaN for a single cell) are then
    taken over cells.

    Parameters
    ----------
    table : DataFrame
        As returned by :func:`run_grid`.

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


def profile_train_config(profile: Profile | None = None) -> TrainConfig:
    """The training settings of a profile (:func:`~mkdbook.profile.active_profile` by default).

    Chapters and named grids take their :class:`~mkdbook.train.TrainConfig`
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


#: Named grids, each built from a :class:`~mkdbook.profile.Profile`:
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
        :func:`~mkdbook.profile.active_profile` by default.
    """
    check_option("grid", name, tuple(GRIDS))
    return GRIDS[name](profile or active_profile())
