"""The ``mkdbook`` command line: one module per sub-command.

The same work as the chapters, from a shell (the README's *Command line*
lists the commands; the protocol page runs the paper's grid with them).

Each sub-command module has ``NAME``, ``HELP`` (its line in ``mkdbook
--help``), ``add_command(subparsers)`` and ``run(args)``, a short function
over the package. Only the sub-command that runs adds its arguments, which
import what they need (torch, scikit-learn...) inside the functions; the
others are listed by name and help line, so ``mkdbook --help`` imports
little more than :mod:`argparse`. Bad input ends the command with one line
on standard error and exit status 2, never a traceback:

* a malformed data file: ``mkdbook prepare: error: /data/s01.dat: 'labels' must ...``;
* a bad argument: ``mkdbook train: error: epochs must be an integer >= 1, got 0``;
* an operating-system error: ``mkdbook train: error: /out: Permission denied``;
* a write that fails: ``mkdbook train: error: /out/last.pt: No space left on device``
  (:func:`~mkdbook.core.atomic.write_atomically` names the file; the files
  written before stay whole, and a rerun with room resumes).

Output folders are created and checked before any work starts, and a result
of another run is never overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

from mkdbook import __version__
from mkdbook.cli import distill, experiment, export, fetch, prepare, publish, simulate, train
from mkdbook.cli.common import Parser

__all__ = ["build_parser", "main"]

#: The sub-command modules, in the order ``mkdbook --help`` lists them.
COMMANDS = (simulate, prepare, train, distill, experiment, publish, fetch, export)


def build_parser(commands: Collection[str] | None = None) -> Parser:
    """The argument parser of the sub-commands.

    Parameters
    ----------
    commands : collection of str, optional
        The sub-commands whose arguments are added (all by default); the
        others are listed with their help line only.
    """
    parser = Parser(prog="mkdbook",
                    description="Multimodal knowledge distillation for emotion recognition (EEG+EOG -> EOG).")
    parser.add_argument("--version", action="version", version=f"mkdbook {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        if commands is None or command.NAME in commands:
            command.add_command(subparsers)
        else:
            subparsers.add_parser(command.NAME, help=command.HELP)
    return parser


def _os_error(err: OSError) -> str:
    # "PATH: reason", the form the shell's own tools use.
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    # The only top-level options (--help, --version) take no value, so the
    # first other word names the sub-command, the only one whose arguments are built.
    chosen = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser({chosen}).parse_args(argv)
    try:
        return args.run(args)
    except ValueError as err:  # mkdbook.data.DeapFormatError included
        message = str(err)
    except OSError as err:  # FileNotFoundError and PermissionError included
        message = _os_error(err)
    except RecursionError as err:
        message = f"input nested too deeply ({err})"
    except KeyboardInterrupt:
        print(f"mkdbook {args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"mkdbook {args.command}: error: {message}", file=sys.stderr)
    return 2
