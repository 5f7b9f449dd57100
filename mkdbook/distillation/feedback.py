"""Dynamic-feedback distillation: the feedback phase, in which the teacher learns to teach, and its fit loop.

Zhang & Lu (2025) alternate two phases:

Teaching phase (:func:`mkdbook.distillation.teaching.teaching_step`)
    The teacher is fixed; the student (and the feature projector that belongs
    to it) takes an optimiser step on :math:`L_S` (:func:`mkdbook.distillation.losses.student_loss`).

Feedback phase (:func:`feedback_phase`, this module), every ``k`` teaching steps
    The student is fixed. A temporary copy of it takes one differentiable SGD
    step on :math:`L_S`,

    .. math:: \\theta_{ts} = \\theta_s - \\alpha \\, \\nabla_{\\theta_s} L_S(\\theta_s, \\theta_T),

    and the teacher is updated on a held-out *quiz* batch by

    .. math:: \\min_{\\theta_T} \\; \\mathrm{CE}(y_Q, f_S(x_Q; \\theta_{ts}))
              + \\lambda_t \\, \\mathrm{CE}(y_Q, f_T(x_Q; \\theta_T)).

    The first term reaches :math:`\\theta_T` only through :math:`\\theta_{ts}`:
    its gradient is
    :math:`-\\alpha \\, (\\partial^2 L_S / \\partial\\theta_T \\partial\\theta_s)
    \\, \\nabla_{\\theta_{ts}} \\mathrm{CE}`, a second derivative, obtained by
    differentiating through the pilot step (``create_graph=True``).

This is the pilot update of MetaDistil (Zhou et al., 2022), which uses the
student's quiz loss alone; Zhang & Lu add the teacher's own
cross-entropy so that the teacher stays a good classifier while it learns to
teach. The paper takes the held-out batches from the validation set; by
default this project takes them from a quiz set carved out of the training
trials (:func:`mkdbook.splits.with_quiz`), as MetaDistil holds its quiz set
out of the training data, so that validation labels only select checkpoints
(``FeedbackConfig.feedback_on="validation"`` keeps the paper's protocol).
SFTN (Park et al., 2021) pursues the same aim, a teacher that is easy
to learn from, by training the teacher jointly with student branches before
distillation instead of during it.

:func:`feedback_phase` is batch-level; :class:`FeedbackDistiller` is the fit
loop that schedules it (:meth:`FeedbackConfig.due`) between teaching steps,
and :func:`run_feedback_distillation` runs a cell of the method. The phase
and its loop live together, so that the chapter on feedback reads one module.

Design decisions (the paper is silent on each)
----------------------------------------------
Teacher mode
    Eval mode by default (``FeedbackConfig.teacher_train_mode=False``): the
    pilot step sees the teacher outputs that teaching steps show the student,
    the hypergradient is deterministic, and quiz batches never enter the
    teacher's batch-norm statistics. ``teacher_train_mode=True`` runs it with
    dropout (its training regime), a stochastic objective.
Projector
    Held fixed in the pilot step, which is exact: :math:`\\theta_{ts}` depends
    on the projector only through the gradient at its current value, and the
    student's quiz logits do not use it. It still carries the teacher's
    features into :math:`L_S`, so the feature term feeds back to the teacher.
Student mode and buffers
    The temporary student runs in the real student's mode (train mode during
    fitting), with :func:`torch.func.functional_call` on detached copies of
    its parameters and clones of its buffers: the real student's parameters,
    ``.grad``, buffers and optimiser state are never touched.
Pilot segments
    Every second segment of the training batch (``FeedbackConfig.pilot_stride``),
    which halves the pilot's cost; its eval-mode teacher pass is shared
    with the teaching step before it (:func:`teacher_forward`).

Works cited:

* Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion Recognition," Brain
  Sciences 15(7):707, 2025. doi:10.3390/brainsci15070707
* W. Zhou, C. Xu and J. McAuley, "BERT Learns to Teach: Knowledge Distillation with Meta
  Learning," ACL 2022.
* D. Y. Park, M.-H. Cha, C. Jeong, D. Kim and B. Han, "Learning Student-Friendly Teacher
  Networks for Knowledge Distillation," NeurIPS 2021.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn.attention import SDPBackend, sdpa_kernel

from mkdbook.core.checks import check_int, check_number, check_option
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector, LossTerms, cross_entropy, student_loss
from mkdbook.distillation.teaching import Distiller, distiller_options, finish_distillation
from mkdbook.models import build_model
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split, with_quiz
from mkdbook.training.runs import MethodResult
from mkdbook.training.trainer import Trainer, TrainResult, make_adam

__all__ = [
    "FEEDBACK_OPTIONS",
    "FEEDBACK_SOURCES",
    "FeedbackConfig",
    "FeedbackDistiller",
    "FeedbackObjective",
    "feedback_objective",
    "feedback_phase",
    "make_teacher_optimizer",
    "run_feedback_distillation",
    "teacher_forward",
]

Batch = Mapping[str, Tensor]


#: Where the feedback phase takes its held-out batches from (:attr:`FeedbackConfig.feedback_on`).
FEEDBACK_SOURCES: tuple[str, ...] = ("quiz", "validation")


@dataclass(frozen=True)
class FeedbackConfig:
    """How, how often and on which data the teacher is updated from the student's feedback.

    The paper states none of these values except ``teacher_weight``; the
    defaults are this project's choices.

    Attributes
    ----------
    every : int, default 10
        A feedback phase follows every ``every``-th teaching step (the paper's
        "set number of iterations"). A phase costs a few teaching steps, so
        ten keeps it a fraction of the run while the teacher moves often.
    alpha : float, default 1e-2
        Learning rate of the pilot SGD step. The feedback signal is
        :math:`\\alpha` times a second derivative, so a value near the
        student's effective step size matters more than matching its optimiser.
    teacher_weight : float, default 1.0
        :math:`\\lambda_t`, weight of the teacher's own quiz cross-entropy
        (the paper: 1). Zero gives MetaDistil's objective.
    teacher_lr : float, default 1e-4
        Learning rate of the teacher's Adam optimiser (:func:`make_teacher_optimizer`);
        small, because the pretrained teacher is to be adjusted, not retrained.
    warmup_steps : int, default 0
        Teaching steps before the first feedback phase is due.
    steps : int, default 1
        Teacher updates per feedback phase, each on the next held-out batch
        with a pilot step rebuilt from the updated teacher (MetaDistil and
        the paper: one).
    student_term : bool, default True
        Whether the teacher's objective includes the student's quiz loss
        after the pilot step. ``False`` fine-tunes the teacher on its own
        quiz cross-entropy alone, with no pilot step: the control that tells
        whether a gain comes from the student's signal or from the teacher
        seeing more labelled data (a first-order, detached pilot would give
        the same update: the student's loss reaches the teacher *only*
        through the second derivative).
    feedback_on : str, default "quiz"
        Where the held-out batches come from (:data:`FEEDBACK_SOURCES`):
        ``"quiz"``, a quiz set carved from each subject's training trials
        (:func:`mkdbook.splits.with_quiz`) that the student does not train
        on; or ``"validation"``, the paper's literal protocol, in which the
        labels that select the student's checkpoint also train the teacher.
    quiz_fraction : float, default 0.125
        Share of each subject's training trials carved out as the quiz set
        (``feedback_on="quiz"`` only), in (0, 1).
    teacher_train_mode : bool, default False
        Run the teacher in train mode (dropout on, batch-norm statistics
        updated) during the feedback phase instead of eval mode; see the
        module notes.
    pilot_stride : int, default 2
        The pilot step learns from every ``pilot_stride``-th segment of the
        training batch (:meth:`pilot_rows`; 1: all), which shrinks its cost
        and the teacher's backward pass there in proportion. To first order in
        ``alpha`` the objective is linear in the pilot's gradient, a mean over
        segments, so a sample estimates the same teacher gradient, noisier.
    quiz_batch : int, default 32
        Segments per held-out batch. The teacher's forward and backward pass
        on the quiz batch is the largest single cost of a phase (about a
        third of it at 64 segments); 32 halves it, and matches the 32 segments
        the pilot learns from at the default batch size and stride, so both
        terms of the objective are means over equally many segments. Every
        quiz segment is still used once per cycle through the quiz set
        (:meth:`FeedbackDistiller.feedback_batch`).
    """

    every: int = 10
    alpha: float = 1e-2
    teacher_weight: float = 1.0
    teacher_lr: float = 1e-4
    warmup_steps: int = 0
    steps: int = 1
    student_term: bool = True
    feedback_on: str = "quiz"
    quiz_fraction: float = 0.125
    teacher_train_mode: bool = False
    pilot_stride: int = 2
    quiz_batch: int = 32

    def __post_init__(self) -> None:
        check_int("every", self.every, 1)
        check_int("pilot_stride", self.pilot_stride, 1)
        check_int("quiz_batch", self.quiz_batch, 1)
        check_int("warmup_steps", self.warmup_steps, 0)
        check_int("steps", self.steps, 1)
        check_number("alpha", self.alpha, 0.0, strict=True)
        check_number("teacher_lr", self.teacher_lr, 0.0, strict=True)
        check_number("teacher_weight", self.teacher_weight, 0.0)
        check_option("feedback_on", self.feedback_on, FEEDBACK_SOURCES)
        if check_number("quiz_fraction", self.quiz_fraction, 0.0, strict=True) >= 1:
            raise ValueError(f"quiz_fraction must be a finite number in (0, 1), got {self.quiz_fraction!r}")
        for name in ("student_term", "teacher_train_mode"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not self.student_term and self.teacher_weight == 0:
            raise ValueError("student_term=False with teacher_weight=0 leaves the teacher nothing to "
                             "learn from; set one of them")

    @property
    def shares_teaching_pass(self) -> bool:
        """Whether the phase can reuse the teaching step's eval-mode teacher pass (:func:`teacher_forward`).

        It can unless ``teacher_train_mode`` asks for train mode or there is no pilot step.
        """
        return self.student_term and not self.teacher_train_mode

    def pilot_rows(self, batch: Batch) -> dict[str, Tensor]:
        """The segments of a training batch (rows of each tensor) that the pilot step learns from."""
        return {key: value[::self.pilot_stride] for key, value in batch.items()}

    def due(self, step: int) -> bool:
        """Whether a feedback phase follows teaching step number ``step`` (counted from 1).

        Feedback phases follow steps ``warmup_steps + every``,
        ``warmup_steps + 2 * every``, ...
        """
        past_warmup = step - self.warmup_steps
        return past_warmup > 0 and past_warmup % self.every == 0


def make_teacher_optimizer(teacher: nn.Module, config: FeedbackConfig) -> torch.optim.Adam:
    """Adam over the teacher's parameters at ``config.teacher_lr`` (the paper uses Adam throughout)."""
    return make_adam(teacher.parameters(), lr=config.teacher_lr)


