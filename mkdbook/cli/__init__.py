"""The ``mkdbook`` command line: one module per sub-command.

Each sub-command module has ``add_command(subparsers)`` and ``run(args)``,
a short function over the package. Bad input ends the command with one line
on standard error and exit status 2, never a traceback:

* a malformed data file: ``mkdbook prepare: error: /data/s01.dat: 'labels' must ...``;
* a bad argument: ``mkdbook train: error: epochs must be an integer >= 1, got 0``;
* an operating-system error: ``mkdbook train: error: /out: Permission denied``.

Output folders are created and checked before any work starts, and a result
of another run is never overwritten.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from mkdbook import __version__
from mkdbook.cli import distill, experiment, prepare, simulate, train
from mkdbook.cli.common import Parser

__all__ = ["build_parser", "main"]

#: The sub-command modules, in the order ``mkdbook --help`` lists them.
COMMANDS = (simulate, prepare, train, distill, experiment)


def build_parser() -> Parser:
    """The argument parser of every sub-command."""
    parser = Parser(prog="mkdbook",
                    description="Multimodal knowledge distillation for emotion recognition (EEG+EOG -> EOG).")
    parser.add_argument("--version", action="version", version=f"mkdbook {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_command(commands)
    return parser


def _os_error(err: OSError) -> str:
    # "PATH: reason", the form the shell's own tools use.
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    from mkdbook.data.reader import DeapFormatError

    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (DeapFormatError, ValueError) as err:
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
