"""A fixed teacher's outputs on the training segments, computed once and looked up by segment.

While a student learns from a teacher that does not change (every method
but the feedback variant), the teacher's logits and features on a training
segment are the same at every epoch: the teacher runs in evaluation mode
(no dropout, no drop-path; its batch norms use their running statistics,
not the batch's), without gradient, and segments are not augmented.
So :func:`teacher_outputs` computes them once, before training, and a
teaching step looks them up (:meth:`TeacherOutputs.lookup`) instead of
running the teacher: it then costs a student step plus the loss.

Exactness. In evaluation mode a segment's output depends on that segment
alone; only the batch it is computed in can change the order of the sums
inside the matrix products, so stored and on-the-fly outputs agree to
float32 rounding. They are stored as float32, the dtype the teacher
computes in.

Storage. Given a folder (the teacher's own cell folder, shared by every
student of the fold), the outputs are written there as ``<key>.npz``, where
the key (:func:`outputs_key`) hashes everything they depend on: the
teacher's class, configuration and weights, its input standardisation
(whatever the scaler's state holds), the data's content fingerprint, the
segment indices and the feature kept. A changed teacher, split or
standardisation thus gives a new file, never a stale one.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from mkdbook.core.atomic import write_atomically
from mkdbook.core.keys import json_key, value_digest
from mkdbook.core.paths import results_dir
from mkdbook.data.fingerprint import fingerprint_data
from mkdbook.data.segments import SegmentSet
from mkdbook.models.outputs import ModelOutput
from mkdbook.training.run_identity import describe_network
from mkdbook.training.runs import Cell, cell_key
from mkdbook.training.standardisation import ChannelScaler

__all__ = ["TeacherOutputs", "outputs_key", "teacher_outputs", "teacher_outputs_dir"]


@dataclass(frozen=True)
class TeacherOutputs:
    """The teacher's logits and one of its features on a set of segments.

    Attributes
    ----------
    index : ndarray of int64, shape (n,)
        The segments, sorted.
    logits : Tensor, shape (n, n_classes), float32
    feature : str
        Which output ``features`` holds (:func:`~mkdbook.distillation.teacher_student.feature_of`:
        ``"features"`` or a tap name).
    features : Tensor, shape (n, width), float32
    key : str
        :func:`outputs_key` of what they were computed from.
    """

    index: np.ndarray
    logits: Tensor
    feature: str
    features: Tensor
    key: str

    def to(self, device: torch.device | str) -> TeacherOutputs:
        """The same outputs on ``device``."""
        return TeacherOutputs(self.index, self.logits.to(device), self.feature, self.features.to(device), self.key)

    def lookup(self, rows: np.ndarray) -> ModelOutput:
        """The teacher's output on the segments ``rows``, in that order, as the teacher returns it.

        Raises
        ------
        KeyError
            If a segment of ``rows`` is not among :attr:`index`.
        """
        rows = np.asarray(rows)
        where = np.minimum(np.searchsorted(self.index, rows), len(self.index) - 1)
        missing = rows[self.index[where] != rows]
        if missing.size:
            raise KeyError(f"segments {missing[:5].tolist()} have no stored teacher output")
        where = torch.from_numpy(where).to(self.logits.device)
        features = self.features.index_select(0, where)
        if self.feature == "features":
            return ModelOutput(self.logits.index_select(0, where), features)
        return ModelOutput(self.logits.index_select(0, where), None, {self.feature: features})


def outputs_key(teacher: nn.Module, scaler: ChannelScaler, data: SegmentSet, index: np.ndarray,
                feature: str) -> str:
    """What stored teacher outputs depend on, hashed: teacher, standardisation, data, segments, feature.

    The teacher counts by its class, configuration and every tensor of its
    ``state_dict`` (weights and buffers); the standardisation by its type and
    every value of its ``state_dict``, so a scaler of another kind (per
    subject, say) is keyed by what it holds, not by what this module assumes.
    """
    parts = {"network": describe_network(teacher), "weights": value_digest(teacher.state_dict()),
             "standardisation": [type(scaler).__name__, value_digest(scaler.state_dict())],
             "data": fingerprint_data(data), "segments": value_digest(np.sort(np.asarray(index, dtype=np.int64))),
             "feature": feature}
    return json_key(parts)


@torch.no_grad()
def compute_teacher_outputs(teacher: nn.Module, scaler: ChannelScaler, data: SegmentSet, index: np.ndarray,
                            feature: str, *, batch_size: int = 512,
                            device: torch.device | str = "cpu") -> TeacherOutputs:
    """Run the teacher once over ``index`` in evaluation mode; see :func:`teacher_outputs`."""
    index = np.sort(np.asarray(index, dtype=np.int64))
    key = outputs_key(teacher, scaler, data, index, feature)
    was_training = teacher.training
    teacher.eval()
    try:
        # Fixed batches of sorted segments: the stored values never depend on who computed them first.
        logits, features = [], []
        for start in range(0, len(index), batch_size):
            arrays = data.batch(index[start:start + batch_size], tuple(teacher.modalities))
            out = teacher(scaler({k: torch.from_numpy(v).to(device) for k, v in arrays.items()}))
            logits.append(out.logits.float().cpu())
            features.append(_feature(out, feature).float().cpu())
    finally:
        teacher.train(was_training)
    return TeacherOutputs(index, torch.cat(logits), feature, torch.cat(features), key)


def _feature(output: ModelOutput, name: str) -> Tensor:
    # As mkdbook.distillation.teacher_student.feature_of reads it (that module builds on this one).
    chosen = output.features if name == "features" else output.taps.get(name)
    if chosen is None:
        raise ValueError(f"the teacher has no feature {name!r}; taps: {sorted(output.taps)}")
    return chosen


def _load(path: Path, key: str) -> TeacherOutputs | None:
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                raise ValueError("the file holds outputs of another key")
            return TeacherOutputs(stored["index"], torch.from_numpy(stored["logits"]), str(stored["feature"]),
                                  torch.from_numpy(stored["features"]), key)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        warnings.warn(f"stored teacher outputs {path} are unreadable ({err}); computing them again",
                      stacklevel=3)
        return None


def teacher_outputs(teacher: nn.Module, scaler: ChannelScaler, data: SegmentSet, index: np.ndarray,
                    feature: str = "features", *, folder: Path | str | None = None, batch_size: int = 512,
                    device: torch.device | str = "cpu") -> TeacherOutputs:
    """The teacher's logits and feature ``feature`` on the segments ``index``, computed once.

    Parameters
    ----------
    teacher : nn.Module
        Run in evaluation mode and without gradient; its mode is restored.
    scaler : ChannelScaler
        The standardisation the teacher was trained with; its inputs are
        ``scaler(raw segments)``, as when it is evaluated.
    data : SegmentSet
    index : ndarray of int
        The segments (a fold's training segments).
    feature : str, default "features"
        The feature the loss compares (``"features"`` or a tap name).
    folder : path-like, optional
        Where outputs are stored and shared (the teacher's cell folder). A
        file of the same :func:`outputs_key` there is read instead of
        running the teacher; otherwise the outputs are computed and written.
        Without a folder they are computed and kept in memory only.
    batch_size : int, default 512
        Segments per forward pass.
    device : torch.device or str, default "cpu"
        Where the teacher runs; the outputs returned live there too.

    Returns
    -------
    TeacherOutputs
        float32, on ``device``.
    """
    if folder is not None:
        path = Path(folder) / f"{outputs_key(teacher, scaler, data, index, feature)}.npz"
        stored = _load(path, path.stem) if path.is_file() else None
        if stored is not None:
            return stored.to(device)
    outputs = compute_teacher_outputs(teacher, scaler, data, index, feature, batch_size=batch_size, device=device)
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        arrays = {"index": outputs.index, "logits": outputs.logits.numpy(), "features": outputs.features.numpy(),
                  "feature": np.str_(feature), "key": np.str_(outputs.key)}
        write_atomically(path, lambda stream: np.savez(stream, **arrays))
    return outputs.to(device)


def teacher_outputs_dir(cell: Cell) -> Path | None:
    """Where the students of a cell's teacher share its stored outputs (this module).

    ``teacher_outputs/`` in the teacher's cell folder; ``None`` for a cell without a teacher.
    """
    return results_dir() / cell_key(cell.teacher) / "teacher_outputs" if cell.teacher is not None else None
