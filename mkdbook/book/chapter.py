"""A chapter's setup, its data, training ahead on several processes, and stored tables.

Each chapter of the book opens with one line,

>>> from mkdbook import book
>>> profile, data = book.start(SEED)  # doctest: +SKIP

which seeds the random generators, quiets the libraries whose messages mean
nothing in a rendered page, sets the figure theme and loads the segments the
chapter works on. When a chapter teaches a piece of the package it shows the
code itself, not a copy pasted into the notebook:

>>> from mkdbook.distillation import losses
>>> book.show(losses.kl_divergence, docstring=False)  # doctest: +SKIP

(:func:`mkdbook.book.source_code.show`).

:func:`book_cohort` decides which data folder the chapters read: the real
DEAP release when ``MKDBOOK_DEAP_DIR`` is set, a simulated cohort otherwise.
It lives here, not in :mod:`mkdbook.core.profiles`, so that choosing a profile never
simulates anything; only a chapter asking for its data does.

A chapter that trains several networks first hands their cells to
:func:`train_ahead`, which trains them on the profile's
:attr:`~mkdbook.core.profiles.Profile.workers` processes at once
(``MKDBOOK_WORKERS``; meanwhile the chapter can go on, with ``wait=False``);
the chapter's own ``run_grid`` and ``run_cell`` calls then read them back.
The same count is the chapter's to hand to anything else it runs side by
side (``workers=profile.workers``).

Chapters 8 and 9 compare the methods of :data:`mkdbook.experiments.methods.METHODS` on
one grid, :func:`comparison_grid`, and list them with :func:`method_table`
(rendered with citations by :func:`markdown_table`).
"""

from __future__ import annotations

import inspect
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from functools import partial
from io import StringIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

# In a notebook without ipywidgets, tqdm.auto warns once, when it is first
# imported, that its progress bars fall back to text. The data layer imports
# it, so it is imported here first with that warning silenced: a chapter whose
# first import from the package is this module never shows it.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="IProgress not found")
    import tqdm.auto  # noqa: F401

from mkdbook.core.keys import json_key, value_digest  # noqa: E402
from mkdbook.core.paths import home  # noqa: E402
from mkdbook.core.profiles import Profile, active_profile, real_deap_dir  # noqa: E402
from mkdbook.data import SegmentSet, load_segments  # noqa: E402
from mkdbook.data.cache import SIMULATION_MANIFEST  # noqa: E402

if TYPE_CHECKING:
    from IPython.display import Markdown

    from mkdbook.experiments.grids import Grid
    from mkdbook.training.runs import Cell

__all__ = ["COHORT_SEED", "DEVELOPMENT_COHORT_SEED", "book_cohort", "comparison_grid", "markdown_table",
           "method_table", "start", "stored_table", "train_ahead"]

#: Seed of the simulated cohorts the book reports on. It was first simulated
#: after every design choice of the package and the simulator had been fixed
#: (front ends, epochs, learning rates, the simulator's effect sizes, the
#: registered positive control), so no choice was fitted to these numbers.
COHORT_SEED: int = 1

#: Seed of the development cohorts: the ones every earlier edition of the book
#: reported on, and on which those choices were made. A reader who changes the
#: package should choose on these and report on :data:`COHORT_SEED`.
DEVELOPMENT_COHORT_SEED: int = 0


