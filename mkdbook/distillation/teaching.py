"""The teaching phase of knowledge distillation: a fixed teacher, a student that learns.

Zhang & Lu (2025) train the EOG-only student on

.. math:: L_S = \\lambda_1 \\mathrm{CE}(y, f_S(x)) + \\lambda_2 \\mathrm{KL}(f_T(x) \\| f_S(x))
          + \\lambda_3 \\mathrm{MSE}(P(F_S), F_T)

(:func:`mkdbook.distillation.losses.student_loss`), with the teacher fixed. This module
holds that *teaching phase*, one batch (:func:`teaching_step`) and its fit
loop (:class:`Distiller`). The paper's full method interleaves these
teaching steps with a *feedback phase*, in which the teacher learns from the
student's progress: :mod:`mkdbook.distillation.feedback` holds that phase and its
fit loop, :class:`~mkdbook.distillation.feedback.FeedbackDistiller`, a subclass of
:class:`Distiller`.

The ablation variants V1 (Hinton KD: CE + KL) and V2 (the full :math:`L_S`)
are distillers that differ only in their loss weights
(:data:`mkdbook.distillation.losses.LOSS_PRESETS`); the FitNets baseline
(:mod:`mkdbook.distillation.baselines.fitnets`) runs a distiller as its second stage. The book's
appendix, *The method at a glance*, lists what the paper leaves open and
what we chose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector, student_loss
from mkdbook.distillation.teacher_outputs import teacher_outputs_dir
from mkdbook.distillation.teacher_student import TeacherStudentTrainer
from mkdbook.models import build_model
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.checkpoints import save_checkpoint
from mkdbook.training.runs import MethodResult
from mkdbook.training.trainer import Trainer, TrainResult

__all__ = [
    "LOSS_OPTIONS",
    "Distiller",
    "distiller_options",
    "finish_distillation",
    "run_distillation",
    "teaching_step",
]

#: Options of a distillation cell, besides ``student_<field>`` overrides of the student network.
LOSS_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(DistillationLossConfig))


def teaching_step(
    student: nn.Module,
    teacher: nn.Module,
    projector: FeatureProjector | None,
    batch: Mapping[str, Tensor],
    y: Tensor,
    optimizer: torch.optim.Optimizer,
    loss_config: DistillationLossConfig,
    teacher_out: ModelOutput | None = None,
) -> dict[str, float]:
    """One optimiser step of the student (and projector) on :math:`L_S`, teacher fixed.

    Parameters
    ----------
    student : nn.Module
        EOG-only network; runs in the mode the caller left it in.
    teacher : nn.Module
        EEG+EOG network; run in eval mode without gradient (its mode is
        restored afterwards), so it is left exactly as it was.
    projector : FeatureProjector or None
        Student-side regressor for the feature term; its parameters must be
        in ``optimizer`` to be learned. ``None`` when ``loss_config.mse == 0``.
    batch : Mapping of str to Tensor
        Training inputs keyed by modality (``"eeg"``, ``"eog"``).
    y : Tensor of int64, shape (batch,)
        Labels.
    optimizer : torch.optim.Optimizer
        Over the student's (and projector's) parameters; Adam in the paper.
    loss_config : DistillationLossConfig
        Weights and temperature of :math:`L_S`.
    teacher_out : ModelOutput, optional
        The teacher's output on this batch when it is already known (a fixed
        teacher's stored outputs, :mod:`mkdbook.distillation.teacher_outputs`); the
        teacher is then not run.

    Returns
    -------
    dict of str to float
        :meth:`mkdbook.distillation.losses.LossTerms.as_dict` of this step's loss.
    """
    if teacher_out is None:
        was_training = teacher.training
        teacher.eval()
        try:
            with torch.no_grad():
                teacher_out = teacher(batch)
        finally:
            teacher.train(was_training)
    terms = student_loss(student(batch), teacher_out, y, projector, loss_config)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return terms.as_dict()


class Distiller(TeacherStudentTrainer):
    """Distil a trained teacher into a student (the teaching phase alone).

    A :class:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer` whose training
    step is a teaching step on :math:`L_S` between the student's HDF features
    and the teacher's IMF features. Each epoch's history row also records the
    teacher's validation loss and accuracy and how often the two networks
    agree on validation segments; :attr:`teacher_before` and
    :attr:`teacher_after` score the teacher on the whole validation set, and
    :attr:`teacher_before_test` and :attr:`teacher_after_test` on the test
    set, before and after distillation (equal here: teaching never changes
    the teacher; :class:`FeedbackDistiller` does). The test scores are
    reported, never used for a decision.

    Parameters are those of :class:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer`.

    Attributes
    ----------
    step : int
        Teaching steps taken.
    teacher_before, teacher_after : dict
        The teacher's ``loss``, ``accuracy``, ``f1``, ``balanced_accuracy``
        and ``auc`` on the validation set.
    teacher_before_test, teacher_after_test : dict
        The same on the test set.
    used_split : Split or None
        The split :meth:`fit` trained on: the one given, or with a quiz set
        (:class:`FeedbackDistiller`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.step = 0
        self.teacher_before: dict[str, float] = {}
        self.teacher_after: dict[str, float] = {}
        self.teacher_before_test: dict[str, float] = {}
        self.teacher_after_test: dict[str, float] = {}
        self.used_split: Split | None = None
        self._context: tuple[SegmentSet, Split, str] | None = None

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """A teaching step (:meth:`get_loss` is :math:`L_S`); counts steps."""
        logged = super().train_step(batch, y)
        self.step += 1
        return logged

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """The base epoch, the teacher's validation scores and its agreement with the student.

        Adds ``teacher_val_loss``, ``teacher_val_accuracy`` and ``agreement``
        (fraction of validation segments on which student and teacher predict
        the same class) to the epoch's history row.
        """
        row = super().train_epoch(data, split, target, epoch)
        teacher = self.teacher_scores(data, split.val, target)
        student, _ = self.predict(data, split.val, target)
        row.update(teacher_val_loss=teacher.loss, teacher_val_accuracy=teacher.accuracy,
                   agreement=float(np.mean(student.argmax(1) == teacher.predictions)))
        return row

    def extra_state(self) -> dict:
        """The step counter and the teacher's initial scores."""
        return {"step": self.step, "teacher_before": dict(self.teacher_before),
                "teacher_before_test": dict(self.teacher_before_test)}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""
        self.step = int(state["step"])
        self.teacher_before = dict(state["teacher_before"])
        self.teacher_before_test = dict(state["teacher_before_test"])

    def _teacher_summary(self, data: SegmentSet, index: np.ndarray, target: str) -> dict[str, float]:
        scores = self.teacher_scores(data, index, target)
        return {"loss": scores.loss, "accuracy": scores.accuracy, "f1": scores.f1,
                "balanced_accuracy": scores.balanced_accuracy, "auc": scores.auc}

    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Distil (see :meth:`Trainer.fit`), scoring the teacher on validation and test before and after."""
        self._context = (data, split, target)
        self.used_split = split
        self.teacher_before = self._teacher_summary(data, split.val, target)
        self.teacher_before_test = self._teacher_summary(data, split.test, target)
        result = super().fit(data, split, target)  # a resumed run restores the teacher's first scores
        self.teacher_after = self._teacher_summary(data, split.val, target)
        self.teacher_after_test = self._teacher_summary(data, split.test, target)
        return result

    def summary(self) -> dict:
        """JSON-able account of the distillation: loss, teaching steps, teacher before/after."""
        return {"identity": self.identity, "loss": asdict(self.loss_config), "feedback": None,
                "teaching_steps": self.step,
                "teacher_before": self.teacher_before, "teacher_after": self.teacher_after,
                "teacher_before_test": self.teacher_before_test, "teacher_after_test": self.teacher_after_test,
                "feedback_log": []}


def distiller_options(method: str, settings: Mapping[str, Any], preset: str,
                      own: tuple[str, ...] = ()) -> tuple[DistillationLossConfig, dict, dict]:
    """Split a distillation cell's settings into its loss, its own options and student overrides.

    Parameters
    ----------
    method : str
        The method's name, for messages.
    settings : mapping
        The cell's options: fields of :class:`~mkdbook.distillation.losses.DistillationLossConfig`
        (:data:`LOSS_OPTIONS`), the names in ``own``, and ``student_<field>``
        overrides of the student network.
    preset : str
        The loss preset the options modify.
    own : tuple of str
        Further option names the method understands (the feedback settings).

    Returns
    -------
    tuple of DistillationLossConfig, dict, dict
        The loss, the settings named in ``own``, the student's overrides.

    Raises
    ------
    ValueError
        If an option is none of these.
    """
    allowed = set(LOSS_OPTIONS) | set(own)
    unknown = sorted(k for k in settings if k not in allowed and not k.startswith("student_"))
    if unknown:
        raise ValueError(f"method {method!r}: unknown option(s) {unknown}; expected any of "
                         f"{sorted(allowed)} or student_<model field>")
    loss = replace(DistillationLossConfig.preset(preset), **{k: settings[k] for k in LOSS_OPTIONS if k in settings})
    student = {k[len("student_"):]: v for k, v in settings.items() if k.startswith("student_")}
    return loss, {k: settings[k] for k in own if k in settings}, student


def finish_distillation(distiller: Distiller, result: TrainResult, out_dir: Path) -> MethodResult:
    """Save ``scaler.pt`` and the final teacher; wrap the result and the split used for the cache."""
    distiller.save_scaler()
    save_checkpoint(Path(out_dir) / "teacher_final.pt", {"model": distiller.teacher.state_dict()})
    return MethodResult(result, extra=distiller.summary(), split=distiller.used_split)


def run_distillation(cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path, *,
                     preset: str) -> MethodResult:
    """Distil a cell's teacher into a fresh student with one loss preset (a method's run function).

    The student is :func:`~mkdbook.models.build_model` ``("student")``,
    seeded by the cell, with the cell's ``student_<field>`` options as
    configuration overrides; ``out_dir`` receives the resumable checkpoints,
    ``scaler.pt`` (the student's standardisation) and ``teacher_final.pt``.
    """
    loss, _, overrides = distiller_options(cell.method, cell.settings, preset)
    student = build_model("student", **data.model_inputs(), seed=cell.seed, **overrides)
    distiller = Distiller(student, teacher.model, teacher.scaler, cell.train, out_dir, loss=loss,
                          teacher_outputs_folder=teacher_outputs_dir(cell))
    return finish_distillation(distiller, distiller.fit(data, split, cell.target), out_dir)
