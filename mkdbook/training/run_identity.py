"""A run's identity: everything that decides its numbers.

Checkpoints, ``metrics.json`` files and cached results record it, so that a
folder is only ever resumed, or a result only ever reused, by the very run
that wrote it; a folder of another run is refused with one line naming what
differs, and nothing in it is overwritten.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path

from torch import nn

from mkdbook.data.fingerprint import fingerprint_data
from mkdbook.data.segments import SegmentSet
from mkdbook.splits import Split

__all__ = ["describe_network", "identity_differences", "refuse_other_result", "run_identity"]


def describe_network(model: nn.Module) -> dict:
    """What a network is, for a run's identity: its class and configuration.

    The configuration is given as it reads back from JSON (tuples become
    lists), so that an identity stored in ``metrics.json`` or a checkpoint
    compares equal to the same run's identity computed afresh.
    """
    config = getattr(model, "config", None)
    return {"class": type(model).__name__,
            "config": json.loads(json.dumps(asdict(config))) if is_dataclass(config) else None,
            "parameters": sum(p.numel() for p in model.parameters())}


def run_identity(model: nn.Module, data: SegmentSet, split: Split, target: str,
                 train: dict) -> dict:
    """Everything that decides a run's numbers: network, target, split, data and training settings.

    ``train`` is the training configuration's
    :meth:`~mkdbook.training.trainer.TrainConfig.identity`. Stored in every checkpoint
    and in ``metrics.json``; a checkpoint of another identity is never
    resumed (see :meth:`mkdbook.training.trainer.Trainer.fit`).
    """
    return {"model": describe_network(model), "target": target,
            "split": {"kind": split.kind, "fold": split.fold, "n_folds": split.n_folds, "seed": split.seed},
            "data": fingerprint_data(data), "train": train}


def identity_differences(stored: dict, current: dict) -> list[str]:
    """The top-level identity keys whose values differ (missing counts as different)."""
    return sorted(k for k in set(stored) | set(current) if stored.get(k) != current.get(k))


def refuse_other_result(path: Path, identity: dict) -> None:
    """Refuse to touch a folder whose result file ``path`` belongs to another run.

    A finished result of another run (``metrics.json``, written by the
    commands) must never be overwritten, even where no checkpoint says so.

    Raises
    ------
    ValueError
        Naming the file and what differs, or that it cannot be read.
    """
    if not path.exists():
        return
    try:
        stored = json.loads(path.read_text(encoding="utf-8")).get("identity") or {}
    except (OSError, ValueError, AttributeError):
        raise ValueError(f"{path}: holds a result that cannot be read; use a new output "
                         f"folder (nothing was overwritten)") from None
    differ = identity_differences(stored, identity)
    if differ:
        raise ValueError(f"{path}: holds the result of another run ({', '.join(differ)} differ); "
                         f"use a new output folder (nothing was overwritten)")
