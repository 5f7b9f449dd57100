"""``mkdbook distill DATA_DIR --target T --variant V --out DIR``: distil the fold's teacher into a student."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

from mkdbook.cli.common import add_train_arguments, n_folds, output_folder, positive_float, positive_int, train_config

#: The distillation methods this command runs (rows of :data:`mkdbook.experiments.methods.METHODS`).
VARIANTS: tuple[str, ...] = ("hinton", "fitnets", "fusion", "fusion+finetune", "fusion+feedback")
#: The variants that update the teacher, and so take the feedback options.
_FEEDBACK_VARIANTS: tuple[str, ...] = ("fusion+finetune", "fusion+feedback")
#: The feedback options, applicable to those variants only.
_FEEDBACK_ARGUMENTS: tuple[str, ...] = ("every", "alpha", "teacher_lr", "feedback_on")

#: The sub-command, and its line in ``mkdbook --help`` (which lists it without importing what it runs).
NAME = "distill"
HELP = "distil the fold's teacher into an EOG-only student"


def add_command(subparsers: argparse._SubParsersAction) -> None:
    """Add ``distill`` to the sub-commands.

    The teacher of the fold is taken from the results cache of
    :mod:`mkdbook.experiments.grids` (trained there first when missing, with the
    same training arguments); the student is distilled in ``--out``
    (resumable) and ``metrics.json`` there holds the student's scores as
    ``mkdbook train`` writes them, plus ``teacher_before``/``teacher_after``
    (validation scores), ``teacher_before_test``/``teacher_after_test`` and
    ``feedback_log`` (per teacher update: both gradient norms, the teacher's
    quiz-batch CE, the time taken). Its ``trials`` list the quiz trials too
    when the variant carved a quiz set from the training trials.
    """
    from mkdbook.distillation.feedback import FEEDBACK_SOURCES, FeedbackConfig

    defaults = FeedbackConfig()
    parser = subparsers.add_parser(NAME, help=HELP)
    add_train_arguments(parser)
    parser.add_argument("--variant", default="fusion+feedback", choices=VARIANTS,
                        help="hinton (V1), fitnets, fusion (V2), fusion+finetune (V3's control: the "
                             "teacher fine-tuned on the quiz set by its own CE) or fusion+feedback (V3, default)")
    parser.add_argument("--every", type=positive_int, default=None, metavar="K",
                        help=f"teaching steps between feedback phases (default {defaults.every})")
    parser.add_argument("--alpha", type=positive_float, default=None,
                        help=f"pilot step size (default {defaults.alpha:g})")
    parser.add_argument("--teacher-lr", type=positive_float, default=None,
                        help=f"teacher's Adam rate (default {defaults.teacher_lr:g})")
    parser.add_argument("--feedback-on", default=None, choices=FEEDBACK_SOURCES,
                        help=f"the teacher's held-out data: a quiz set carved from the training trials "
                             f"or the validation set, the paper's literal protocol (default "
                             f"{defaults.feedback_on})")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train (or reuse) the teacher, distil, write ``metrics.json`` into ``--out``."""
    from mkdbook.data import load_segments
    from mkdbook.data.fingerprint import fingerprint_data
    from mkdbook.experiments.grids import trained_network
    from mkdbook.experiments.methods import method_named
    from mkdbook.training.runs import Cell, freeze_options
    from mkdbook.splits import check_disjoint, make_split
    from mkdbook.training.trainer import write_metrics

    settings = {name: getattr(args, name) for name in _FEEDBACK_ARGUMENTS if getattr(args, name) is not None}
    if settings and args.variant not in _FEEDBACK_VARIANTS:
        raise ValueError(f"--every, --alpha, --teacher-lr and --feedback-on apply to --variant "
                         f"{' or '.join(_FEEDBACK_VARIANTS)}, not to {args.variant!r}")
    train = train_config(args, progress=False)
    train.resolved_device()  # a missing CUDA device is reported before any work
    out = output_folder(args.out)
    data = load_segments(args.data_dir, reader=args.format, progress=not args.quiet)
    folds = n_folds(args, len(data.subjects))
    split = make_split(data, args.split, fold=args.fold, n_folds=folds, seed=args.seed)
    identity = dict(split_kind=args.split, n_folds=folds, train=train, segments=data.config,
                    data_source=data.source, data_fingerprint=fingerprint_data(data))
    teacher_cell = Cell(method_named(args.variant).teacher, args.target, args.fold, args.seed, **identity)
    cell = Cell(args.variant, args.target, args.fold, args.seed, **identity,
                options=freeze_options(settings), teacher=teacher_cell)
    student_train = replace(train, progress=not args.quiet)
    config = {"method": args.variant, "target": args.target, "data": data.source,
              "train": asdict(student_train), "teacher_cell": asdict(teacher_cell)}
    # Another run's folder is refused before the teacher trains, not a minute later.
    refuse_other_distillation(out, config, {"target": args.target, "data": identity["data_fingerprint"],
                                            "split": {"kind": split.kind, "fold": split.fold,
                                                      "n_folds": split.n_folds, "seed": split.seed}})
    print(f"teacher: {teacher_cell.describe()} (from the results cache, trained if missing)")
    teacher = trained_network(teacher_cell, data, split)
    output = method_named(args.variant).run(replace(cell, train=student_train), data, split, teacher, out)
    used = output.split or split
    trials = used.trials(data)
    check_disjoint(used, data)
    write_metrics(output.train, used, config, out / "metrics.json", extra=output.extra,
                  identity=output.extra["identity"], trials=trials)
    extra = output.extra
    print(f"{args.variant} on {args.target}, {used.describe()}")
    print(f"student test accuracy {output.train.test.accuracy:.3f}, macro-F1 {output.train.test.f1:.3f} "
          f"(best epoch {output.train.best_epoch})")
    print(f"teacher validation accuracy {extra['teacher_before']['accuracy']:.3f} before, "
          f"{extra['teacher_after']['accuracy']:.3f} after; test accuracy "
          f"{extra['teacher_before_test']['accuracy']:.3f} before, {extra['teacher_after_test']['accuracy']:.3f} "
          f"after ({len(extra['feedback_log'])} teacher updates)")
    print(f"wrote {out / 'metrics.json'}")
    return 0


