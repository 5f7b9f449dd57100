"""The ``mkdbook`` command line.

Each sub-command is a small function over the package; an error in the input
ends the command with one line on standard error and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from mkdbook import __version__
from mkdbook.data.reader import DeapFormatError

Command = Callable[[argparse.Namespace], int]


def _simulate(args: argparse.Namespace) -> int:
    from mkdbook.data.simulate import simulate_cohort

    paths = simulate_cohort(args.out_dir, n_subjects=args.subjects, variant=args.variant,
                            seed=args.seed, progress=not args.quiet)
    print(f"wrote {len(paths)} simulated subject files ({args.variant!r}, seed {args.seed}) "
          f"to {Path(args.out_dir)}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from mkdbook.data import load_segments
    from mkdbook.data.cache import cache_folder

    data = load_segments(args.deap_dir, progress=not args.quiet)
    print(f"source:   {data.source}")
    print(f"subjects: {len(data.subjects)} ({', '.join(f's{s:02d}' for s in data.subjects)})")
    print(f"segments: {len(data)} of {data.signals.shape[1]} channels x {data.signals.shape[2]} "
          f"samples ({data.config.segment_seconds:g} s at {data.sfreq:g} Hz)")
    for target in ("valence", "arousal"):
        high = data.labels(target).mean()
        print(f"{target}:  {high:.1%} high (rating > {data.config.threshold:g})")
    subjects = [int(s) for s in data.subjects]
    print(f"cache:    {cache_folder(args.deap_dir, subjects, data.config)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="mkdbook",
        description="Multimodal knowledge distillation for emotion recognition (EEG+EOG -> EOG).",
    )
    parser.add_argument("--version", action="version", version=f"mkdbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = commands.add_parser("simulate", help="write a simulated cohort in DEAP's file format")
    sim.add_argument("out_dir", metavar="OUT_DIR", help="folder to write s01.dat ... into")
    sim.add_argument("--subjects", type=int, default=32, help="number of subjects (default 32)")
    sim.add_argument("--variant", default="default",
                     help="default, null (ratings independent of the signals) or eeg-only-valence")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(run=_simulate)

    prep = commands.add_parser("prepare", help="validate a DEAP folder and build its segment cache")
    prep.add_argument("deap_dir", metavar="DEAP_DIR", help="data_preprocessed_python/ or a simulated cohort")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    prep.set_defaults(run=_prepare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DeapFormatError, FileNotFoundError, ValueError) as err:
        print(f"mkdbook {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mkdbook {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
