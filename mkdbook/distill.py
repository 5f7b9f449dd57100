"""The two phases of dynamic-feedback distillation, one batch at a time.

Zhang & Lu (2025) alternate two phases:

Teaching phase (:func:`teaching_step`)
    The teacher is fixed; the student (and the feature projector that belongs
    to it) takes an optimiser step on :math:`L_S` (:func:`mkdbook.losses.student_loss`).

Feedback phase (:func:`feedback_phase`), every ``k`` teaching steps
    The student is fixed. A temporary copy of it takes one differentiable SGD
    step on :math:`L_S`,

    .. math:: \\theta_{ts} = \\theta_s - \\alpha \\, \\nabla_{\\theta_s} L_S(\\theta_s, \\theta_T),

    and the teacher is updated on a *validation* batch by

    .. math:: \\min_{\\theta_T} \\; \\mathrm{CE}(y_V, f_S(x_V; \\theta_{ts}))
              + \\lambda_t \\, \\mathrm{CE}(y_V, f_T(x_V; \\theta_T)).

    The first term reaches :math:`\\theta_T` only through :math:`\\theta_{ts}`:
    its gradient is
    :math:`-\\alpha \\, (\\partial^2 L_S / \\partial\\theta_T \\partial\\theta_s)
    \\, \\nabla_{\\theta_{ts}} \\mathrm{CE}`, a second derivative, obtained by
    differentiating through the pilot step (``create_graph=True``).

This is the pilot update of MetaDistil (Zhou et al., 2022), which uses the
student's validation loss alone; Zhang & Lu add the teacher's own
cross-entropy so that the teacher stays a good classifier while it learns to
teach. SFTN (Park et al., 2021) pursues the same aim, a teacher that is easy
to learn from, by training the teacher jointly with student branches before
distillation instead of during it.

The functions here are batch-level and leave scheduling (how often, after how
many warm-up steps) to the fit loop; :meth:`FeedbackConfig.due` answers that
question in one place.

Design decisions (the paper is silent on each)
----------------------------------------------
Teacher mode in the feedback phase
    Eval mode by default (``FeedbackConfig.teacher_train_mode=False``), for
    both of its forward passes: the pilot step then sees exactly the teacher
    outputs that real teaching steps show the student (they run the teacher
    in eval mode too), the hypergradient is deterministic, and validation
    batches never enter the teacher's batch-norm statistics. With
    ``teacher_train_mode=True`` the teacher runs with dropout (the regime the
    paper trains it in), which makes the objective stochastic and lets both
    batches move its batch-norm running statistics.
Projector
    Held fixed in the pilot step. With one pilot step, the projector's own
    update could not reach the validation objective: :math:`\\theta_{ts}`
    depends on the projector only through the gradient taken at its current
    value, and the student's validation logits do not use the projector.
    Holding it fixed is therefore exact, not an approximation, and saves its
    gradient. It still carries the teacher's features into :math:`L_S`, so
    the feature term feeds back to the teacher.
Student mode and buffers
    The temporary student runs in the mode the real student is in (train
    mode during fitting), so the pilot step sees the same batch statistics
    and dropout as a teaching step. It is evaluated with
    :func:`torch.func.functional_call` on detached copies of the student's
    parameters and *clones* of its buffers, so batch-norm running statistics
    written during the pilot step land in the clones. The real student's
    parameters, ``.grad`` fields, buffers and optimiser state are never
    touched.

References
----------
.. [1] Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion
   Recognition," Brain Sciences 15(7):707, 2025. doi:10.3390/brainsci15070707
.. [2] W. Zhou, C. Xu and J. McAuley, "BERT Learns to Teach: Knowledge
   Distillation with Meta Learning," ACL 2022.
.. [3] D. Y. Park, M.-H. Cha, C. Jeong, D. Kim and B. Han, "Learning
   Student-Friendly Teacher Networks for Knowledge Distillation,"
   NeurIPS 2021.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path

import numpy as np

import torch
from torch import Tensor, nn
from torch.func import functional_call
from sklearn.metrics import accuracy_score, f1_score
from torch.nn.attention import SDPBackend, sdpa_kernel

from mkdbook.data.channels import MODALITIES
from mkdbook.atomic import write_atomically
from mkdbook.data.segments import SegmentSet
from mkdbook.losses import (
    DistillationLossConfig,
    FeatureProjector,
    LossTerms,
    cross_entropy,
    student_loss,
)
from mkdbook.splits import Split
from mkdbook.train import (
    ChannelScaler,
    TrainConfig,
    Trainer,
    TrainResult,
    iterate_batches,
    make_adam,
    write_metrics,
)

__all__ = [
    "VARIANTS",
    "Distiller",
    "FeedbackConfig",
    "FeedbackObjective",
    "feedback_objective",
    "feedback_phase",
    "Restandardise",
    "add_distill_command",
    "distill_variant",
    "make_teacher_optimizer",
    "teaching_step",
]

Batch = Mapping[str, Tensor]


@dataclass(frozen=True)
class FeedbackConfig:
    """How and how often the teacher is updated from the student's feedback.

    The paper states none of these values except ``teacher_weight``; the
    defaults are this project's choices.

    Attributes
    ----------
    every : int, default 10
        A feedback phase follows every ``every``-th teaching step (the paper's
        "set number of iterations"). A feedback phase costs about four
        teaching steps (see :func:`feedback_phase`), so ten keeps it to about
        a quarter of the run time while the teacher still moves many times
        per epoch.
    alpha : float, default 1e-2
        Learning rate of the pilot SGD step. The feedback signal scales with
        ``alpha`` (it is :math:`\\alpha` times a second derivative), so a
        value near the student's effective step size matters more than
        matching its optimiser exactly.
    teacher_weight : float, default 1.0
        :math:`\\lambda_t`, weight of the teacher's own validation
        cross-entropy (the paper: 1). Zero gives MetaDistil's objective.
    teacher_lr : float, default 1e-4
        Learning rate of the teacher's Adam optimiser
        (:func:`make_teacher_optimizer`); smaller than a from-scratch rate
        because the teacher arrives pretrained and should be adjusted, not
        retrained.
    warmup_steps : int, default 0
        Teaching steps before the first feedback phase is due.
    first_order : bool, default False
        **Approximation, and a drastic one.** Detaches the pilot step, as
        first-order MAML does. Here the student's validation loss reaches the
        teacher *only* through the second derivative, so detaching removes
        the feedback signal entirely: the teacher is then trained on its own
        validation cross-entropy alone. Use it as the ablation "feedback phase
        without the student's signal" and to measure what the second-order
        term costs, not as a cheap substitute for it.
    teacher_train_mode : bool, default False
        Run the teacher in train mode (dropout on, batch-norm statistics
        updated) during the feedback phase instead of eval mode; see the
        module notes.
    """

    every: int = 10
    alpha: float = 1e-2
    teacher_weight: float = 1.0
    teacher_lr: float = 1e-4
    warmup_steps: int = 0
    first_order: bool = False
    teacher_train_mode: bool = False

    def __post_init__(self) -> None:
        if not (isinstance(self.every, int) and self.every >= 1):
            raise ValueError(f"every must be an int >= 1, got {self.every!r}")
        if not (isinstance(self.warmup_steps, int) and self.warmup_steps >= 0):
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        for name in ("alpha", "teacher_lr"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (math.isfinite(self.teacher_weight) and self.teacher_weight >= 0.0):
            raise ValueError(f"teacher_weight must be a finite number >= 0, got {self.teacher_weight!r}")

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


def teaching_step(
    student: nn.Module,
    teacher: nn.Module,
    projector: FeatureProjector | None,
    batch: Batch,
    y: Tensor,
    optimizer: torch.optim.Optimizer,
    loss_config: DistillationLossConfig,
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

    Returns
    -------
    dict of str to float
        :meth:`mkdbook.losses.LossTerms.as_dict` of this step's loss.
    """
    with torch.no_grad(), _mode(teacher, False):
        teacher_out = teacher(batch)
    terms = student_loss(student(batch), teacher_out, y, projector, loss_config)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return terms.as_dict()


