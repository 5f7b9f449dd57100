"""The EmotionKD baseline (Liu, Jia & Wang, 2023): its student, its loss, its teacher-side feedback.

What we took from the authors' released code (TensorFlow, repository
``YuchengLiu-Alex/EmotionKD``, folder ``source_code``; read, neither used nor
copied), and what differs here:

Student encoder
    Released (``Buildmodel.py``, ``Transformer_model.py``): a convolutional
    GSR head, then three transformer blocks (64 wide, 8 heads), the output
    of every block kept. Here: our EOG stream (the teacher's design, front
    end and three encoder layers, 64 wide), the output of every layer kept.
Fusion of the three depths
    Released (``Attention.py``, ``MultiDepthFusion``): per depth a score
    ``softsign(BN(Dense(ReLU(BN(Dense(x))))))`` multiplies that depth's
    tokens element-wise; the three products are summed, then flattened.
    Here: the same form (:class:`DepthFusion`).
Classifier
    Released (``BasicModule.py``): dropout 0.5, three dense layers of 128
    without activation, a dense layer to the classes. Here: the same.
Student loss
    Released (``Distill_zoo.py``, ``MLKDLoss``): e1 CE + e2 KL to the
    teacher's soft labels + e3 MSE between a teacher and a student feature;
    ``Buildmodel.py`` sets e1 : e2 : e3 = 1 : 0.1 : 1 for its "final
    training". Here: the same weights (:data:`EMOTIONKD_LOSS`), the KL at
    temperature 1 as there.
Features matched
    Released: the teacher's fused (IMF) output and the student's fused
    depths, both flattened; how their widths agree is not in the release.
    Here: the teacher's IMF and the student's fused depths, through a
    learned linear regressor on the student side
    (:class:`~mkdbook.distillation.losses.FeatureProjector`).
Teacher-side feedback
    Released (``Distill_zoo.py``, ``feedback_Loss``): e1 CE(y, teacher) +
    e2 CE(y, student prediction), e1 = e2 = 1, the student's prediction
    entering the layer as an input. Here: the same loss and weights.
Schedule of the feedback
    Not released (there is no training script). Here, our choice: one
    teacher step after every teaching step, on the same training batch, with
    Adam at the proposed method's teacher learning rate.

Because the student's cross-entropy enters the released feedback loss as an
input tensor, it contributes a value but no gradient to the teacher: as
released, the teacher is fine-tuned on its own cross-entropy while the
student learns from it. We reproduce that and log both terms. The proposed
method's feedback (:mod:`mkdbook.distillation.feedback`) differs: its student term
reaches the teacher through a pilot step of the student.

Works cited:

* Y. Liu, Z. Jia and H. Wang, "EmotionKD: A Cross-Modal Knowledge Distillation Framework
  for Emotion Recognition Based on Physiological Signals," ACM Multimedia 2023, pp.
  6122-6131.
* Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion Recognition," Brain
  Sciences 15(7):707, 2025.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdbook.core.checks import check_int, check_number
from mkdbook.core.seeding import seeded
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.feedback import FeedbackConfig
from mkdbook.distillation.losses import DistillationLossConfig
from mkdbook.distillation.teacher_outputs import teacher_outputs_dir
from mkdbook.distillation.teacher_student import TeacherStudentTrainer, n_classes_of
from mkdbook.models.base import Network
from mkdbook.models.encoder import ModalityStream, StreamConfig
from mkdbook.models.frontend import FrontEndConfig
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.runs import MethodResult
from mkdbook.training.trainer import TrainConfig, Trainer, TrainResult, make_adam

__all__ = ["EMOTIONKD_LOSS", "EMOTIONKD_OPTIONS", "DepthFusion", "EmotionKDConfig", "EmotionKDStudent",
           "EmotionKDTrainer", "run_emotionkd"]

#: The released code's "final training" weights, CE : KL : MSE = 1 : 0.1 : 1.
EMOTIONKD_LOSS = DistillationLossConfig(ce=1.0, kl=0.1, mse=1.0)


class DepthFusion(nn.Module):
    """EmotionKD's fusion of encoder depths: gate each depth's tokens, then sum.

    For depth ``k`` a score block ``s_k(x) = softsign(BN(W2 ReLU(BN(W1 x))))``
    reads every token and the depth contributes ``s_k(x_k) * x_k``
    (element-wise); the output is the sum over depths, one token sequence.
    The softsign lets a score be negative, unlike the sigmoid of the
    paper's HDF (:class:`~mkdbook.models.fusion.GatedExtractor`).

    Parameters
    ----------
    n_depths : int
    width : int
        Token width (the score block is ``width`` -> ``width`` -> ``width``).
    """

    def __init__(self, n_depths: int, width: int) -> None:
        super().__init__()
        self.scores = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(),
                          nn.Linear(width, width), nn.BatchNorm1d(width), nn.Softsign())
            for _ in range(n_depths))

    def forward(self, depths: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Fuse ``(B, N, width)`` token sequences; return the fused sequence and each depth's scores."""
        if len(depths) != len(self.scores):
            raise ValueError(f"expected {len(self.scores)} depths, got {len(depths)}")
        # Batch normalisation over every token of the batch, as Keras normalises the last axis.
        scores = [block(x.flatten(0, 1)).view_as(x) for block, x in zip(self.scores, depths)]
        return torch.stack([s * x for s, x in zip(scores, depths)]).sum(dim=0), scores


