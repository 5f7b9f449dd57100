"""What the sub-commands share: the parser, argument types, training arguments, output folders.

Imports only the standard library and :mod:`mkdbook.core.checks` at module level:
``mkdbook --help`` and ``mkdbook prepare`` need neither torch nor scikit-learn.
"""

from __future__ import annotations

import argparse
import errno
import os
from pathlib import Path

from mkdbook.core.checks import check_int, check_number

__all__ = [
    "Parser",
    "add_train_arguments",
    "n_folds",
    "output_folder",
    "train_config",
]

class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like the commands' own."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


def _argument_type(check, *args, **kwargs):
    """An argparse type that parses a number and applies one of :mod:`mkdbook.core.checks`' checks."""
    def parse(text: str):
        try:
            value = (int if check is check_int else float)(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            return check("value", value, *args, **kwargs)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix("value ")) from None

    parse.__name__ = "number"
    return parse


#: Integers >= 1 (epochs, batch sizes, folds, subjects).
positive_int = _argument_type(check_int, 1)
#: Integers >= 0 (fold numbers).
non_negative_int = _argument_type(check_int, 0)
#: Seeds: integers in [0, 2**32 - 1], the range numpy's generators accept.
seed = _argument_type(check_int, 0, 2**32 - 1)
#: Finite numbers > 0 (learning rates, step sizes).
positive_float = _argument_type(check_number, 0.0, strict=True)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    """The positional ``DATA_DIR`` and ``--format``, its format (inferred by default)."""
    from mkdbook.data.readers import FORMATS

    parser.add_argument("data_dir", metavar="DATA_DIR",
                        help="the data: DEAP's data_preprocessed_python/, a BIDS data set, or a simulated "
                             "cohort in either format")
    parser.add_argument("--format", default=None, choices=tuple(FORMATS),
                        help="the data's format: deap or bids (default: inferred, BIDS for a folder with "
                             "dataset_description.json, DEAP for one with sNN.dat files)")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``train`` and ``distill``; defaults are :class:`~mkdbook.training.trainer.TrainConfig`'s."""
    from mkdbook.splits import SPLIT_KINDS
    from mkdbook.training.trainer import DEVICES, TrainConfig

    defaults = TrainConfig()
    add_data_argument(parser)
    parser.add_argument("--target", required=True, choices=("valence", "arousal"))
    parser.add_argument("--split", default="trial", choices=SPLIT_KINDS,
                        help="trial (default), video (leave-video-out), subjects, or leaky (for contrast only)")
    parser.add_argument("--fold", type=non_negative_int, default=0, help="test fold, 0-based (default 0)")
    parser.add_argument("--folds", type=positive_int, default=None,
                        help="number of folds (default 10; subjects: min(10, n_subjects))")
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs,
                        help=f"maximum epochs (default {defaults.epochs})")
    parser.add_argument("--patience", type=positive_int, default=defaults.patience,
                        help=f"early-stopping patience (default {defaults.patience})")
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                        help=f"segments per step (default {defaults.batch_size})")
    parser.add_argument("--lr", type=positive_float, default=defaults.lr,
                        help=f"Adam learning rate (default {defaults.lr:g})")
    parser.add_argument("--seed", type=seed, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    parser.add_argument("--device", default=defaults.device, choices=DEVICES,
                        help="auto (CUDA when available, the default), cpu or cuda")
    parser.add_argument("--out", required=True, help="output folder (metrics.json, checkpoints)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_config(args: argparse.Namespace, *, progress: bool) -> TrainConfig:
    """The :class:`~mkdbook.training.trainer.TrainConfig` of the training arguments."""
    from mkdbook.training.trainer import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                       seed=args.seed, device=args.device, progress=progress)


def n_folds(args: argparse.Namespace, n_subjects: int) -> int:
    """``--folds``, or its default: 10, and at most one per subject for the subject split."""
    if args.folds is not None:
        return args.folds
    return min(10, n_subjects) if args.split == "subjects" else 10


def output_folder(path: str | Path) -> Path:
    """Create ``path`` (and its parents) if needed and check it is a writable folder, before any work.

    Raises
    ------
    OSError
        Naming the path: it is a file, or it cannot be created or written.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is not a folder", str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "folder is not writable", str(folder))
    return folder