@dataclass(frozen=True)
class FeedbackObjective:
    """The feedback-phase objective, split into its two paths to the teacher.

    Attributes
    ----------
    student_val_ce : Tensor
        :math:`\\mathrm{CE}(y_V, f_S(x_V; \\theta_{ts}))`; depends on the
        teacher through the pilot step (detached when ``first_order``).
    teacher_val_ce : Tensor
        :math:`\\mathrm{CE}(y_V, f_T(x_V; \\theta_T))`, unweighted.
    teacher_weight : float
        :math:`\\lambda_t`.
    pilot : LossTerms
        :math:`L_S` of the pilot step on the training batch.
    """

    student_val_ce: Tensor
    teacher_val_ce: Tensor
    teacher_weight: float
    pilot: LossTerms

    @property
    def total(self) -> Tensor:
        """The objective the teacher minimises."""
        return self.student_val_ce + self.teacher_weight * self.teacher_val_ce


def feedback_objective(
    teacher: nn.Module,
    student: nn.Module,
    projector: FeatureProjector | None,
    train_batch: Batch,
    y_train: Tensor,
    val_batch: Batch,
    y_val: Tensor,
    loss_config: DistillationLossConfig,
    feedback_config: FeedbackConfig,
) -> FeedbackObjective:
    """Build the temporary student from the current teacher and evaluate the teacher's objective.

    Runs the teacher in the mode ``feedback_config.teacher_train_mode`` asks
    for (restoring its mode afterwards); the arguments are those of
    :func:`feedback_phase`. Exposed separately so that the objective can be
    evaluated (for example by finite differences) without updating anything.

    Returns
    -------
    FeedbackObjective
        Both terms with their graphs to the teacher's parameters.
    """
    second_order = not feedback_config.first_order
    # Detached copies of the parameters: the pilot differentiates with respect
    # to these leaves, so no gradient can ever accumulate in the real
    # student's .grad. Cloned buffers absorb the batch-norm updates that
    # train-mode forward passes write in place.
    params = {name: p.detach().requires_grad_(p.requires_grad) for name, p in student.named_parameters()}
    buffers = {name: b.clone() for name, b in student.named_buffers()}
    trainable = [name for name, p in params.items() if p.requires_grad]

    with _mode(teacher, feedback_config.teacher_train_mode):
        # Without the second-order path nothing computed here reaches the
        # teacher's update, so record no graph that no gradient would use.
        with torch.set_grad_enabled(second_order):
            teacher_train = teacher(train_batch)
        # The pilot's backward pass is itself differentiated. PyTorch's fused
        # attention kernels (flash, memory-efficient) have no double backward,
        # so the student's pilot forward runs on the reference ("math")
        # kernel; every other pass here is differentiated once and keeps the
        # fast kernels.
        with sdpa_kernel(SDPBackend.MATH) if second_order else nullcontext():
            student_train = functional_call(student, (params, buffers), (train_batch,))
        pilot = student_loss(
            student_train,
            teacher_train,
            y_train,
            projector,
            loss_config,
        )
        grads = torch.autograd.grad(
            pilot.total,
            [params[name] for name in trainable],
            create_graph=second_order,
            allow_unused=True,
        )
        temporary = dict(params)
        for name, grad in zip(trainable, grads):
            if grad is not None:
                temporary[name] = params[name] - feedback_config.alpha * grad
        with torch.set_grad_enabled(second_order):
            student_val = functional_call(student, (temporary, buffers), (val_batch,))
        with torch.set_grad_enabled(feedback_config.teacher_weight > 0):
            teacher_val = teacher(val_batch)

    return FeedbackObjective(
        student_val_ce=cross_entropy(student_val.logits, y_val),
        teacher_val_ce=cross_entropy(teacher_val.logits, y_val),
        teacher_weight=feedback_config.teacher_weight,
        pilot=pilot,
    )