@dataclass(frozen=True)
class EmotionKDConfig:
    """Hyper-parameters of :class:`EmotionKDStudent`.

    Attributes
    ----------
    stream : StreamConfig
        The EOG stream; its ``depth`` layers are all fused. Defaults to the
        teacher's EOG stream (3 layers, as the released student's three
        transformer blocks).
    classifier_width : int, default 128
        Width of the classifier's three hidden dense layers (the release's).
    classifier_dropout : float, default 0.5
        Dropout before the classifier (the release's).
    """

    stream: StreamConfig = field(default_factory=StreamConfig)
    classifier_width: int = 128
    classifier_dropout: float = 0.5

    def __post_init__(self) -> None:
        check_int("classifier_width", self.classifier_width, 1)
        if not 0.0 <= check_number("classifier_dropout", self.classifier_dropout, 0.0) < 1.0:
            raise ValueError(f"classifier_dropout must be in [0, 1), got {self.classifier_dropout!r}")


class EmotionKDStudent(Network):
    """EmotionNet-Student rebuilt on our EOG stream: every encoder depth fused, flattened, classified.

    Parameters
    ----------
    %(network_parameters)s
    config : EmotionKDConfig

    Notes
    -----
    ``forward`` returns ``features`` = the flattened fused tokens,
    ``(B, n_tokens * d_model)``, the feature the distillation matches, and
    taps ``"score_k"`` (each depth's scores, ``(B, n_tokens, d_model)``).
    As in the release, the classifier's hidden layers have no activation.
    """

    modalities: ClassVar[tuple[str, ...]] = ("eog",)
    config_class: ClassVar[type] = EmotionKDConfig
    config: EmotionKDConfig

    def build(self) -> None:
        """Create the stream, the depth fusion and the classifier, in that order."""
        stream = self.config.stream
        self.stream = ModalityStream(self.n_channels["eog"], self.n_times, self.sfreq, stream)
        self.fusion = DepthFusion(stream.depth, stream.d_model)
        width, flat = self.config.classifier_width, self.stream.front_end.n_tokens * stream.d_model
        self.classifier = nn.Sequential(nn.Dropout(self.config.classifier_dropout), nn.Linear(flat, width),
                                        nn.Linear(width, width), nn.Linear(width, width),
                                        nn.Linear(width, self.n_classes))

    def forward(self, batch: Mapping[str, Tensor]) -> ModelOutput:
        """Classify ``{"eog": (B, 2, T)}``; other keys are ignored."""
        fused, scores = self.fusion(self.stream(batch["eog"]))
        features = fused.flatten(1)
        return ModelOutput(logits=self.classifier(features), features=features,
                           taps={f"score_{k}": s for k, s in enumerate(scores, start=1)})