@contextmanager
def _mode(module: nn.Module, training: bool) -> Iterator[None]:
    # Restore the caller's mode afterwards: the fit loop owns the modes, these
    # functions only borrow them.
    previous = module.training
    module.train(training)
    try:
        yield
    finally:
        module.train(previous)


def teacher_forward(teacher: nn.Module, batch: Batch, config: FeedbackConfig) -> tuple[ModelOutput, ModelOutput]:
    """The teacher's eval-mode pass on a training batch, shared by a teaching step and the phase after it.

    Returns the output on the whole batch, detached, for the teaching step,
    and that on the pilot's segments (:meth:`FeedbackConfig.pilot_rows`) with
    its graph, for :func:`feedback_phase` (``teacher_train``), which then does
    not run the teacher on the training batch. Each segment runs once; eval
    mode treats segments independently, so the first output is the pass on
    the whole batch (bit for bit on the CPUs tested).
    """
    chosen = torch.zeros(len(next(iter(batch.values()))), dtype=torch.bool)
    chosen[::config.pilot_stride] = True
    with _mode(teacher, False):
        with torch.enable_grad():
            pilot = teacher(config.pilot_rows(batch))
        with torch.no_grad():
            rest = teacher({k: v[~chosen.to(v.device)] for k, v in batch.items()}) if config.pilot_stride > 1 else pilot

    def merge(part: Tensor | None, other: Tensor | None) -> Tensor | None:
        if part is None or rest is pilot:
            return None if part is None else part.detach()
        whole = part.new_empty((len(chosen), *part.shape[1:]))
        whole[chosen.to(part.device)], whole[~chosen.to(part.device)] = part.detach(), other
        return whole

    return ModelOutput(merge(pilot.logits, rest.logits), merge(pilot.features, rest.features),
                       {name: merge(tap, rest.taps[name]) for name, tap in pilot.taps.items()}), pilot


