"""``mkdbook simulate OUT_DIR [--format bids]``: write a simulated cohort in DEAP's file format, or as BIDS."""

from __future__ import annotations

import argparse
import inspect

from mkdbook.cli.common import output_folder, positive_int, seed

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "simulate"
HELP = "write a simulated cohort in DEAP's file format (or as a BIDS data set)"


def _defaults() -> dict:
    from mkdbook.data.simulate import simulate_cohort

    return {name: p.default for name, p in inspect.signature(simulate_cohort).parameters.items()}


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``simulate`` to the sub-commands."""
    from mkdbook.data.simulate import VARIANTS
    from mkdbook.data.simulate.cohort import COHORT_FORMATS

    defaults = _defaults()
    parser = subparsers.add_parser(NAME, help=HELP)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write s01.dat ... (or sub-01/ ...) into")
    parser.add_argument("--subjects", type=positive_int, default=defaults["n_subjects"],
                        help=f"number of subjects (default {defaults['n_subjects']})")
    parser.add_argument("--variant", default=defaults["variant"], choices=tuple(VARIANTS),
                        help=f"which cohort (default {defaults['variant']}): null has ratings independent of "
                             "the signals, eeg-only-valence valence in the EEG alone, no-emg no muscle "
                             "crosstalk in the EOG")
    parser.add_argument("--seed", type=seed, default=defaults["seed"],
                        help=f"random seed (default {defaults['seed']})")
    parser.add_argument("--workers", type=positive_int, default=defaults["workers"], metavar="N",
                        help=f"subjects simulated at once, one process each; the files do not depend on it "
                             f"(default {defaults['workers']})")
    parser.add_argument("--format", default=defaults["format"], choices=COHORT_FORMATS,
                        help="deap: DEAP's sNN.dat files (default); bids: a BIDS data set of the same samples "
                             "and ratings (BrainVision, float32, via mne-bids)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Simulate the cohort and say where it went."""
    from mkdbook.data.simulate import simulate_cohort

    folder = output_folder(args.out_dir)
    try:
        paths = simulate_cohort(folder, n_subjects=args.subjects, variant=args.variant, seed=args.seed,
                                progress=not args.quiet, workers=args.workers, format=args.format)
    except OSError as err:
        # Only the cohort's folder is written (BIDS files through mne-bids and
        # pybv, whose errors may name no file: numpy's "Not enough free
        # space to write ..." has no error number either): name it.
        if err.filename is not None:
            raise
        if err.errno is None:
            raise OSError(f"{folder}: {err}") from err
        raise OSError(err.errno, err.strerror, str(folder)) from err
    kind = "BIDS recordings" if args.format == "bids" else "subject files"
    print(f"wrote {len(paths)} simulated {kind} ({args.variant!r}, seed {args.seed}) to {folder}")
    return 0