def book_cohort(variant: str = "default", *, seed: int = COHORT_SEED, profile: Profile | None = None) -> Path:
    """Return the data folder a chapter reads, simulating it on first use.

    With ``MKDBOOK_DEAP_DIR`` set, the ``default`` variant is the real DEAP
    folder (or BIDS data set); the other variants (``null``, ``eeg-only-valence``) are always
    simulated, since they exist to test the pipeline on data whose answer is
    known.

    A simulated cohort is written once, to
    ``$MKDBOOK_HOME/cohorts/<variant>-<n>subjects-seed<seed>-v<version>-<config>``,
    and reused by every later call with the same arguments. The package
    version and a digest of the default :class:`~mkdbook.data.simulate.SimulationConfig`
    are part of the name because another release, or another set of
    defaults, simulates differently. The profile's ``workers`` processes
    simulate subjects at once (the files are the same).

    Parameters
    ----------
    variant : str, default "default"
        Simulated cohort variant (see :mod:`mkdbook.data.simulate`).
    seed : int, default COHORT_SEED
        Seed of the simulated cohort: the reported one, :data:`COHORT_SEED`,
        or the development one, :data:`DEVELOPMENT_COHORT_SEED`.
    profile : Profile, optional
        Decides the number of simulated subjects and of the processes that
        simulate them; :func:`~mkdbook.core.profiles.active_profile` by default.

    Returns
    -------
    Path
        A folder of ``sNN.dat`` files in DEAP's format (or the BIDS data set
        ``MKDBOOK_DEAP_DIR`` names), ready for :func:`~mkdbook.data.load_segments`,
        which infers the format.
    """
    from mkdbook import __version__
    from mkdbook.data.simulate import SimulationConfig, simulate_cohort

    real = real_deap_dir()
    if real is not None and variant == "default":
        return real
    profile = profile or active_profile()
    digest = json_key(asdict(SimulationConfig()), length=8)
    name = f"{variant}-{profile.n_subjects}subjects-seed{seed}-v{__version__}-{digest}"
    folder = home() / "cohorts" / name
    if not (folder / SIMULATION_MANIFEST).is_file():
        simulate_cohort(folder, n_subjects=profile.n_subjects, variant=variant, seed=seed,
                        workers=profile.workers)
    return folder


def start(seed: int = 0, variant: str = "default") -> tuple[Profile, SegmentSet]:
    """Prepare a chapter: seeds, quiet libraries, figure theme, data.

    In order, it

    * seeds Python's :mod:`random`, NumPy's global generator and PyTorch
      with ``seed`` (code that draws from its own seeded generator, as the
      package's trainers do, is unaffected);
    * sets MNE's log level to ``"ERROR"``;
    * hides warnings that say nothing about the chapter: tqdm's
      "IProgress not found" (without ipywidgets, notebook progress bars fall
      back to text; importing this module already keeps away the one tqdm
      gives when first imported) and the ``UserWarning`` category raised
      from PyTorch;
    * sets the seaborn theme (``context="notebook", style="whitegrid"``);
    * loads the segments of :func:`book_cohort` ``(variant)`` and prints one
      line naming the profile and the data's source.

    The settings are global to the Python process, as a chapter wants them.

    Parameters
    ----------
    seed : int, default 0
        Seed of the global random generators. The cohort does not depend on
        it: every chapter reads the same data (:data:`COHORT_SEED`) whatever its seed.
    variant : str, default "default"
        Cohort variant, passed to :func:`book_cohort`.

    Returns
    -------
    profile : Profile
        The active profile (:func:`~mkdbook.core.profiles.active_profile`);
        its ``workers`` is what the chapter hands to whatever it runs side by
        side (:func:`train_ahead`, the sweeps' ``workers=``).
    data : SegmentSet
        The cohort's segments.
    """
    import mne
    import seaborn as sns

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    mne.set_log_level("ERROR")
    warnings.filterwarnings("ignore", message="IProgress not found")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    sns.set_theme(context="notebook", style="whitegrid")
    profile = active_profile()
    data = load_segments(book_cohort(variant, profile=profile), progress=False)
    print(f"profile: {profile.name}; data: {data.source}")
    return profile, data


