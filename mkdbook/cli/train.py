"""``mkdbook train DATA_DIR --model NAME --target T --out DIR``: one network on one fold."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from mkdbook.cli.common import add_train_arguments, n_folds, output_folder, train_config

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "train"
HELP = "train one network on one fold and test it"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` to the sub-commands."""
    from mkdbook.models import MODEL_NAMES

    parser = subparsers.add_parser(NAME, help=HELP)
    parser.add_argument("--model", required=True, choices=MODEL_NAMES)
    add_train_arguments(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, write ``metrics.json`` and the checkpoints into ``--out`` (resumable)."""
    from mkdbook.data import load_segments
    from mkdbook.models import build_model
    from mkdbook.splits import check_disjoint, make_split
    from mkdbook.training.trainer import Trainer, write_metrics

    config = train_config(args, progress=not args.quiet)
    config.resolved_device()  # a missing CUDA device is reported before any work
    out = output_folder(args.out)
    data = load_segments(args.data_dir, reader=args.format, progress=not args.quiet)
    split = make_split(data, args.split, fold=args.fold, n_folds=n_folds(args, len(data.subjects)),
                       seed=args.seed)
    model = build_model(args.model, **data.model_inputs(), seed=args.seed)
    trainer = Trainer(model, config, out)
    result = trainer.fit(data, split, args.target)
    trainer.save_scaler()  # scaler.pt: the input standardisation, which mkdbook export folds in
    check_disjoint(split, data)
    write_metrics(result, split, {"model": args.model, "target": args.target, "data": data.source,
                                  "train": asdict(config)}, out / "metrics.json", identity=trainer.identity,
                  trials=split.trials(data))
    print(f"{args.model} on {args.target}, {split.describe()}")
    print(f"test accuracy {result.test.accuracy:.3f}, macro-F1 {result.test.f1:.3f} "
          f"(best epoch {result.best_epoch}); wrote {out / 'metrics.json'}")
    return 0