@dataclass(frozen=True)
class FeedbackObjective:
    """The feedback-phase objective, split into its two paths to the teacher.

    Attributes
    ----------
    student_quiz_ce : Tensor or None
        :math:`\\mathrm{CE}(y_Q, f_S(x_Q; \\theta_{ts}))`; depends on the
        teacher through the pilot step. ``None`` without ``student_term``.
    teacher_quiz_ce : Tensor
        :math:`\\mathrm{CE}(y_Q, f_T(x_Q; \\theta_T))`, unweighted.
    teacher_weight : float
        :math:`\\lambda_t`.
    pilot : LossTerms or None
        :math:`L_S` of the pilot step on its segments; ``None`` without
        ``student_term``.
    """

    student_quiz_ce: Tensor | None
    teacher_quiz_ce: Tensor
    teacher_weight: float
    pilot: LossTerms | None

    @property
    def total(self) -> Tensor:
        """The objective the teacher minimises."""
        own = self.teacher_weight * self.teacher_quiz_ce
        return own if self.student_quiz_ce is None else self.student_quiz_ce + own


def feedback_objective(teacher: nn.Module, student: nn.Module, projector: FeatureProjector | None,
                       train_batch: Batch, y_train: Tensor, quiz_batch: Batch, y_quiz: Tensor,
                       loss_config: DistillationLossConfig, feedback_config: FeedbackConfig,
                       teacher_train: ModelOutput | None = None) -> FeedbackObjective:
    """Build the temporary student from the current teacher and evaluate the teacher's objective.

    Runs the teacher in the mode ``feedback_config.teacher_train_mode`` asks
    for (restoring its mode afterwards); the arguments are those of
    :func:`feedback_phase`. Exposed separately so that the objective can be
    evaluated (for example by finite differences) without updating anything.
    A pass ``teacher_train`` from :func:`teacher_forward` on ``train_batch``
    (its pilot's output) replaces the teacher's pass there.

    Returns
    -------
    FeedbackObjective
        Both terms with their graphs to the teacher's parameters.
    """
    pilot_batch, y_pilot = feedback_config.pilot_rows(train_batch), y_train[::feedback_config.pilot_stride]
    if teacher_train is not None and not (feedback_config.shares_teaching_pass and teacher_train.logits.requires_grad
                                          and len(teacher_train.logits) == len(y_pilot)):
        raise ValueError("teacher_train must be the pilot's output from teacher_forward, under a configuration "
                         "that shares it (FeedbackConfig.shares_teaching_pass)")
    with _mode(teacher, feedback_config.teacher_train_mode):
        with torch.set_grad_enabled(feedback_config.teacher_weight > 0):
            teacher_quiz = teacher(quiz_batch)
        student_quiz, pilot = None, None
        if feedback_config.student_term:
            if teacher_train is None:
                teacher_train = teacher(pilot_batch)
            student_quiz, pilot = _pilot(teacher_train, student, projector, pilot_batch, y_pilot, quiz_batch,
                                         loss_config, feedback_config.alpha)
    return FeedbackObjective(
        student_quiz_ce=None if student_quiz is None else cross_entropy(student_quiz.logits, y_quiz),
        teacher_quiz_ce=cross_entropy(teacher_quiz.logits, y_quiz),
        teacher_weight=feedback_config.teacher_weight,
        pilot=pilot,
    )