def _without_display(config: dict) -> dict:
    """``config`` as JSON reads it back, less the training settings that only change the display."""
    from mkdbook.training.trainer import DISPLAY_FIELDS

    plain = json.loads(json.dumps(config, default=float))  # as write_metrics writes it
    if isinstance(plain.get("train"), dict):
        plain["train"] = {k: v for k, v in plain["train"].items() if k not in DISPLAY_FIELDS}
    return plain


def refuse_other_distillation(out: Path, config: dict, identity: dict) -> None:
    """Refuse ``out`` when it holds the result or the checkpoint of another distillation, before any training.

    ``metrics.json`` must hold the same ``config`` (method, target, data,
    training settings, teacher cell); ``last.pt`` must record the same
    target, split and data (what decides the rest, the student trainer
    checks when it resumes).

    Parameters
    ----------
    out : Path
        The output folder.
    config : dict
        The ``config`` this run writes into ``metrics.json``.
    identity : dict
        ``target``, ``split`` and ``data`` (the fingerprint) of this run's identity.

    Raises
    ------
    ValueError
        Naming the file and what differs.
    """
    from mkdbook.training.checkpoints import DamagedCheckpointError, read_checkpoint

    metrics = out / "metrics.json"
    if metrics.is_file():
        try:
            stored = json.loads(metrics.read_text(encoding="utf-8")).get("config") or {}
        except (OSError, ValueError, AttributeError):
            raise ValueError(f"{metrics}: holds a result that cannot be read; use a new output folder "
                             f"(nothing was overwritten)") from None
        wanted = _without_display(config)
        differ = sorted(k for k in set(wanted) | set(stored) if _without_display(stored).get(k) != wanted.get(k))
        if differ:
            raise ValueError(f"{metrics}: holds the result of another run ({', '.join(differ)} differ); "
                             f"use a new output folder (nothing was overwritten)")
    try:
        stored = read_checkpoint(out / "last.pt").get("identity") or {}
    except (FileNotFoundError, DamagedCheckpointError):
        return  # the student trainer decides what to do with a damaged checkpoint
    differ = sorted(k for k in identity if stored.get(k) != identity[k])
    if differ:
        raise ValueError(f"{out / 'last.pt'}: written by another run ({', '.join(differ)} differ); "
                         f"use a new output folder or delete this one")