def feedback_phase(
    teacher: nn.Module,
    student: nn.Module,
    projector: FeatureProjector | None,
    train_batch: Batch,
    y_train: Tensor,
    val_batch: Batch,
    y_val: Tensor,
    teacher_optimizer: torch.optim.Optimizer,
    loss_config: DistillationLossConfig,
    feedback_config: FeedbackConfig,
) -> dict[str, float]:
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
        Training batch and labels for the pilot step.
    val_batch, y_val : Mapping of str to Tensor, Tensor
        Validation batch and labels for the teacher's objective. Never test
        data.
    teacher_optimizer : torch.optim.Optimizer
        Over the teacher's parameters (:func:`make_teacher_optimizer`). The
        student's optimiser is not involved.
    loss_config : DistillationLossConfig
        :math:`L_S` of the pilot step; the same as in the teaching phase.
    feedback_config : FeedbackConfig
        Pilot step size, :math:`\\lambda_t`, modes.

    Returns
    -------
    dict of str to float
        ``student_val_ce`` and ``teacher_val_ce`` (the two terms, unweighted),
        ``teacher_loss`` (the objective), ``grad_norm_via_student`` (norm of
        the teacher gradient that came through the temporary student; 0 when
        ``first_order``), ``grad_norm_teacher_ce`` (norm of the gradient of
        :math:`\\lambda_t \\mathrm{CE}_T`), ``grad_norm_total`` (norm of their
        sum, the gradient applied), and the pilot step's :math:`L_S` terms as
        ``pilot_total``, ``pilot_ce``, ``pilot_kl``, ``pilot_mse``.

    Notes
    -----
    Cost: the pilot step is a student and a teacher forward pass plus a
    student backward pass that records its own graph; the update then runs
    the teacher forward and backward on each batch and differentiates the
    student through the pilot's backward pass (about twice a first-order
    backward). Two teacher forward-backward passes dominate, so the cost
    relative to a teaching step (one teacher forward pass without gradient)
    grows with the teacher/student size ratio. With the default networks
    (2.4 M and 0.9 M parameters, batches of 32 four-second segments, one CPU
    thread) a teaching step cost about 1.7 plain student steps and a
    feedback phase about 4.4 teaching steps (2.6 with ``first_order``): the
    sum of its passes, none computed twice.

    The two gradient paths are taken by separate :func:`torch.autograd.grad`
    calls on disjoint graphs (the student's validation loss and the teacher's
    own), so splitting them costs nothing over differentiating their sum.

    The student's pilot forward pass runs on PyTorch's reference attention
    kernel because the fused ones cannot be differentiated twice; that pass
    alone is slower (about 20 % for the default student on CPU).
    """
    objective = feedback_objective(
        teacher, student, projector, train_batch, y_train, val_batch, y_val, loss_config, feedback_config
    )
    params = [p for p in teacher.parameters() if p.requires_grad]
    own = _grads(feedback_config.teacher_weight * objective.teacher_val_ce, params)
    via_student = _grads(objective.student_val_ce, params)
    total = [a + b for a, b in zip(via_student, own)]

    teacher_optimizer.zero_grad(set_to_none=True)
    for p, g in zip(params, total):
        p.grad = g
    teacher_optimizer.step()

    pilot = {f"pilot_{name}": value for name, value in objective.pilot.as_dict().items()}
    return {
        "student_val_ce": float(objective.student_val_ce.detach()),
        "teacher_val_ce": float(objective.teacher_val_ce.detach()),
        "teacher_loss": float(objective.total.detach()),
        "grad_norm_via_student": _norm(via_student),
        "grad_norm_teacher_ce": _norm(own),
        "grad_norm_total": _norm(total),
        **pilot,
    }


def _grads(loss: Tensor, params: list[Tensor]) -> list[Tensor]:
    # A loss without a graph (first-order pilot, zero teacher weight) and a
    # parameter the loss does not use give zero gradients rather than errors
    # or None, so the two paths can be added and their norms compared.
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in params]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _norm(grads: list[Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


# ---------------------------------------------------------------------------
# The fit loop: a Trainer whose step is a teaching step, with feedback phases
# ---------------------------------------------------------------------------


class Restandardise(nn.Module):
    """Run a network on inputs standardised for another network.

    The student and the teacher were each trained on inputs centred and
    scaled by their own :class:`~mkdbook.train.ChannelScaler`. The distiller
    standardises a batch once, with the student's scaler; this wrapper maps
    every channel :math:`x_s = (x - m_s) / s_s` to the standardisation the
    wrapped network was trained with, :math:`x_t = (x - m_t) / s_t
    = x_s \\, s_s / s_t + (m_s - m_t) / s_t`, an exact per-channel affine map
    (the identity when both scalers agree). The teacher thus sees exactly the
    inputs it saw in its own training, whatever split or seed fitted the two
    scalers.

    The wrapper owns no parameters: ``parameters()``, ``state_dict()`` and
    ``train()``/``eval()`` reach the wrapped network (``state_dict`` keys gain
    a ``network.`` prefix; save ``wrapper.network`` to keep them plain).

    Parameters
    ----------
    network : nn.Module
        The network to feed (the teacher); reads the keys in its ``modalities``.
    source, target : ChannelScaler
        The standardisation the batch arrives in, and the one ``network`` expects.
    """

    def __init__(self, network: nn.Module, source: ChannelScaler, target: ChannelScaler) -> None:
        super().__init__()
        self.network = network
        self.modalities = tuple(network.modalities)
        missing = [m for m in self.modalities if m not in source.mean or m not in target.mean]
        if missing:
            raise ValueError(f"the scalers do not cover the modalities {missing} that the network reads")
        # Plain attributes, not buffers: they are derived from the scalers and
        # must not enter the wrapped network's state_dict.
        self._scale = {m: source.std[m] / target.std[m] for m in self.modalities}
        self._shift = {m: (source.mean[m] - target.mean[m]) / target.std[m] for m in self.modalities}

    def forward(self, batch: Batch):  # noqa: D102
        return self.network({m: batch[m] * self._scale[m].to(batch[m].device)
                             + self._shift[m].to(batch[m].device) for m in self.modalities})


def _feature_width(model: nn.Module, role: str) -> int:
    config = getattr(model, "config", None)
    width = getattr(config, "fusion_width", None)
    if not isinstance(width, int):
        raise ValueError(f"cannot tell the feature width of the {role} ({type(model).__name__} has no "
                         f"config.fusion_width); pass projector= explicitly")
    return width


def _union(*modalities: tuple[str, ...]) -> tuple[str, ...]:
    names = {m for group in modalities for m in group}
    return tuple(m for m in MODALITIES if m in names)


class Distiller(Trainer):
    """Distil a trained teacher into a student; optionally with dynamic feedback.

    A :class:`~mkdbook.train.Trainer` whose model is the *student*. Each
    training step is a :func:`teaching_step` (the teacher fixed, the student
    and the feature projector updated on :math:`L_S`); with a
    :class:`FeedbackConfig`, a :func:`feedback_phase` follows every
    ``feedback.every``-th step (:meth:`FeedbackConfig.due`) and updates the
    teacher. Checkpoints, early stopping on the student's validation loss,
    the final test scores and resume all come from the base class.

    Parameters
    ----------
    student : nn.Module
        The network trained (EOG only); returns logits and features.
    teacher : nn.Module
        Trained teacher (EEG + EOG). Moved to the student's device; changed
        in place by feedback phases, never by teaching steps.
    teacher_scaler : ChannelScaler
        The input standardisation the teacher was trained with
        (``Trainer.scaler`` of its training run).
    config : TrainConfig
        How the student is trained (optimiser, epochs, batch size, seed).
    out_dir : path-like, optional
        Checkpoint folder; a ``last.pt`` there is resumed (with the
        projector, the teacher, its optimiser, the step counter and the
        feedback log).
    loss : DistillationLossConfig, default the paper's 1:1:1 ("fusion")
    feedback : FeedbackConfig or None, default None
        ``None``: teaching steps only (ablation variants 1 and 2).
    projector : FeatureProjector, optional
        Built (seeded by ``config.seed``) from the networks' ``config.fusion_width`` when the feature
        term has a positive weight; ``None`` otherwise (the feature term is
        then neither trained nor logged).

    Attributes
    ----------
    projector : FeatureProjector or None
    teacher : nn.Module
    feedback_log : list of dict
        One row per feedback phase: ``step``, ``epoch``, ``seconds`` and the
        values :func:`feedback_phase` returns (both gradient norms, the
        teacher's validation-batch CE, ...).
    teacher_before, teacher_after : dict
        The teacher's loss, accuracy and macro-F1 on the whole validation
        set before distillation and after it.
    feedback_rows : set of int
        Segments this process drew as feedback validation batches (for
        checking that they never include test segments).

    Notes
    -----
    Inputs. The batch is standardised once with the distiller's own scaler
    (fitted, as for every Trainer, on the training segments, for the union
    of the two networks' modalities); the teacher is fed through
    :class:`Restandardise`, so each network sees inputs standardised as in
    its own training.

    Validation batches. Feedback phase ``p`` (counted from 0) uses batch
    ``p mod n`` of a permutation of the validation segments drawn from
    ``(seed, p // n)``, with ``n`` validation batches: every validation
    segment is used once per ``n`` phases, and the choice depends only on
    ``p``, so a resumed run draws the same batches. The training batch of a
    feedback phase is the batch of the teaching step just taken. Test
    segments are never read before the final evaluation.

    Student selection. The best-validation student is kept (as for every
    Trainer); the teacher is kept as it is at the end of training, which is
    what :attr:`teacher_after` describes.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_scaler: ChannelScaler,
                 config: TrainConfig = TrainConfig(), out_dir: Path | str | None = None, *,
                 loss: DistillationLossConfig = DistillationLossConfig(),
                 feedback: FeedbackConfig | None = None,
                 projector: FeatureProjector | None = None) -> None:
        if projector is None and loss.mse > 0:
            # Seeded, so that the same configuration gives the same run.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed)
                projector = FeatureProjector(_feature_width(student, "student"),
                                             _feature_width(teacher, "teacher"))
        self.projector = projector
        self.loss_config = loss
        self.feedback = feedback
        # make_optimizer (called by Trainer.__init__) needs the projector.
        super().__init__(student, config, out_dir)
        if self.projector is not None:
            self.projector.to(self.device)
        self.teacher = teacher.to(self.device)
        self.teacher.eval()
        self.teacher_scaler = teacher_scaler
        self.modalities = _union(tuple(student.modalities), tuple(teacher.modalities))
        self.teacher_optimizer = make_teacher_optimizer(teacher, feedback) if feedback else None
        self.step = 0
        self.feedback_log: list[dict[str, float]] = []
        self.teacher_before: dict[str, float] = {}
        self.teacher_after: dict[str, float] = {}
        self.feedback_rows: set[int] = set()
        self._teacher_input: Restandardise | None = None
        self._context: tuple[SegmentSet, Split, str] | None = None

    # -- the pieces the Trainer calls ------------------------------------------------
    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the student's and the projector's parameters (the projector belongs to the student)."""
        params = list(self.model.parameters())
        if self.projector is not None:
            params += list(self.projector.parameters())
        return make_adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def teacher_input(self) -> Restandardise:
        """The teacher, fed from batches in the student's standardisation (see :class:`Restandardise`)."""
        if self._teacher_input is None or self._teacher_input_for is not self.scaler:
            self._teacher_input = Restandardise(self.teacher, self.scaler, self.teacher_scaler)
            self._teacher_input_for = self.scaler
        return self._teacher_input

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """A teaching step; then a feedback phase when one is due.

        Returns ``loss`` (:math:`L_S`), ``correct``, and the unweighted terms
        ``ce``, ``kl`` and (with a projector) ``mse``; the history averages
        them per epoch as ``train_loss``, ``train_ce``, ``train_kl``, ``train_mse``.
        """
        self.model.train()
        teacher = self.teacher_input()
        seen: list[Tensor] = []
        hook = self.model.register_forward_hook(lambda _m, _i, out: seen.append(out.logits.detach()))
        try:
            terms = teaching_step(self.model, teacher, self.projector, batch, y, self.optimizer,
                                  self.loss_config)
        finally:
            hook.remove()
        self.step += 1
        if self.feedback is not None and self.feedback.due(self.step):
            self._feedback(batch, y)
        correct = (seen[0].argmax(1) == y).sum().item()
        return {"loss": terms.pop("total"), "correct": correct, **terms}

    def _validation_batch(self, phase: int) -> tuple[dict[str, Tensor], Tensor]:
        data, split, target = self._context
        size = self.config.batch_size
        n_batches = -(-len(split.val) // size)
        cycle, position = divmod(phase, n_batches)
        order = np.random.default_rng([self.config.seed, 0xFEED, cycle]).permutation(split.val)
        rows = np.sort(order[position * size:(position + 1) * size])
        self.feedback_rows.update(int(r) for r in rows)
        arrays = data.batch(rows, self.modalities)
        batch = {k: torch.from_numpy(v) for k, v in arrays.items()}
        return self._to_device(batch, torch.from_numpy(data.labels(target)[rows]))

    def _feedback(self, batch: dict[str, Tensor], y: Tensor) -> None:
        began = time.perf_counter()
        val_batch, y_val = self._validation_batch(len(self.feedback_log))
        values = feedback_phase(self.teacher_input(), self.model, self.projector, batch, y, val_batch, y_val,
                                self.teacher_optimizer, self.loss_config, self.feedback)
        self.feedback_log.append({"phase": len(self.feedback_log) + 1, "step": self.step,
                                  "epoch": self._epoch, **values,
                                  "seconds": time.perf_counter() - began})

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """The base epoch, then the teacher's validation scores and its agreement with the student.

        Adds ``teacher_val_loss``, ``teacher_val_accuracy`` (the teacher
        moves only under feedback) and ``agreement`` (fraction of validation
        segments on which student and teacher predict the same class) to the
        epoch's history row.
        """
        self._epoch = epoch
        row = super().train_epoch(data, split, target, epoch)
        teacher = self.teacher_scores(data, split.val, target)
        student, _ = self.predict(data, split.val, target)
        row.update(teacher_val_loss=teacher["loss"], teacher_val_accuracy=teacher["accuracy"],
                   agreement=float(np.mean(student.argmax(1) == teacher["predictions"])))
        return row

    # -- the teacher's side ----------------------------------------------------------
    @torch.no_grad()
    def teacher_predict(self, data: SegmentSet, index: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's class probabilities and the labels of ``index`` (eval mode, its own scaler)."""
        was_training = self.teacher.training
        self.teacher.eval()
        probs, labels = [], []
        modalities = tuple(self.teacher.modalities)
        try:
            for batch, y in iterate_batches(data, index, target, modalities, self.config.eval_batch_size):
                batch = self.teacher_scaler({k: v.to(self.device) for k, v in batch.items()})
                probs.append(torch.softmax(self.teacher(batch).logits.float(), 1).cpu().numpy())
                labels.append(y.numpy())
        finally:
            self.teacher.train(was_training)
        return np.concatenate(probs), np.concatenate(labels)

    def teacher_scores(self, data: SegmentSet, index: np.ndarray, target: str) -> dict:
        """The teacher's ``loss``, ``accuracy``, ``f1`` (floats) and ``predictions`` on ``index``."""
        probs, labels = self.teacher_predict(data, index, target)
        predictions = probs.argmax(1)
        loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))))
        return {"loss": loss, "accuracy": float(accuracy_score(labels, predictions)),
                "f1": float(f1_score(labels, predictions, average="macro", zero_division=0)),
                "predictions": predictions}

    # -- resume -------------------------------------------------------------------------
    def extra_state(self) -> dict:
        """Projector, teacher and its optimiser, step counter, feedback log, teacher's initial scores."""
        return {
            "projector": self.projector.state_dict() if self.projector is not None else {},
            "teacher": self.teacher.state_dict(),
            "teacher_optimizer": self.teacher_optimizer.state_dict() if self.teacher_optimizer else {},
            "step": self.step,
            "feedback_log": [dict(row) for row in self.feedback_log],
            "teacher_before": dict(self.teacher_before),
        }

    def load_extra_state(self, state: dict) -> None:
        """Restore what :meth:`extra_state` returned."""
        if self.projector is not None:
            self.projector.load_state_dict(state["projector"])
        self.teacher.load_state_dict(state["teacher"])
        if self.teacher_optimizer is not None:
            self.teacher_optimizer.load_state_dict(state["teacher_optimizer"])
        self.step = int(state["step"])
        self.feedback_log = [dict(row) for row in state["feedback_log"]]
        self.teacher_before = dict(state["teacher_before"])

    # -- the loop -------------------------------------------------------------------------
    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Distil (see :meth:`Trainer.fit`), and score the teacher on validation before and after.

        Raises
        ------
        ValueError
            If the validation and test segments overlap (feedback would then
            tune the teacher on test data).
        """
        if np.intersect1d(split.val, split.test).size:
            raise ValueError(f"{split.describe()}: validation and test segments overlap; the feedback "
                             f"phase must never see test data")
        self._context = (data, split, target)
        self._epoch = 0
        scores = self.teacher_scores(data, split.val, target)
        self.teacher_before = {k: v for k, v in scores.items() if k != "predictions"}
        result = super().fit(data, split, target)  # a resumed run restores teacher_before
        scores = self.teacher_scores(data, split.val, target)
        self.teacher_after = {k: v for k, v in scores.items() if k != "predictions"}
        return result

    def summary(self) -> dict:
        """JSON-able account of the distillation: configuration, teacher before/after, feedback log."""
        used = np.fromiter(self.feedback_rows, dtype=np.int64)
        data, split, _ = self._context
        return {
            "loss": asdict(self.loss_config),
            "feedback": asdict(self.feedback) if self.feedback else None,
            "teaching_steps": self.step,
            "teacher_before": self.teacher_before,
            "teacher_after": self.teacher_after,
            "feedback_log": self.feedback_log,
            "feedback_rows_in_validation": bool(np.isin(used, split.val).all()),
            "feedback_rows_in_test": int(np.isin(used, split.test).sum()),
        }


# ---------------------------------------------------------------------------
# Methods of mkdbook.experiments
# ---------------------------------------------------------------------------

#: Options of a distillation cell (``Cell.settings``), besides ``student_<field>`` overrides.
LOSS_OPTIONS: tuple[str, ...] = ("ce", "kl", "mse", "temperature")
FEEDBACK_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(FeedbackConfig))

#: Loss preset and whether feedback runs, per registered method.
VARIANTS: dict[str, tuple[str, bool]] = {
    "hinton": ("hinton", False),          # V1
    "fitnets": ("fitnets", False),
    "fusion": ("fusion", False),          # V2
    "fusion+feedback": ("fusion", True),  # V3, the paper's method
}


def _variant_configs(variant: str, settings: Mapping) -> tuple[DistillationLossConfig, FeedbackConfig | None, dict]:
    """The loss and feedback configurations and the student overrides of a method's settings."""
    preset, with_feedback = VARIANTS[variant]
    allowed = set(LOSS_OPTIONS) | (set(FEEDBACK_OPTIONS) if with_feedback else set())
    student = {k[len("student_"):]: v for k, v in settings.items() if k.startswith("student_")}
    unknown = sorted(k for k in settings if k not in allowed and not k.startswith("student_"))
    if unknown:
        raise ValueError(f"method {variant!r}: unknown option(s) {unknown}; expected any of "
                         f"{sorted(allowed)} or student_<model field>")
    loss = replace(DistillationLossConfig.preset(preset), **{k: settings[k] for k in LOSS_OPTIONS if k in settings})
    feedback = None
    if with_feedback:
        feedback = FeedbackConfig(**{k: settings[k] for k in FEEDBACK_OPTIONS if k in settings})
    return loss, feedback, student