def _pilot(teacher_train: ModelOutput, student: nn.Module, projector: FeatureProjector | None, train_batch: Batch,
           y_train: Tensor, quiz_batch: Batch, loss_config: DistillationLossConfig,
           alpha: float) -> tuple[ModelOutput, LossTerms]:
    # The temporary student's quiz output, with its graph back to the teacher
    # through the pilot step, and the pilot's L_S. The pilot differentiates
    # detached copies of the parameters, so nothing accumulates in the real
    # student's .grad; cloned buffers absorb train-mode batch-norm updates.
    params = {name: p.detach().requires_grad_(p.requires_grad) for name, p in student.named_parameters()}
    buffers = {name: b.clone() for name, b in student.named_buffers()}
    trainable = [name for name, p in params.items() if p.requires_grad]
    # The pilot's backward pass is itself differentiated. PyTorch's fused
    # attention kernels (flash, memory-efficient) have no double backward,
    # so the student's pilot forward runs on the reference ("math") kernel;
    # every other pass here is differentiated once and keeps the fast kernels.
    with sdpa_kernel(SDPBackend.MATH):
        student_train = functional_call(student, (params, buffers), (train_batch,))
    pilot = student_loss(student_train, teacher_train, y_train, projector, loss_config)
    grads = torch.autograd.grad(pilot.total, [params[name] for name in trainable],
                                create_graph=True, allow_unused=True)
    temporary = {**params, **{name: params[name] - alpha * grad
                              for name, grad in zip(trainable, grads) if grad is not None}}
    return functional_call(student, (temporary, buffers), (quiz_batch,)), pilot


