"""``mkdbook fetch [URL] [--home DIR]``: install the book's published results (:mod:`mkdbook.experiments.fetch`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "fetch"
HELP = "download the book's trained networks and stored results into MKDBOOK_HOME (checked against SHA-256)"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fetch`` to the sub-commands."""
    parser = subparsers.add_parser(NAME, help=HELP)
    parser.add_argument("url", metavar="URL", nargs="?", default=None,
                        help="the folder holding manifest.json and results.tar.gz (default: the published "
                             "book's results of the installed version, "
                             "https://mkdbook.github.io/mkdbook/results/<version>/)")
    parser.add_argument("--home", metavar="DIR", default=None,
                        help="the cache folder to fill (default: MKDBOOK_HOME, else ~/.cache/mkdbook)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Fetch, and say in one line what was installed (or why nothing was)."""
    from mkdbook.core.paths import home
    from mkdbook.experiments.fetch import fetch

    root = Path(args.home).expanduser() if args.home is not None else home()
    fetched = fetch(args.url, root)
    # An archive of other package source is not an error: the chapters train what they need.
    print(f"mkdbook {NAME}: {fetched.describe(root)}", file=sys.stderr if fetched.stale else sys.stdout)
    return 0