def distill_variant(variant: str, cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path):
    """Run one distillation variant for a cell (the body of the registered methods).

    The student is :func:`~mkdbook.models.build_model` ``("student")``,
    seeded by the cell, with the cell's ``student_<field>`` options as
    configuration overrides; ``out_dir`` receives the resumable checkpoints,
    ``scaler.pt`` (the student's standardisation) and ``teacher_final.pt``
    (the teacher's weights after distillation).
    """
    from mkdbook.experiments import MethodResult
    from mkdbook.models import build_model

    loss, feedback, overrides = _variant_configs(variant, cell.settings)
    student = build_model("student", n_times=data.signals.shape[-1], sfreq=data.sfreq, seed=cell.seed,
                          **overrides)
    distiller = Distiller(student, teacher.model, teacher.scaler, cell.train, out_dir,
                          loss=loss, feedback=feedback)
    result = distiller.fit(data, split, cell.target)
    out_dir = Path(out_dir)
    for name, state in (("scaler.pt", distiller.scaler.state_dict()),
                        ("teacher_final.pt", {"model": distiller.teacher.state_dict()})):
        write_atomically(out_dir / name, lambda stream, state=state: torch.save(state, stream))
    return MethodResult(result, extra=distiller.summary())


def _register() -> None:
    from mkdbook.experiments import METHODS, register_method

    for variant in VARIANTS:
        if variant in METHODS:  # a re-import of this module must not register twice
            continue
        register_method(variant, needs_teacher=True)(partial(distill_variant, variant))


