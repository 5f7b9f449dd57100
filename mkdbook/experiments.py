"""Grids of training runs, cached on disk, and their tidy results table.

An experiment is a grid of *cells*: one method (a network trained alone, or a
student distilled from a teacher) on one target, one fold and one seed of one
split protocol. :func:`run_grid` runs every cell of a :class:`Grid` that is
not already cached and returns one row per (cell, test subject), the table
:mod:`mkdbook.stats` consumes.

A *method* is a function registered by name with :func:`register_method`::

    @register_method("hinton", needs_teacher=True)
    def run(cell, data, split, teacher, out_dir):
        ...  # train a student, using teacher.model / teacher.predict
        return train_result          # a TrainResult, or MethodResult(train_result, extra)

Every network of :func:`mkdbook.models.build_model` is registered here as a
supervised method of the same name (``"teacher"``, ``"student"`` for the
student trained alone, ``"eog"``, ...). A method with ``needs_teacher=True``
receives its teacher as a :class:`~mkdbook.train.Trainer` holding the
teacher's best-validation weights: the teacher is itself an ordinary cached
cell (same target, fold, seed, split, data and training settings), trained
once and shared by every student method. Each student gets its own freshly
loaded copy, so a method that updates its teacher (dynamic feedback) cannot
change the teacher another method sees.

Modules that register methods are imported before a grid is checked; see
:data:`METHOD_MODULES`.

The cache
---------
A cell's result lives in ``$MKDBOOK_HOME/results/<key>/``, where ``<key>``
is a SHA-256 of

* the cell's whole configuration (method, settings, target, fold, seed,
  split, training and segment configuration, the data's content
  fingerprint, and its teacher's configuration, recursively),
* the package version, and
* a hash of every ``.py`` file of the :mod:`mkdbook` package.

The last two exist because Jupyter Book's execution cache re-runs a notebook
only when its cells change: a notebook whose cells are unchanged but whose
imported package changed would otherwise show stale numbers. Here any change
to the package source gives new keys and so new runs. This is deliberately
conservative (editing a docstring re-runs everything); stale results are the
worse error. The source hash is computed once per Python process, matching
the code the process has imported.

Each cell folder holds ``predictions.npz`` (test segment indices, subject,
trial, position, label, prediction, class probabilities), ``result.json``
(scores, learning curve, the configuration) and ``train/`` (the method's
working folder: ``best.pt`` and, for network methods, ``scaler.pt``; the
resumable ``last.pt`` only while the cell is unfinished). Files are
written to a temporary name and renamed into place, and ``result.json`` is
written last, so a cell is complete exactly when its ``result.json`` exists.
An interrupted grid leaves complete cells and at most a resumable ``last.pt``;
running it again skips the former and continues training from the latter.
One process at a time should work on a results folder.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, f1_score
from torch import nn
from tqdm.auto import tqdm

import mkdbook
from mkdbook.atomic import write_atomically
from mkdbook.data.cache import load_segments
from mkdbook.data.channels import RATING_SCALES
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.models import MODEL_NAMES, build_model
from mkdbook.profile import Profile, active_profile, home
from mkdbook.splits import SPLIT_KINDS, Split, make_split
from mkdbook.train import ChannelScaler, TrainConfig, Trainer, TrainResult

__all__ = [
    "ABLATION_METHODS",
    "GRIDS",
    "KD_BASELINE_METHODS",
    "METHODS",
    "METHOD_MODULES",
    "SUPERVISED_METHODS",
    "TABLE_COLUMNS",
    "Cell",
    "CellResult",
    "Grid",
    "Method",
    "MethodResult",
    "add_experiment_command",
    "cell_key",
    "fingerprint_data",
    "make_grid",
    "package_fingerprint",
    "register_method",
    "register_network",
    "results_dir",
    "run_cell",
    "run_grid",
    "summarise",
    "trained_network",
]

#: Columns of the table :func:`run_grid` returns, in order.
TABLE_COLUMNS: tuple[str, ...] = (
    "method", "target", "fold", "seed", "subject", "accuracy", "f1", "n_segments", "n_trials",
)

#: Networks trained on labels alone: the teacher, the reference networks, the
#: student without distillation ("student-alone") and the concatenation variants.
SUPERVISED_METHODS: tuple[str, ...] = (
    "teacher", "teacher-concat", "eeg", "eog", "deepconvnet", "student", "student-concat",
)
#: The paper's ablation: V1 Hinton KD, V2 fusion features, V3 fusion features + feedback.
ABLATION_METHODS: tuple[str, ...] = ("hinton", "fusion", "fusion+feedback")
#: Distillation baselines the paper compares against.
KD_BASELINE_METHODS: tuple[str, ...] = ("fitnets", "emotionkd", "cgan")

#: Modules imported (when they exist) before the registry is consulted, so
#: that the methods they register with :func:`register_method` are there.
METHOD_MODULES: tuple[str, ...] = ("mkdbook.distill", "mkdbook.baselines")

Options = tuple[tuple[str, Any], ...]


def _freeze(settings: Mapping[str, Any] | None) -> Options:
    """Sorted ``(name, value)`` pairs: a hashable, order-independent form of a settings dict."""
    return tuple(sorted((settings or {}).items()))


# ---------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """Everything that decides one run's result.

    Attributes
    ----------
    method : str
        A registered method name (see :func:`register_method`).
    target : str
        Rating scale that gives the binary labels (``"valence"``, ``"arousal"``).
    fold : int
        Test fold of the split (0-based); the next fold is validation.
    seed : int
        Seeds the split's shuffling, the initial weights and the training
        order; must equal ``train.seed``. Different seeds are therefore
        different repetitions of the whole k-fold protocol.
    split_kind : str, default "trial"
        ``"trial"``, ``"subjects"`` or ``"leaky"`` (:func:`mkdbook.splits.make_split`).
    n_folds : int, default 10
        Folds of the split (10 gives the paper's 8:1:1).
    train : TrainConfig, default TrainConfig()
        How the network is trained. Every field is part of the cache key,
        ``progress`` and ``device`` included, because the trainer refuses to
        resume a checkpoint written under another configuration.
    segments : SegmentConfig, default SegmentConfig()
        Segment length, baseline and label threshold of the data.
    data_source : str, default ""
        What the data is, in words (:func:`mkdbook.data.describe_source`).
    data_fingerprint : str, default ""
        Hash of the data's content (:func:`fingerprint_data`).
    options : tuple of (str, value) pairs, default ()
        Method settings, sorted by name; values must be JSON-serialisable.
        The supervised methods pass them to :func:`~mkdbook.models.build_model`
        as configuration overrides; a distillation method reads its own (for
        example a feedback interval). Build them from a dict with
        ``Cell(..., options=tuple(sorted(d.items())))`` or through :class:`Grid`.
    teacher : Cell or None, default None
        The teacher's cell, for methods that need one; it is part of this
        cell's identity, so a different teacher gives a different key.
    """

    method: str
    target: str
    fold: int
    seed: int
    split_kind: str = "trial"
    n_folds: int = 10
    train: TrainConfig = TrainConfig()
    segments: SegmentConfig = SegmentConfig()
    data_source: str = ""
    data_fingerprint: str = ""
    options: Options = ()
    teacher: Cell | None = None

    def __post_init__(self) -> None:
        if self.target not in RATING_SCALES:
            raise ValueError(f"target must be one of {RATING_SCALES}, got {self.target!r}")
        if self.split_kind not in SPLIT_KINDS:
            raise ValueError(f"split_kind must be one of {SPLIT_KINDS}, got {self.split_kind!r}")
        if not 0 <= self.fold < self.n_folds:
            raise ValueError(f"fold must be in [0, {self.n_folds - 1}], got {self.fold}")
        if self.train.seed != self.seed:
            raise ValueError(f"train.seed ({self.train.seed}) must equal seed ({self.seed})")

    @property
    def settings(self) -> dict[str, Any]:
        """:attr:`options` as a dict."""
        return dict(self.options)

    def describe(self) -> str:
        """One line for logs and progress bars."""
        return (f"{self.method} on {self.target}, {self.split_kind} fold {self.fold + 1}/{self.n_folds}, "
                f"seed {self.seed}")


@lru_cache(maxsize=1)
def package_fingerprint() -> tuple[str, str]:
    """Return the package version and a SHA-256 of every ``.py`` file of :mod:`mkdbook`.

    Computed once per process: the hash then describes the code this
    process imported, even if files change on disk afterwards.
    """
    root = Path(mkdbook.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return mkdbook.__version__, digest.hexdigest()


def cell_key(cell: Cell) -> str:
    """Return the cache key of a cell: a hash of its configuration and of the package.

    Raises
    ------
    ValueError
        If an option value cannot be written as JSON.
    """
    version, source = package_fingerprint()
    payload = {"cell": asdict(cell), "package_version": version, "package_source": source}
    try:
        text = json.dumps(payload, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{cell.describe()}: options must be JSON-serialisable ({err})") from err
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def fingerprint_data(data: SegmentSet) -> str:
    """Return a SHA-256 of a segment set's signals, ids and ratings.

    A content hash rather than file names and dates: copying or touching the
    data changes nothing, and a changed sample changes the key. Reading the
    full DEAP release (1.6 GB of segments) takes a few seconds.
    """
    digest = hashlib.sha256()
    for array in (data.subject, data.trial, data.position, data.ratings):
        digest.update(np.ascontiguousarray(array).tobytes())
    rows = max(1, (64 << 20) // max(1, data.signals[0].nbytes))  # about 64 MB per read
    for start in range(0, len(data), rows):
        digest.update(np.ascontiguousarray(data.signals[start:start + rows]).tobytes())
    digest.update(repr(data.signals.shape).encode())
    return digest.hexdigest()


def results_dir() -> Path:
    """The folder of cached cell results, ``$MKDBOOK_HOME/results``."""
    return home() / "results"


# ---------------------------------------------------------------------------
# The method registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodResult:
    """What a method's run function may return when it has more to say than a TrainResult.

    Attributes
    ----------
    train : TrainResult
        ``train.test`` must hold the predictions of the segments of
        ``split.test``, in that order.
    extra : dict, default {}
        JSON-serialisable information stored in ``result.json`` under
        ``"extra"`` (for example the teacher's accuracy after feedback).
    """

    train: TrainResult
    extra: Mapping[str, Any] = field(default_factory=dict)


RunFunction = Callable[[Cell, SegmentSet, Split, Trainer | None, Path], TrainResult | MethodResult]
NetworkBuilder = Callable[[Cell, SegmentSet], nn.Module]


@dataclass(frozen=True)
class Method:
    """A registered method.

    Attributes
    ----------
    name : str
    run : callable
        ``run(cell, data, split, teacher, out_dir) -> TrainResult | MethodResult``.
    needs_teacher : bool
        Whether ``run`` receives a trained teacher (otherwise ``None``).
    teacher : str
        The method whose trained network is the teacher (a network method).
    build : callable or None
        ``build(cell, data) -> nn.Module`` for methods that train one network
        with :class:`~mkdbook.train.Trainer` (:func:`register_network`);
        only such methods can serve as teachers, since their trained weights
        can be loaded back into a freshly built network.
    """

    name: str
    run: RunFunction
    needs_teacher: bool
    teacher: str = "teacher"
    build: NetworkBuilder | None = None


#: Registered methods by name.
METHODS: dict[str, Method] = {}


def register_method(name: str, *, needs_teacher: bool, teacher: str = "teacher",
                    build: NetworkBuilder | None = None) -> Callable[[RunFunction], RunFunction]:
    """Register a run function under ``name`` (a decorator).

    Parameters
    ----------
    name : str
        The method's name in grids and tables.
    needs_teacher : bool
        Pass the trained teacher of the cell's (target, fold, seed, split) to
        ``run``; it is trained once, cached, and a fresh copy is loaded for
        each call.
    teacher : str, default "teacher"
        Which network method is the teacher.
    build : callable, optional
        See :attr:`Method.build`; set by :func:`register_network`.

    Returns
    -------
    callable
        The decorator; it returns the function unchanged.

    Notes
    -----
    The run function is called as ``run(cell, data, split, teacher, out_dir)``:

    ``cell`` : :class:`Cell`
        Its ``target``, ``seed``, ``train`` (a :class:`~mkdbook.train.TrainConfig`
        whose seed is the cell's) and ``settings`` (the method's options).
    ``data`` : :class:`~mkdbook.data.SegmentSet`
        The segments of the whole cohort.
    ``split`` : :class:`~mkdbook.splits.Split`
        Train on ``split.train``, select on ``split.val``, and return the
        predictions of ``split.test``, in order.
    ``teacher`` : :class:`~mkdbook.train.Trainer` or None
        ``teacher.model`` (best-validation weights, on ``teacher.device``) and
        ``teacher.scaler`` (its input standardisation); ``teacher.predict``
        works at once. Yours to modify.
    ``out_dir`` : Path
        An existing working folder kept across interruptions: give it to
        :class:`~mkdbook.train.Trainer` as ``out_dir`` and an interrupted run
        resumes from its last epoch.

    It returns a :class:`~mkdbook.train.TrainResult` or a :class:`MethodResult`.

    Raises
    ------
    ValueError
        If ``name`` is already registered.
    """
    def decorate(run: RunFunction) -> RunFunction:
        if name in METHODS:
            raise ValueError(f"method {name!r} is already registered")
        METHODS[name] = Method(name, run, needs_teacher, teacher, build)
        return run

    return decorate


def _train_network(build: NetworkBuilder) -> RunFunction:
    def run(cell: Cell, data: SegmentSet, split: Split, teacher: Trainer | None,
            out_dir: Path) -> TrainResult:
        trainer = Trainer(build(cell, data), cell.train, out_dir)
        result = trainer.fit(data, split, cell.target)
        # The standardisation is saved with the weights so that the trained
        # network can be loaded back exactly (trained_network).
        write_atomically(out_dir / "scaler.pt", lambda f: torch.save(trainer.scaler.state_dict(), f))
        return result

    return run


def register_network(name: str, build: NetworkBuilder) -> None:
    """Register a method that trains the network ``build(cell, data)`` on the labels alone.

    The network is trained by :class:`~mkdbook.train.Trainer` with
    ``cell.train``; its best-validation weights stay in the cell's folder,
    so the method can serve as a teacher.
    """
    register_method(name, needs_teacher=False, build=build)(_train_network(build))


def _build_model_named(model_name: str) -> NetworkBuilder:
    def build(cell: Cell, data: SegmentSet) -> nn.Module:
        return build_model(model_name, n_times=data.signals.shape[-1], sfreq=data.sfreq,
                           seed=cell.seed, **cell.settings)

    return build


for _name in MODEL_NAMES:
    register_network(_name, _build_model_named(_name))


def _import_method_modules() -> None:
    for module in METHOD_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)


def _check_methods(names: tuple[str, ...]) -> None:
    """Fail before any work when a method, or the teacher it needs, is not registered."""
    _import_method_modules()
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        raise ValueError(f"unregistered method(s) {unknown}; registered: {sorted(METHODS)}")
    for name in names:
        method = METHODS[name]
        if method.needs_teacher:
            teacher = METHODS.get(method.teacher)
            if teacher is None or teacher.build is None:
                raise ValueError(f"method {name!r} needs teacher {method.teacher!r}, which is not a "
                                 f"registered network method (see register_network)")


# ---------------------------------------------------------------------------
# Running and caching one cell
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CellResult:
    """A finished cell, as read back from its folder.

    Attributes
    ----------
    cell : Cell
    folder : Path
        ``results_dir() / cell_key(cell)``.
    segments : DataFrame
        One row per test segment: ``segment`` (index into the segment set),
        ``subject``, ``trial``, ``position``, ``label``, ``prediction`` and
        ``p0``, ``p1``, ... (class probabilities).
    record : dict
        The contents of ``result.json``: ``test`` and ``val`` scores,
        ``best_epoch``, ``history``, ``extra``, ``seconds``, ``split``,
        ``cell``, ``package_version``, ``package_source``.
    """

    cell: Cell
    folder: Path
    segments: pd.DataFrame = field(repr=False)
    record: dict[str, Any] = field(repr=False)


def _load(cell: Cell, folder: Path) -> CellResult | None:
    """The cached result in ``folder``, or ``None`` when the cell is not complete."""
    if not (folder / "result.json").is_file():
        return None
    try:
        record = json.loads((folder / "result.json").read_text())
        with np.load(folder / "predictions.npz") as stored:
            arrays = {name: stored[name] for name in stored.files}
        probabilities = arrays.pop("probabilities")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        # Atomic writes make this a damaged disk or a hand edit, not an interruption.
        warnings.warn(f"cached result {folder} is unreadable ({err}); computing it again", stacklevel=3)
        return None
    segments = pd.DataFrame(arrays)
    for k in range(probabilities.shape[1]):
        segments[f"p{k}"] = probabilities[:, k]
    return CellResult(cell, folder, segments, record)


def _scores(scores) -> dict[str, float]:
    return {"loss": float(scores.loss), "accuracy": float(scores.accuracy),
            "f1": float(scores.f1), "n": int(scores.n)}


def _store(cell: Cell, folder: Path, data: SegmentSet, split: Split, output: MethodResult,
           seconds: float) -> None:
    test = output.train.test
    if len(test.predictions) != len(split.test):
        raise RuntimeError(f"{cell.describe()}: {len(test.predictions)} test predictions for "
                           f"{len(split.test)} test segments")
    arrays = {
        "segment": split.test, "subject": data.subject[split.test], "trial": data.trial[split.test],
        "position": data.position[split.test], "label": data.labels(cell.target)[split.test],
        "prediction": np.asarray(test.predictions), "probabilities": np.asarray(test.probabilities),
    }
    version, source = package_fingerprint()
    record = {
        "test": _scores(test), "val": _scores(output.train.val),
        "best_epoch": int(output.train.best_epoch), "history": output.train.history,
        "extra": dict(output.extra), "seconds": seconds,
        "split": {"train": len(split.train), "val": len(split.val), "test": len(split.test),
                  "shared_trials": split.shared_trials},
        "cell": asdict(cell), "package_version": version, "package_source": source,
    }
    try:
        text = json.dumps(record, indent=1)  # fails here, before any file is written
    except TypeError as err:
        raise TypeError(f"{cell.describe()}: the method's extra information must be "
                        f"JSON-serialisable ({err})") from err
    write_atomically(folder / "predictions.npz", lambda f: np.savez(f, **arrays))
    # Written last: its presence marks the cell complete.
    write_atomically(folder / "result.json", lambda f: f.write(text.encode()))
    # The resume state (weights and optimiser) is useless once the cell is done.
    (folder / "train" / "last.pt").unlink(missing_ok=True)


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
    cached = _load(cell, folder)
    if cached is not None:
        return cached
    _check_methods((cell.method,))
    method = METHODS[cell.method]
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
    _store(cell, folder, data, split, output, time.perf_counter() - began)
    return _load(cell, folder)


def trained_network(cell: Cell, data: SegmentSet, split: Split | None = None) -> Trainer:
    """Return a :class:`~mkdbook.train.Trainer` holding a network cell's best-validation weights.

    Runs the cell first if it is not cached. The network is built anew and
    loaded from disk on every call, so callers may change it freely.

    Raises
    ------
    ValueError
        If the cell's method is not a network method (:func:`register_network`).
    """
    _check_methods((cell.method,))
    method = METHODS[cell.method]
    if method.build is None:
        raise ValueError(f"method {cell.method!r} trains no single network that could be loaded")
    result = run_cell(cell, data, split)
    trainer = Trainer(method.build(cell, data), cell.train)
    state = torch.load(result.folder / "train" / "best.pt", map_location=trainer.device, weights_only=True)
    trainer.model.load_state_dict(state["model"])
    scaler = torch.load(result.folder / "train" / "scaler.pt", map_location="cpu", weights_only=True)
    trainer.scaler = ChannelScaler.from_state_dict(scaler)
    trainer.model.eval()
    return trainer


# ---------------------------------------------------------------------------
# Grids
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grid:
    """Methods x targets x folds x seeds, with the settings they share.

    Attributes
    ----------
    methods : tuple of str
        Registered method names.
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
        Settings per method name (see :attr:`Cell.options`), also applied to
        a method when it is the teacher of another.
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

    def cell(self, method: str, target: str, fold: int, seed: int, *, data_source: str,
             data_fingerprint: str) -> Cell:
        """The cell of one method, target, fold and seed, with its teacher's cell if it needs one."""
        _check_methods((method,))
        spec = METHODS[method]
        teacher = None
        if spec.needs_teacher:
            teacher = self.cell(spec.teacher, target, fold, seed, data_source=data_source,
                                data_fingerprint=data_fingerprint)
        return Cell(method, target, fold, seed, self.split_kind, self.n_folds,
                    replace(self.train, seed=seed), self.segments, data_source, data_fingerprint,
                    _freeze(self.options.get(method)), teacher)

    def cells(self, *, data_source: str, data_fingerprint: str) -> Iterator[Cell]:
        """Every cell, seeds outermost and methods innermost (a fold's methods run together)."""
        for seed in self.seeds:
            for fold in self.fold_list:
                for target in self.targets:
                    for method in self.methods:
                        yield self.cell(method, target, fold, seed, data_source=data_source,
                                        data_fingerprint=data_fingerprint)

    def __len__(self) -> int:
        return len(self.methods) * len(self.targets) * len(self.fold_list) * len(self.seeds)


def _per_subject(result: CellResult) -> pd.DataFrame:
    """One row per test subject of a cell."""
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
        Before any work, if a method (or the teacher it needs) is not registered.
    """
    _check_methods(grid.methods)
    data = _resolve_data(grid, data, progress)
    identity = {"data_source": data.source, "data_fingerprint": fingerprint_data(data)}
    splits: dict[tuple, Split] = {}
    tables = []
    bar = tqdm(grid.cells(**identity), total=len(grid), desc="experiment", unit="cell",
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
        Columns ``method, target, accuracy_mean, accuracy_sd, f1_mean, f1_sd,
        n_cells``, methods in their order of first appearance.
    """
    cells = table.groupby(["method", "target", "fold", "seed"], sort=False)[["accuracy", "f1"]].mean()
    summary = cells.groupby(["method", "target"], sort=False).agg(
        accuracy_mean=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
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
    return _profile_grid(SUPERVISED_METHODS, profile)


def _ablation(profile: Profile) -> Grid:
    return _profile_grid(ABLATION_METHODS, profile)


def _paper(profile: Profile) -> Grid:
    methods = SUPERVISED_METHODS + KD_BASELINE_METHODS + ABLATION_METHODS
    return Grid(methods, n_folds=10, seeds=tuple(range(profile.n_seeds)), train=profile_train_config(profile))


#: Named grids, each built from a :class:`~mkdbook.profile.Profile`:
#: ``baselines`` (networks trained without distillation), ``ablation``
#: (V1-V3), ``paper`` (everything, 10 folds, both targets).
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
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; expected one of {sorted(GRIDS)}")
    return GRIDS[name](profile or active_profile())


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _experiment(args: argparse.Namespace) -> int:
    grid = make_grid(args.grid)
    changes: dict[str, Any] = {}
    if args.folds is not None:
        changes.update(n_folds=args.folds, folds=None)
    if args.seeds is not None:
        changes["seeds"] = tuple(range(args.seeds))
    if args.epochs is not None:
        changes["train"] = replace(grid.train, epochs=args.epochs)
    grid = replace(grid, **changes)
    table = run_grid(grid, args.deap_dir, progress=not args.quiet)
    summary = summarise(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("results.csv", table), ("summary.csv", summary)):
        write_atomically(out / name, lambda f, frame=frame: f.write(frame.to_csv(index=False).encode()))
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out / 'results.csv'} ({len(table)} rows) and {out / 'summary.csv'}")
    return 0


def add_experiment_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``mkdbook experiment DEAP_DIR --grid NAME ... --out DIR`` to a sub-command set.

    The grid's size comes from ``MKDBOOK_PROFILE``; ``--folds``, ``--seeds``
    and ``--epochs`` override it. Writes ``results.csv`` (:func:`run_grid`)
    and ``summary.csv`` (:func:`summarise`) into ``--out``.

    Returns
    -------
    argparse.ArgumentParser
        The sub-command's parser; its ``run`` default is the command.
    """
    parser = subparsers.add_parser("experiment", help="run a cached grid of methods, folds and seeds")
    parser.add_argument("deap_dir", metavar="DEAP_DIR", help="data_preprocessed_python/ or a simulated cohort")
    parser.add_argument("--grid", required=True, choices=sorted(GRIDS), help="which named grid")
    parser.add_argument("--folds", type=int, default=None, metavar="K",
                        help="run all K folds of a K-fold split (default: the profile's)")
    parser.add_argument("--seeds", type=int, default=None, metavar="N",
                        help="seeds 0..N-1 (default: the profile's)")
    parser.add_argument("--epochs", type=int, default=None, metavar="E",
                        help="maximum epochs per network (default: the profile's)")
    parser.add_argument("--out", required=True, help="folder for results.csv and summary.csv")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=_experiment)
    return parser
