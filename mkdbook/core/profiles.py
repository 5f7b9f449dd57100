"""Run profiles: how big each chapter's work is, and on how many processes, read from the environment.

``MKDBOOK_PROFILE`` picks a profile:

``fast``
    What the tests run under nbval: a tiny simulated cohort and a few epochs,
    enough to execute every cell and its assertions in seconds.
``default``
    What the book build runs: a cohort and training budget that fit a laptop
    CPU, a few minutes per chapter.
``paper``
    The paper's protocol at full scale (32 subjects, 10 folds, both targets),
    meant for a GPU or several machines.

``MKDBOOK_WORKERS`` (default 1) is how many processes a chapter trains its
networks on at once (:func:`mkdbook.book.chapter.train_ahead`), simulates
subjects on (:func:`mkdbook.book.chapter.book_cohort`) and runs its pocket
sweeps on. :func:`active_profile` is the one place that reads it, into
:attr:`Profile.workers`; everything else is handed the number, the profile's
or its own (``workers=`` of the sweeps and of the simulator, ``--workers``
on the command line).

``MKDBOOK_DEAP_DIR`` points the chapters at a real ``data_preprocessed_python/``
folder (or a BIDS data set; the format is inferred) instead of the simulated cohort; ``MKDBOOK_HOME`` (default
``~/.cache/mkdbook``) is where simulated cohorts, segment caches and cached
results live.

This module only reads settings; it never simulates or loads data. The
chapters get their data folder from :func:`mkdbook.book.chapter.book_cohort`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class Profile:
    """The size of the work a chapter does.

    Attributes
    ----------
    name : str
        ``"fast"``, ``"default"`` or ``"paper"``.
    n_subjects : int
        Subjects in the simulated cohort (ignored with real DEAP, which has 32).
    epochs : int
        Maximum training epochs per network.
    patience : int
        Early-stopping patience in epochs without a better validation score
        (:attr:`TrainConfig.select <mkdbook.training.trainer.TrainConfig>`).
    n_folds : int
        Folds of the k-fold-by-trial protocol used by experiment grids.
    n_seeds : int
        Seeds per grid cell.
    folds : tuple of int or None
        Which of the ``n_folds`` folds the experiment grids run (``None``: all).
        Training transformers on a laptop CPU is slow, so the default profile
        runs one fold of the k-fold partition; the paper profile runs them all.
    targets : tuple of str
        Rating scales the experiment grids run.
    batch_size : int
        Segments per training batch.
    max_batches : int or None
        Batches per training epoch (``None``: all). Only the fast profile caps
        it: its results only show that the code runs.
    workers : int
        Processes a chapter trains networks, simulates subjects and runs
        sweeps on at once. Not a size of the work: the numbers are the same
        for any count. 1 in :data:`PROFILES`; :func:`active_profile` sets it
        from ``MKDBOOK_WORKERS``.
    """

    name: str
    n_subjects: int
    epochs: int
    patience: int
    n_folds: int
    n_seeds: int
    folds: tuple[int, ...] | None = None
    targets: tuple[str, ...] = ("valence", "arousal")
    batch_size: int = 64
    max_batches: int | None = None
    workers: int = 1


PROFILES: dict[str, Profile] = {
    "fast": Profile("fast", n_subjects=3, epochs=2, patience=2, n_folds=3, n_seeds=1,
                    folds=(0,), targets=("valence",), max_batches=6),
    # Epochs and patience from the teacher's learning curves on this cohort
    # (12 simulated subjects, per-subject standardisation). With the first
    # front end the valence teacher sat on the majority-class plateau
    # (validation balanced accuracy 0.50) for epochs 1-5, and a patience of 4
    # stopped it there; the patience outlasts such a plateau with room to
    # spare. With the sinc front end and batch-norm readouts the teachers
    # leave chance within the first few epochs, and over the five folds
    # their best validation epoch was 7-19 on valence and 9-17 on arousal,
    # with the validation score moving by several points from one epoch to
    # the next: the cap still binds on some folds, so it stays at 20.
    #
    # The default profile trains valence only. A from-scratch build with both
    # targets trained 47 networks in about 122 minutes of a 2-core CPU, four
    # times the book's half-hour budget; arousal doubled every grid while
    # adding no method, and the paper profile runs it.
    "default": Profile("default", n_subjects=12, epochs=20, patience=8, n_folds=5, n_seeds=1,
                       folds=(0,), targets=("valence",)),
    "paper": Profile("paper", n_subjects=32, epochs=100, patience=20, n_folds=10, n_seeds=3),
}


def active_profile() -> Profile:
    """Return the profile named by ``MKDBOOK_PROFILE`` (``"default"`` when unset), on ``MKDBOOK_WORKERS`` processes.

    The one reader of both variables: code that needs the worker count takes
    it from the profile, :attr:`Profile.workers` (1 when the variable is unset).

    Raises
    ------
    ValueError
        If ``MKDBOOK_PROFILE`` names no known profile, or ``MKDBOOK_WORKERS``
        is not a whole number of at least 1.
    """
    name = os.environ.get("MKDBOOK_PROFILE", "default")
    if name not in PROFILES:
        raise ValueError(
            f"MKDBOOK_PROFILE={name!r} is not a profile; expected one of {sorted(PROFILES)}"
        )
    workers = os.environ.get("MKDBOOK_WORKERS", "1")
    if not workers.strip().isdigit() or int(workers) < 1:
        raise ValueError(f"MKDBOOK_WORKERS={workers!r} is not a number of processes; expected a whole number >= 1")
    return replace(PROFILES[name], workers=int(workers))


def real_deap_dir() -> Path | None:
    """Return ``MKDBOOK_DEAP_DIR`` as a path, or ``None`` when the book runs on simulated data.

    The folder may be DEAP's ``data_preprocessed_python/`` or a BIDS data set:
    :func:`~mkdbook.data.load_segments` infers its format.
    """
    value = os.environ.get("MKDBOOK_DEAP_DIR")
    return Path(value).expanduser() if value else None