_register()


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _distill_command(args: argparse.Namespace) -> int:
    from mkdbook.cli import _n_folds
    from mkdbook.data import load_segments
    from mkdbook.experiments import METHODS, Cell, fingerprint_data, trained_network
    from mkdbook.splits import make_split

    settings = {name: getattr(args, name) for name in ("every", "alpha", "teacher_lr")
                if getattr(args, name) is not None}
    if settings and not VARIANTS[args.variant][1]:
        raise ValueError(f"--every, --alpha and --teacher-lr apply to --variant fusion+feedback, "
                         f"not to {args.variant!r}")
    data = load_segments(args.deap_dir, progress=not args.quiet)
    n_folds = _n_folds(args, data)
    split = make_split(data, args.split, fold=args.fold, n_folds=n_folds, seed=args.seed)
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, patience=args.patience,
                        seed=args.seed, device=args.device, progress=False)
    identity = dict(split_kind=args.split, n_folds=n_folds, train=train, segments=data.config,
                    data_source=data.source, data_fingerprint=fingerprint_data(data))
    teacher_cell = Cell("teacher", args.target, args.fold, args.seed, **identity)
    cell = Cell(args.variant, args.target, args.fold, args.seed, **identity,
                options=tuple(sorted(settings.items())), teacher=teacher_cell)
    print(f"teacher: {teacher_cell.describe()} (from the results cache, trained if missing)")
    teacher = trained_network(teacher_cell, data, split)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    student_train = replace(train, progress=not args.quiet)
    output = METHODS[args.variant].run(replace(cell, train=student_train), data, split, teacher, out)
    config = {"method": args.variant, "target": args.target, "data": data.source,
              "train": asdict(student_train), "teacher_cell": asdict(teacher_cell)}
    write_metrics(output.train, split, config, out / "metrics.json", extra=output.extra)
    extra = output.extra
    print(f"{args.variant} on {args.target}, {split.describe()}")
    print(f"student test accuracy {output.train.test.accuracy:.3f}, macro-F1 {output.train.test.f1:.3f} "
          f"(best epoch {output.train.best_epoch})")
    print(f"teacher validation accuracy {extra['teacher_before']['accuracy']:.3f} before, "
          f"{extra['teacher_after']['accuracy']:.3f} after ({len(extra['feedback_log'])} feedback phases)")
    print(f"wrote {out / 'metrics.json'}")
    return 0


