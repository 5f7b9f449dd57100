"""``mkdbook prepare DATA_DIR``: validate a data folder and build its segment cache."""

from __future__ import annotations

import argparse

from mkdbook.cli.common import add_data_argument

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "prepare"
HELP = "validate a data folder (DEAP or BIDS) and build its segment cache"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``prepare`` to the sub-commands."""
    parser = subparsers.add_parser(NAME, help=HELP)
    add_data_argument(parser)
    parser.add_argument("--verify-sources", action="store_true",
                        help="also check every source file's content against the checksum recorded "
                             "when the cache was built (reads every byte; catches a file rewritten "
                             "with the same size and modification time)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load (preparing on first use) and print a summary of the segments."""
    from mkdbook.data import load_segments
    from mkdbook.data.cache import cache_folder

    data = load_segments(args.data_dir, reader=args.format, verify_sources=args.verify_sources, progress=not args.quiet)
    print(f"source:   {data.source}")
    print(f"subjects: {len(data.subjects)} ({', '.join(f's{s:02d}' for s in data.subjects)})")
    print(f"segments: {len(data)} of {data.signals.shape[1]} channels x {data.signals.shape[2]} "
          f"samples ({data.config.segment_seconds:g} s at {data.sfreq:g} Hz)")
    for target in ("valence", "arousal"):
        high = data.labels(target).mean()
        print(f"{target}:  {high:.1%} high (rating > {data.config.threshold:g})")
    subjects = [int(s) for s in data.subjects]
    print(f"cache:    {cache_folder(args.data_dir, subjects, data.config, reader=args.format)}")
    return 0
