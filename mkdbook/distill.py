"""The teaching phase of knowledge distillation: a fixed teacher, a student that learns.

Zhang & Lu (2025) train the EOG-only student on

.. math:: L_S = \\lambda_1 \\mathrm{CE}(y, f_S(x)) + \\lambda_2 \\mathrm{KL}(f_T(x) \\| f_S(x))
          + \\lambda_3 \\mathrm{MSE}(P(F_S), F_T)

(:func:`mkdbook.losses.student_loss`), with the teacher fixed. This module
holds that *teaching phase*, one batch (:func:`teaching_step`) and its fit
loop (:class:`Distiller`), and the fit loop of the paper's full method,
:class:`FeedbackDistiller`, which interleaves teaching steps with the
*feedback phase* of :mod:`mkdbook.feedback`, in which the teacher learns
from the student's progress.

The ablation variants V1 (Hinton KD: CE + KL) and V2 (the full :math:`L_S`)
are distillers that differ only in their loss weights
(:data:`mkdbook.losses.LOSS_PRESETS`); the FitNets baseline
(:mod:`mkdbook.baselines.fitnets`) runs a distiller as its second stage. The
appendix, *The method at a glance*, lists what the paper leaves open.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mkdbook.atomic import write_atomically
from mkdbook.data.segments import SegmentSet
from mkdbook.feedback import FeedbackConfig, feedback_phase, make_teacher_optimizer, teacher_forward
from mkdbook.losses import DistillationLossConfig, FeatureProjector, student_loss
from mkdbook.models import build_model
from mkdbook.models.outputs import ModelOutput
from mkdbook.results import MethodResult, teacher_outputs_dir
from mkdbook.splits import Split, with_quiz
from mkdbook.teacher_student import TeacherStudentTrainer
from mkdbook.train import Trainer, TrainResult

__all__ = ["FEEDBACK_OPTIONS", "LOSS_OPTIONS", "Distiller", "FeedbackDistiller", "distiller_options",
           "run_distillation", "run_feedback_distillation", "teaching_step"]

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
        teacher's stored outputs, :mod:`mkdbook.teacher_outputs`); the
        teacher is then not run.

    Returns
    -------
    dict of str to float
        :meth:`mkdbook.losses.LossTerms.as_dict` of this step's loss.
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

    A :class:`~mkdbook.teacher_student.TeacherStudentTrainer` whose training
    step is a teaching step on :math:`L_S` between the student's HDF features
    and the teacher's IMF features. Each epoch's history row also records the
    teacher's validation loss and accuracy and how often the two networks
    agree on validation segments; :attr:`teacher_before` and
    :attr:`teacher_after` score the teacher on the whole validation set, and
    :attr:`teacher_before_test` and :attr:`teacher_after_test` on the test
    set, before and after distillation (equal here: teaching never changes
    the teacher; :class:`FeedbackDistiller` does). The test scores are
    reported, never used for a decision.

    Parameters are those of :class:`~mkdbook.teacher_student.TeacherStudentTrainer`.

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
        The cell's options: fields of :class:`~mkdbook.losses.DistillationLossConfig`
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
    state = {"model": distiller.teacher.state_dict()}
    write_atomically(Path(out_dir) / "teacher_final.pt", lambda stream: torch.save(state, stream))
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


#: Options of a feedback-distillation cell besides the loss options (:data:`LOSS_OPTIONS`).
FEEDBACK_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(FeedbackConfig))


class FeedbackDistiller(Distiller):
    """Distillation with dynamic feedback: teaching steps, and a feedback phase every ``k`` of them.

    A :class:`Distiller` (its teaching steps, history and
    teacher scores) that follows every ``feedback.every``-th teaching step
    (:meth:`~mkdbook.feedback.FeedbackConfig.due`) with
    ``feedback.steps`` :func:`~mkdbook.feedback.feedback_phase` updates of the
    teacher. The teacher and its optimiser are saved and restored with every
    checkpoint, as is the log of teacher updates.

    Parameters
    ----------
    student, teacher, teacher_scaler, config, out_dir, **kwargs
        As for :class:`~mkdbook.teacher_student.TeacherStudentTrainer`.
    feedback : mkdbook.feedback.FeedbackConfig, default FeedbackConfig()

    Attributes
    ----------
    feedback_log : list of dict
        One row per teacher update: ``phase``, ``update``, ``step``,
        ``epoch``, ``seconds`` and the values :func:`feedback_phase` returns
        (both gradient norms, the teacher's quiz-batch CE, ...).
    feedback_rows : set of int
        Segments this process drew as feedback batches (for checking that
        they come from the declared source and never from test segments).

    Notes
    -----
    Which data. With ``feedback_on="quiz"`` (default) :meth:`fit` carves a
    quiz set out of the training trials (:func:`~mkdbook.splits.with_quiz`)
    unless the split has one. The teacher's updates use only the quiz set,
    validation only selects the student's checkpoint, and the student trains
    on the rest, held out from the quiz set as MetaDistil's is (a student
    fitted to the quiz trials would turn the quiz objective into a measure of
    memorisation). With ``feedback_on="validation"`` (the paper's literal
    protocol) the student trains on all training trials, and validation
    batches both train the teacher and select the student.

    Batches. The held-out batch of each update is :meth:`feedback_batch`;
    the training batch of a phase is that of the teaching step just taken,
    whose eval-mode teacher pass the phase reuses
    (:attr:`~mkdbook.feedback.FeedbackConfig.shares_teaching_pass`). Test
    segments are never read except to report scores.

    Student selection. The best-validation student is kept (as for every
    trainer); the teacher is kept as it is at the end of training, which is
    what :attr:`teacher_after` and :attr:`teacher_after_test` describe.
    """

    #: The feedback phases change the teacher: it runs on every training batch.
    teacher_fixed = False

    def __init__(self, student: nn.Module, teacher: nn.Module, *args: Any,
                 feedback: FeedbackConfig = FeedbackConfig(), **kwargs: Any) -> None:
        super().__init__(student, teacher, *args, **kwargs)
        self.feedback = feedback
        self.teacher_optimizer = make_teacher_optimizer(self.teacher, feedback)
        self.add_part("teacher", self.teacher)
        self.add_part("teacher_optimizer", self.teacher_optimizer)
        self.feedback_log: list[dict[str, float]] = []
        self.feedback_rows: set[int] = set()
        self._epoch, self._shared = 0, None

    def identity_extras(self) -> dict:
        """The distiller's identity and the feedback configuration (its data source included)."""
        return {**super().identity_extras(), "feedback": asdict(self.feedback)}

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """A teaching step; then a feedback phase when one is due."""
        logged = super().train_step(batch, y)
        if self.feedback.due(self.step):
            self._feedback(batch, y)
        return logged

    def teacher_output(self, batch: dict[str, Tensor]) -> ModelOutput:
        """The teacher's output on a training batch; before a feedback phase, its pilot's part kept with its graph."""
        if not (self.feedback.shares_teaching_pass and self.feedback.due(self.step + 1)):
            return super().teacher_output(batch)
        whole, self._shared = teacher_forward(self.teacher_input(), batch, self.feedback)
        return whole

    def feedback_source(self) -> np.ndarray:
        """The segments feedback batches come from (quiz or validation set), once :meth:`fit` runs."""
        _, split, _ = self._context
        return split.quiz if self.feedback.feedback_on == "quiz" else split.val

    def feedback_batch(self, update: int) -> tuple[dict[str, Tensor], Tensor]:
        """The held-out batch and labels of teacher update ``update`` (counted from 0).

        Batch ``update mod n`` of a permutation of :meth:`feedback_source`
        drawn from ``(seed, update // n)``, in batches of
        :attr:`FeedbackConfig.quiz_batch <mkdbook.feedback.FeedbackConfig>`
        segments, where ``n`` is the number of batches in the source: each
        segment is used once every ``n`` updates, and the batch depends on
        nothing but the update number, so a resumed run draws the same. The segments drawn are added to
        :attr:`feedback_rows`. Only valid while :meth:`fit` runs. Returns the
        segments' inputs, in this trainer's standardisation and on its device,
        and their labels.
        """
        data, _, target = self._context
        source = self.feedback_source()
        size = self.feedback.quiz_batch
        cycle, position = divmod(update, -(-len(source) // size))  # -(-a // b): batches in the source
        order = np.random.default_rng([self.config.seed, 0xFEED, cycle]).permutation(source)
        rows = np.sort(order[position * size:(position + 1) * size])
        self.feedback_rows.update(int(r) for r in rows)
        arrays = data.batch(rows, self.train_modalities)
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        return self._to_device(batch, torch.from_numpy(data.labels(target)[rows]))

    def _feedback(self, batch: dict[str, Tensor], y: Tensor) -> None:
        phase = (self.step - self.feedback.warmup_steps) // self.feedback.every
        shared, self._shared = self._shared, None  # valid for the first update only: it moves the teacher
        for update in range(1, self.feedback.steps + 1):
            began = time.perf_counter()
            quiz_batch, y_quiz = self.feedback_batch(len(self.feedback_log))
            values = feedback_phase(self.teacher_input(), self.model, self.projector, batch, y, quiz_batch, y_quiz,
                                    self.teacher_optimizer, self.loss_config, self.feedback,
                                    shared if update == 1 else None)
            self.feedback_log.append({"phase": phase, "update": update, "step": self.step, "epoch": self._epoch,
                                      **values, "seconds": time.perf_counter() - began})

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """The distiller's epoch, remembering the epoch number for the feedback log."""
        self._epoch = epoch
        return super().train_epoch(data, split, target, epoch)

    def extra_state(self) -> dict:
        """The distiller's state and the feedback log."""
        return {**super().extra_state(), "feedback_log": [dict(row) for row in self.feedback_log]}

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""
        super().load_extra_state(state)
        self.feedback_log = [dict(row) for row in state["feedback_log"]]

    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Distil with feedback phases (see :meth:`Distiller.fit`), on a quiz set carved from ``split`` by default.

        Raises
        ------
        ValueError
            If validation and test overlap, the quiz set overlaps any other
            part, or ``split`` has a quiz set while ``feedback_on="validation"``.
        """
        if np.intersect1d(split.val, split.test).size:
            raise ValueError(f"{split.describe()}: validation and test segments overlap; the feedback "
                             f"phase must never see test data")
        if self.feedback.feedback_on == "quiz":
            if not len(split.quiz):
                split = with_quiz(split, data, self.feedback.quiz_fraction)
            others = np.concatenate([split.train, split.val, split.test])
            if np.intersect1d(split.quiz, others).size:
                raise ValueError(f"{split.describe()}: the quiz set overlaps another part")
        elif len(split.quiz):
            raise ValueError(f"{split.describe()}: has a quiz set, but feedback_on='validation' would "
                             f"leave it unused; pass the split without one")
        self._epoch = 0
        return super().fit(data, split, target)

    def summary(self) -> dict:
        """The distiller's summary, the feedback configuration and log, and counts of feedback segments.

        The counts: ``feedback_rows_outside_source`` (quiz or validation set),
        ``feedback_rows_in_validation``, ``feedback_rows_in_test``.
        """
        used = np.fromiter(self.feedback_rows, dtype=np.int64)
        _, split, _ = self._context
        return {**super().summary(), "feedback": asdict(self.feedback), "feedback_log": self.feedback_log,
                "feedback_rows_outside_source": int((~np.isin(used, self.feedback_source())).sum()),
                "feedback_rows_in_validation": int(np.isin(used, split.val).sum()),
                "feedback_rows_in_test": int(np.isin(used, split.test).sum())}


def run_feedback_distillation(cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path,
                              **fixed: Any) -> MethodResult:
    """The paper's method on one cell: the full :math:`L_S` with feedback phases (a method's run function).

    The cell's options are fields of :class:`~mkdbook.losses.DistillationLossConfig`,
    of :class:`~mkdbook.feedback.FeedbackConfig` and ``student_<field>`` overrides
    of the student network; ``fixed`` are feedback settings that define a
    method (``student_term=False`` for the fine-tuning control) and that the
    cell cannot override. See :func:`run_distillation` for the files written;
    by default the student trains on the split's training trials minus a quiz
    set (:class:`FeedbackDistiller`).
    """
    loss, own, overrides = distiller_options(cell.method, cell.settings, "fusion", FEEDBACK_OPTIONS)
    if clash := sorted(set(own) & set(fixed)):
        raise ValueError(f"method {cell.method!r}: option(s) {clash} are fixed by the method")
    student = build_model("student", **data.model_inputs(), seed=cell.seed, **overrides)
    distiller = FeedbackDistiller(student, teacher.model, teacher.scaler, cell.train, out_dir,
                                  loss=loss, feedback=FeedbackConfig(**own, **fixed))
    return finish_distillation(distiller, distiller.fit(data, split, cell.target), out_dir)