def add_distill_command(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``mkdbook distill DEAP_DIR --target T --variant V ... --out DIR`` to a sub-command set.

    The teacher of the fold is taken from the results cache of
    :mod:`mkdbook.experiments` (trained there first when missing, with the
    same training arguments); the student is distilled in ``--out``
    (resumable) and ``metrics.json`` there holds the student's scores as
    ``mkdbook train`` writes them, plus ``teacher_before``/``teacher_after``
    (validation scores) and ``feedback_log`` (per phase: both gradient norms,
    the teacher's validation-batch CE, the time taken).

    Returns
    -------
    argparse.ArgumentParser
        The sub-command's parser; its ``run`` default is the command.
    """
    from mkdbook.cli import _add_train_arguments

    parser = subparsers.add_parser("distill", help="distil the fold's teacher into an EOG-only student")
    _add_train_arguments(parser)
    parser.add_argument("--variant", default="fusion+feedback", choices=tuple(VARIANTS),
                        help="hinton (V1), fitnets, fusion (V2) or fusion+feedback (V3, default)")
    parser.add_argument("--every", type=int, default=None, metavar="K",
                        help="teaching steps between feedback phases (default 10)")
    parser.add_argument("--alpha", type=float, default=None, help="pilot step size (default 1e-2)")
    parser.add_argument("--teacher-lr", type=float, default=None, help="teacher's Adam rate (default 1e-4)")
    parser.set_defaults(run=_distill_command)
    return parser