def train_ahead(cells: Iterable[Cell], variant: str = "default", *, profile: Profile | None = None,
                wait: bool = True) -> Future:
    """Train the cells not cached yet on the profile's ``workers`` local processes at once.

    With one worker (``MKDBOOK_WORKERS`` unset) it does nothing, and the chapter's
    ``run_grid`` and ``run_cell`` calls train each cell in turn in the
    chapter's own process. With more, a local Dask cluster
    (:class:`~mkdbook.experiments.executors.DaskExecutor`, ``pip install mkdbook[cluster]``)
    of one-thread workers trains every cell, each student's teacher before
    it, and those calls read the results from the cache. Two small networks
    on two cores train faster side by side on one thread each than one after
    the other on two threads, whose matrix products cannot keep both busy.

    Parameters
    ----------
    cells : iterable of Cell
        Cells the chapter is about to read (a grid's ``work_cells``, or ``grid.cell(...)``).
    variant : str, default "default"
        The cohort the cells were made from (:func:`book_cohort`), which the workers load.
    profile : Profile, optional
        Decides the number of worker processes (:attr:`Profile.workers
        <mkdbook.core.profiles.Profile>`) and the cohort's size;
        :func:`~mkdbook.core.profiles.active_profile` by default, as
        :func:`start` returns it.
    wait : bool, default True
        ``False`` returns at once: the workers train while the chapter's own
        process does other work, and the future's ``result()`` waits for them
        (raising a worker's error).

    Returns
    -------
    concurrent.futures.Future
        Done already unless ``wait=False`` started workers.
    """
    profile = profile or active_profile()
    workers = profile.workers
    if workers < 2:
        return _finished()
    from mkdbook.experiments.executors import DaskConfig, DaskExecutor
    from mkdbook.experiments.progress import GridProgress

    todo = list(dict.fromkeys(c for cell in cells for c in (cell.teacher, cell) if c is not None))
    # Threads per worker: each cell's own (mkdbook.core.threads.cell_threads), as in this process.
    executor = DaskExecutor(DaskConfig(workers=workers))
    progress = GridProgress(todo, workers=workers, enabled=False)
    run = partial(executor.complete, todo, None, book_cohort(variant, profile=profile), progress)
    if wait:
        run()
        return _finished()
    thread = ThreadPoolExecutor(1, thread_name_prefix="train-ahead")
    training = thread.submit(run)
    thread.shutdown(wait=False)  # the thread ends when the training does
    return training


def _finished() -> Future:
    """A future that is already done: :func:`train_ahead` had nothing left to wait for."""
    future: Future = Future()
    future.set_result(None)
    return future


def stored_table(name: str, compute: Callable[[], pd.DataFrame], **settings: Any) -> pd.DataFrame:
    """A chapter's table, computed once and read back from the result cache afterwards.

    For the analyses that train no network but take a minute (the
    cross-validated band-power classifiers of chapters 1 and 2): every build
    re-executes every chapter, and the trained networks come from the result
    cache, so these would otherwise be the slowest part of a rebuild. The
    table lives in ``$MKDBOOK_HOME/results/tables/<key>.json``, where the
    key hashes ``name``, ``settings``, the package source (as every cell's
    key does, :func:`mkdbook.core.keys.package_fingerprint`) and the source of
    ``compute`` and of the chapter's own functions that it calls by name.

    Parameters
    ----------
    name : str
        What the table is, for the key and for a reader of the cache.
    compute : callable
        Returns the table; called only when no stored copy exists.
    **settings
        Every value the table depends on besides code: numbers and strings,
        arrays (hashed), segment sets (their content fingerprint), and
        lists, tuples and dicts of these.

    Returns
    -------
    DataFrame
        Read back with 15 significant digits (pandas' JSON table format,
        which keeps the column types).
    """
    from mkdbook.core.atomic import write_atomically
    from mkdbook.core.keys import package_fingerprint
    from mkdbook.core.paths import results_dir

    payload = {"table": name, "settings": _identity(settings), "code": _chapter_code(compute),
               "package": package_fingerprint()}
    key = json_key(payload)
    path = results_dir() / "tables" / f"{key}.json"
    if path.exists():
        return pd.read_json(StringIO(path.read_text()), orient="table")
    table = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    text = table.to_json(orient="table", double_precision=15)
    write_atomically(path, lambda stream: stream.write(text.encode()))
    return table