def feedback_phase(teacher: nn.Module, student: nn.Module, projector: FeatureProjector | None,
                   train_batch: Batch, y_train: Tensor, quiz_batch: Batch, y_quiz: Tensor,
                   teacher_optimizer: torch.optim.Optimizer, loss_config: DistillationLossConfig,
                   feedback_config: FeedbackConfig, teacher_train: ModelOutput | None = None) -> dict[str, float]:
    """One teacher update from the feedback of a one-step pilot student.

    Parameters
    ----------
    teacher : nn.Module
        EEG+EOG network; updated. Its mode during the phase is set by
        ``feedback_config.teacher_train_mode`` and restored afterwards.
    student : nn.Module
        EOG-only network; read, never changed (parameters, ``.grad``,
        buffers). Its current mode is used for the temporary student.
    projector : FeatureProjector or None
        Held fixed; see the module notes.
    train_batch, y_train : Mapping of str to Tensor, Tensor
        Training batch and labels; the pilot step learns from
        :meth:`FeedbackConfig.pilot_rows` of them.
    quiz_batch, y_quiz : Mapping of str to Tensor, Tensor
        Held-out batch and labels for the teacher's objective: from the quiz
        set by default, from the validation set under the paper's literal
        protocol. Never test data.
    teacher_optimizer : torch.optim.Optimizer
        Over the teacher's parameters (:func:`make_teacher_optimizer`). The
        student's optimiser is not involved.
    loss_config : DistillationLossConfig
        :math:`L_S` of the pilot step; the same as in the teaching phase.
    feedback_config : FeedbackConfig
        Pilot step size, :math:`\\lambda_t`, whether the student's term is
        included, modes.
    teacher_train : ModelOutput, optional
        The pilot's output of the teaching step's :func:`teacher_forward` on
        ``train_batch``, reused instead of running the teacher there again.

    Returns
    -------
    dict of str to float
        ``teacher_quiz_ce`` (the teacher's own term, unweighted),
        ``teacher_loss`` (the objective), ``grad_norm_via_student`` (norm of
        the teacher gradient that came through the temporary student; 0
        without ``student_term``), ``grad_norm_teacher_ce`` (norm of the
        gradient of :math:`\\lambda_t \\mathrm{CE}_T`), ``grad_norm_total``
        (norm of their sum, the gradient applied), ``teacher_step_norm``
        (norm of the change of the teacher's parameters) and, with
        ``student_term``, ``student_quiz_ce`` and the pilot step's
        :math:`L_S` terms as ``pilot_total``, ``pilot_ce``, ``pilot_kl``,
        ``pilot_mse``.

    Notes
    -----
    Cost, in passes over one batch. Teacher: forward and backward on the
    quiz batch, backward on the pilot's segments, and a forward there unless
    ``teacher_train`` is given. Student: forward and a graph-recording
    backward on the pilot's segments, forward and backward on the quiz
    batch, and one pass back through the pilot's backward (the second
    order, about one more backward). The pilot's passes cover
    ``1 / pilot_stride`` of a batch. The teacher's passes dominate, so the
    cost relative to a teaching step grows with the teacher/student size
    ratio; ``benchmarks/distill.py`` measures it. Without ``student_term``
    only the teacher's passes on the quiz batch remain. The two gradient
    paths are taken by separate :func:`torch.autograd.grad` calls on disjoint
    graphs, so splitting them costs nothing over differentiating their sum.
    """
    objective = feedback_objective(teacher, student, projector, train_batch, y_train, quiz_batch, y_quiz,
                                   loss_config, feedback_config, teacher_train)
    params = [p for p in teacher.parameters() if p.requires_grad]
    own = _grads(feedback_config.teacher_weight * objective.teacher_quiz_ce, params)
    via_student = (_grads(objective.student_quiz_ce, params) if objective.student_quiz_ce is not None
                   else [torch.zeros_like(p) for p in params])
    total = [a + b for a, b in zip(via_student, own)]

    before = [p.detach().clone() for p in params]
    teacher_optimizer.zero_grad(set_to_none=True)
    for p, g in zip(params, total):
        p.grad = g
    teacher_optimizer.step()

    logged = {
        "teacher_quiz_ce": float(objective.teacher_quiz_ce.detach()),
        "teacher_loss": float(objective.total.detach()),
        "grad_norm_via_student": _norm(via_student),
        "grad_norm_teacher_ce": _norm(own),
        "grad_norm_total": _norm(total),
        "teacher_step_norm": _norm([p.detach() - b for p, b in zip(params, before)]),
    }
    if objective.student_quiz_ce is not None:
        logged["student_quiz_ce"] = float(objective.student_quiz_ce.detach())
        logged.update({f"pilot_{name}": value for name, value in objective.pilot.as_dict().items()})
    return logged


