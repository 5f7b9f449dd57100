"""The ``mkdbook`` command line.

Each sub-command is a small function over the package; an error in the input
ends the command with one line on standard error and exit status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from mkdbook import __version__
from mkdbook.data.reader import DeapFormatError



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


def _train(args: argparse.Namespace) -> int:
    from mkdbook.data import load_segments
    from mkdbook.models import build_model
    from mkdbook.splits import make_split
    from mkdbook.train import TrainConfig, Trainer, write_metrics

    data = load_segments(args.deap_dir, progress=not args.quiet)
    split = make_split(data, args.split, fold=args.fold, n_folds=_n_folds(args, data), seed=args.seed)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         patience=args.patience, seed=args.seed, device=args.device,
                         progress=not args.quiet)
    model = build_model(args.model, seed=args.seed)
    out = Path(args.out)
    result = Trainer(model, config, out).fit(data, split, args.target)
    write_metrics(result, split, {"model": args.model, "target": args.target, "data": data.source,
                                  "train": asdict(config)}, out / "metrics.json")
    print(f"{args.model} on {args.target}, {split.describe()}")
    print(f"test accuracy {result.test.accuracy:.3f}, macro-F1 {result.test.f1:.3f} "
          f"(best epoch {result.best_epoch}); wrote {out / 'metrics.json'}")
    return 0


def _n_folds(args: argparse.Namespace, data) -> int:
    if args.folds is not None:
        return args.folds
    return min(10, len(data.subjects)) if args.split == "subjects" else 10


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, like the commands' own."""

    def error(self, message: str) -> None:  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``train`` and the commands that extend it."""
    from mkdbook.splits import SPLIT_KINDS

    parser.add_argument("deap_dir", metavar="DEAP_DIR", help="data_preprocessed_python/ or a simulated cohort")
    parser.add_argument("--target", required=True, choices=("valence", "arousal"))
    parser.add_argument("--split", default="trial", choices=SPLIT_KINDS,
                        help="trial (default), subjects, or leaky (for contrast only)")
    parser.add_argument("--fold", type=int, default=0, help="test fold, 0-based (default 0)")
    parser.add_argument("--folds", type=int, default=None,
                        help="number of folds (default 10; subjects: min(10, n_subjects))")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs (default 30)")
    parser.add_argument("--patience", type=int, default=8, help="early-stopping patience (default 8)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
    parser.add_argument("--out", required=True, help="output folder (metrics.json, checkpoints)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    from mkdbook.models import MODEL_NAMES

    parser = _Parser(
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

    train = commands.add_parser("train", help="train one network on one fold and test it")
    train.add_argument("--model", required=True, choices=MODEL_NAMES)
    _add_train_arguments(train)
    train.set_defaults(run=_train)

    from mkdbook.distill import add_distill_command
    from mkdbook.experiments import add_experiment_command

    add_distill_command(commands)
    add_experiment_command(commands)
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