def _identity(value: Any) -> Any:
    """A JSON-serialisable stand-in for ``value`` that changes whenever it does."""
    from mkdbook.data.fingerprint import fingerprint_data

    if isinstance(value, SegmentSet):
        return fingerprint_data(value)
    if isinstance(value, np.ndarray):
        return value_digest(value)
    if isinstance(value, dict):
        return [[_identity(key), _identity(item)] for key, item in value.items()]
    if isinstance(value, (list, tuple)):
        return [_identity(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"stored_table: cannot identify a setting of type {type(value).__name__}")


def _chapter_code(compute: Callable[..., Any]) -> list[str]:
    """Source of ``compute`` and of the notebook functions it reaches by name (the package has its own hash)."""
    seen: list[Callable[..., Any]] = []
    pending = [compute]
    while pending:
        function = pending.pop()
        if function in seen:
            continue
        seen.append(function)
        names = function.__code__.co_names
        pending += [value for name in names if inspect.isfunction(value := function.__globals__.get(name))
                    and value.__module__ == compute.__module__]
    return [inspect.getsource(function) for function in seen]


# -- The comparison of chapters 8 and 9 -------------------------------------------------


def comparison_grid(profile: Profile | None = None) -> Grid:
    """The grid of chapters 8 and 9: every method of the method table, at the size of ``profile``.

    The named ``"baselines"`` grid (:func:`~mkdbook.experiments.grids.make_grid`)
    with its methods replaced by all of :data:`~mkdbook.experiments.methods.METHODS`, in
    table order: every method runs on the same targets, folds, seeds and
    training settings, so chapter 9 tests exactly the cells chapter 8 ran
    and finds them in the result cache.

    Parameters
    ----------
    profile : Profile, optional
        :func:`~mkdbook.core.profiles.active_profile` by default.

    Returns
    -------
    Grid
    """
    from dataclasses import replace

    from mkdbook.experiments.grids import make_grid
    from mkdbook.experiments.methods import method_names

    return replace(make_grid("baselines", profile), methods=method_names())


def method_table(names: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of the method table as a DataFrame, with a citation for each method.

    Parameters
    ----------
    names : sequence of str, optional
        Methods to list, in this order; every method of
        :data:`~mkdbook.experiments.methods.METHODS`, in table order, by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``method``, with columns ``role``, ``description``,
        ``teacher`` (the teacher's method name, empty for methods that learn
        from labels alone) and ``reference``: the method's BibTeX keys as a
        MyST citation, ``{cite:p}`key1,key2```, empty when it has none.

    Raises
    ------
    ValueError
        If a name is not in the method table.
    """
    from mkdbook.experiments.methods import METHODS, method_named

    methods = METHODS if names is None else tuple(method_named(name) for name in names)
    rows = [{"method": m.name, "role": m.role, "description": m.description,
             "teacher": m.teacher if m.needs_teacher else "",
             "reference": f"{{cite:p}}`{','.join(m.references)}`" if m.references else ""}
            for m in methods]
    return pd.DataFrame(rows, columns=["method", "role", "description", "teacher", "reference"]).set_index("method")


def markdown_table(frame: pd.DataFrame, *, index: bool = True) -> Markdown:
    """A DataFrame as a Markdown pipe table, for a cell whose Markdown output is parsed as MyST.

    Unlike a DataFrame's HTML, a Markdown output can carry roles such as the
    citations of :func:`method_table`; they are rendered when the cell's
    metadata asks for MyST (``"mystnb": {"markdown_format": "myst"}``).

    Parameters
    ----------
    frame : pandas.DataFrame
        Values are written with :class:`str`; ``|`` is escaped and line
        breaks become spaces.
    index : bool, default True
        Write the index as the first column, headed by its name.

    Returns
    -------
    IPython.display.Markdown
        Its ``data`` attribute is the table's text.
    """
    from IPython.display import Markdown

    def cell(value: Any) -> str:
        return " ".join(str(value).split()).replace("|", "\\|")

    table = frame.reset_index() if index else frame
    header = [cell(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return Markdown("\n".join(lines))