def _grads(loss: Tensor, params: list[Tensor]) -> list[Tensor]:
    # A loss without a graph (zero teacher weight) and a parameter the loss
    # does not use give zero gradients rather than errors or None, so the two
    # paths can be added and their norms compared.
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _norm(grads: list[Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


#: Options of a feedback-distillation cell besides the loss options (:data:`LOSS_OPTIONS`).
FEEDBACK_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(FeedbackConfig))


class FeedbackDistiller(Distiller):
    """Distillation with dynamic feedback: teaching steps, and a feedback phase every ``k`` of them.

    A :class:`Distiller` (its teaching steps, history and
    teacher scores) that follows every ``feedback.every``-th teaching step
    (:meth:`~mkdbook.distillation.feedback.FeedbackConfig.due`) with
    ``feedback.steps`` :func:`~mkdbook.distillation.feedback.feedback_phase` updates of the
    teacher. The teacher and its optimiser are saved and restored with every
    checkpoint, as is the log of teacher updates.

    Parameters
    ----------
    student, teacher, teacher_scaler, config, out_dir, **kwargs
        As for :class:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer`.
    feedback : mkdbook.distillation.feedback.FeedbackConfig, default FeedbackConfig()

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
    (:attr:`~mkdbook.distillation.feedback.FeedbackConfig.shares_teaching_pass`). Test
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

    @property
    def min_batch(self) -> int:
        """The fewest segments of a training step: enough for the pilot to learn from two."""
        return self.feedback.pilot_stride + 1

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
        drawn from ``(seed, update // n)``, cut into ``n`` batches of nearly
        equal size, at most :attr:`FeedbackConfig.quiz_batch <mkdbook.distillation.feedback.FeedbackConfig>`
        segments, where ``n`` is the fewest batches that allows: each
        segment is used once every ``n`` updates, and the batch depends on
        nothing but the update number, so a resumed run draws the same. The segments drawn are added to
        :attr:`feedback_rows`. Only valid while :meth:`fit` runs. Returns the
        segments' inputs, in this trainer's standardisation and on its device,
        and their labels.
        """
        data, _, target = self._context
        source = self.feedback_source()
        n_batches = -(-len(source) // self.feedback.quiz_batch)  # -(-a // b): the ceiling of a / b
        cycle, position = divmod(update, n_batches)
        order = np.random.default_rng([self.config.seed, 0xFEED, cycle]).permutation(source)
        # Batches as equal as they can be, so none is left with a segment or two,
        # which the student's batch normalisation could not train on.
        rows = np.sort(np.array_split(order, n_batches)[position])
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

    The cell's options are fields of :class:`~mkdbook.distillation.losses.DistillationLossConfig`,
    of :class:`~mkdbook.distillation.feedback.FeedbackConfig` and ``student_<field>`` overrides
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