class EmotionKDTrainer(TeacherStudentTrainer):
    """EmotionKD's distillation: :math:`L_S` at 1 : 0.1 : 1 and, optionally, its teacher-side feedback.

    Each training step is a teaching step of the student on
    :meth:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer.get_loss`
    (CE + 0.1 KL + MSE between the student's fused depths and the
    teacher's IMF, through a learned regressor). With ``feedback`` it is
    followed by one step of the teacher, in training mode, on the same batch::

        L_T = CE(y, f_T(x)) + feedback_weight * CE(y, f_S(x))

    with the student's prediction ``f_S(x)`` a constant, as in the released
    code, so the update is the teacher's own cross-entropy step (see the
    module docstring). The teacher and its optimiser are saved with every
    checkpoint. Without ``feedback`` the teacher stays frozen.

    Logged terms: ``loss``, ``ce``, ``kl``, ``mse`` and, with feedback,
    ``teacher_ce`` and ``feedback_loss`` (``L_T``).
    """

    def __init__(self, model: nn.Module, teacher: Trainer, config: TrainConfig = TrainConfig(),
                 out_dir: Path | str | None = None, loss: DistillationLossConfig = EMOTIONKD_LOSS, *,
                 feedback: bool = True, teacher_lr: float = FeedbackConfig().teacher_lr,
                 feedback_weight: float = 1.0, projector_seed: int | None = None) -> None:
        super().__init__(model, teacher.model, teacher.scaler, config, out_dir, loss=loss,
                         projector_seed=projector_seed)
        self.feedback = bool(feedback)
        # With feedback the teacher moves every step, so its outputs cannot be stored once.
        self.teacher_fixed = not self.feedback
        self.feedback_weight = check_number("feedback_weight", feedback_weight, 0.0)
        self.teacher_lr = check_number("teacher_lr", teacher_lr, 0.0, strict=True)
        self.teacher.requires_grad_(self.feedback)
        if self.feedback:
            self.teacher_optimizer = make_adam(self.teacher.parameters(), lr=self.teacher_lr)
            self.add_part("teacher", self.teacher)
            self.add_part("teacher_optimizer", self.teacher_optimizer)

    def identity_extras(self) -> dict:
        """The teacher-student identity and the feedback settings."""
        return {**super().identity_extras(), "emotionkd_feedback": {
            "feedback": self.feedback, "teacher_lr": self.teacher_lr, "weight": self.feedback_weight}}

    def train_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        """A teaching step; with feedback, then one step of the teacher on ``L_T``."""
        logged = super().train_step(batch, y)
        if self.feedback:
            logged.update(self._feedback_step(batch, y))
        return logged

    def _feedback_step(self, batch: dict[str, Tensor], y: Tensor) -> dict[str, float]:
        with torch.no_grad():
            self.model.eval()
            student_ce = F.cross_entropy(self.model({k: batch[k] for k in self.modalities}).logits, y)
        teacher = self.teacher_input()
        teacher.train()
        try:
            teacher_ce = F.cross_entropy(teacher(batch).logits, y)
        finally:
            teacher.eval()
        loss = teacher_ce + self.feedback_weight * student_ce
        self.teacher_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.teacher_optimizer.step()
        return {"teacher_ce": teacher_ce.item(), "feedback_loss": loss.item()}

    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Train (see :meth:`~mkdbook.training.trainer.Trainer.fit`), scoring the teacher on validation before and after."""
        self.teacher_before = self._teacher_summary(data, split, target)
        result = super().fit(data, split, target)
        self.teacher_after = self._teacher_summary(data, split, target)
        return result

    def _teacher_summary(self, data: SegmentSet, split: Split, target: str) -> dict[str, float]:
        scores = self.teacher_scores(data, split.val, target)
        return {"accuracy": scores.accuracy, "balanced_accuracy": scores.balanced_accuracy,
                "auc": scores.auc, "loss": scores.loss}


#: Options of an EmotionKD cell besides overrides of the student network.
EMOTIONKD_OPTIONS: tuple[str, ...] = (*(f.name for f in fields(DistillationLossConfig)),
                                      "feedback", "teacher_lr", "feedback_weight")


def run_emotionkd(cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path) -> MethodResult:
    """The EmotionKD baseline on one cell (a method's run function; see :class:`EmotionKDTrainer`).

    The cell's options are :data:`EMOTIONKD_OPTIONS` (loss weights default to
    :data:`EMOTIONKD_LOSS`, ``feedback`` to True); any other option overrides
    a field of :class:`EmotionKDConfig` or of its stream.
    """
    own: dict[str, Any] = {k: v for k, v in cell.settings.items() if k in EMOTIONKD_OPTIONS}
    overrides = {k: v for k, v in cell.settings.items() if k not in EMOTIONKD_OPTIONS}
    loss = DistillationLossConfig(**{**asdict(EMOTIONKD_LOSS),
                                     **{k: own[k] for k in asdict(EMOTIONKD_LOSS) if k in own}})
    student = _build_student(cell.seed, n_classes_of(teacher.model), data, overrides)
    trainer = EmotionKDTrainer(student, teacher, cell.train, out_dir, loss,
                               feedback=own.get("feedback", True),
                               teacher_lr=own.get("teacher_lr", FeedbackConfig().teacher_lr),
                               feedback_weight=own.get("feedback_weight", 1.0),
                               projector_seed=cell.seed * 7919 + 3)
    trainer.teacher_outputs_folder = teacher_outputs_dir(cell)
    result = trainer.fit(data, split, cell.target)
    trainer.save_scaler()
    return MethodResult(result, {"loss": asdict(loss), "feedback": trainer.feedback,
                                 "teacher_lr": trainer.teacher_lr, "feedback_weight": trainer.feedback_weight,
                                 "teacher_before": trainer.teacher_before,
                                 "teacher_after": trainer.teacher_after})


def _build_student(seed: int, n_classes: int, data: SegmentSet, overrides: Mapping[str, Any]) -> nn.Module:
    """The student, its configuration overridden field by field (front end, stream, head)."""
    front_fields = {f.name for f in fields(FrontEndConfig)}
    stream_fields = {f.name for f in fields(StreamConfig)} - {"front_end"}
    own_fields = {f.name for f in fields(EmotionKDConfig)} - {"stream"}
    unknown = sorted(set(overrides) - front_fields - stream_fields - own_fields)
    if unknown:
        raise ValueError(f"method 'emotionkd': unknown option(s) {unknown}; expected any of "
                         f"{sorted(EMOTIONKD_OPTIONS)} or a field of "
                         f"{sorted(front_fields | stream_fields | own_fields)}")

    def picked(names: set[str]) -> dict[str, Any]:
        return {k: v for k, v in overrides.items() if k in names}

    stream = StreamConfig(front_end=FrontEndConfig(**picked(front_fields)), **picked(stream_fields))
    config = EmotionKDConfig(stream, **picked(own_fields))
    inputs = data.model_inputs()
    with seeded(seed):
        return EmotionKDStudent(inputs["n_channels"], n_classes, inputs["n_times"], inputs["sfreq"], config)
