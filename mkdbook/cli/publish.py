"""``mkdbook publish OUT_DIR [--home DIR]``: pack MKDBOOK_HOME's finished cells for ``mkdbook fetch``.

The book's main-branch build runs it into ``_build/html/results/<version>/``
(:mod:`mkdbook.experiments.published`).
"""

from __future__ import annotations

import argparse
import errno
from pathlib import Path

from mkdbook.cli.common import output_folder

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "publish"
HELP = "write MKDBOOK_HOME's finished cells and stored tables as an archive with a SHA-256 manifest"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``publish`` to the sub-commands."""
    parser = subparsers.add_parser(NAME, help=HELP)
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write manifest.json and results.tar.gz into")
    parser.add_argument("--home", metavar="DIR", default=None,
                        help="the cache folder to publish (default: MKDBOOK_HOME, else ~/.cache/mkdbook)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Publish, refusing a folder that holds published results already."""
    from mkdbook.core.paths import home
    from mkdbook.experiments.published import MANIFEST, publish

    root = Path(args.home).expanduser() if args.home is not None else home()
    if not (root / "results").is_dir():
        raise FileNotFoundError(errno.ENOENT, "holds no results/ folder: nothing to publish", str(root))
    folder = output_folder(args.out_dir)
    if (folder / MANIFEST).exists():
        raise FileExistsError(errno.EEXIST, "holds published results already; choose an empty folder", str(folder / MANIFEST))
    manifest = publish(folder, root)
    members = manifest["files"]
    cells = len({name.split("/")[1] for name in members} - {"tables"})
    print(f"published {cells} cells ({len(members)} files, {manifest['archive']['bytes'] / 1e6:.1f} MB "
          f"compressed) of {root} into {folder}")
    return 0
