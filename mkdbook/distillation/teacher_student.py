"""One trainer for every method that learns from a trained teacher.

:class:`TeacherStudentTrainer` is a :class:`~mkdbook.training.trainer.Trainer` whose
model is the *student* and whose loss also reads a fixed *teacher*: the
paper's teaching phase (:class:`mkdbook.distillation.teaching.Distiller`), its feedback
variant (:class:`mkdbook.distillation.feedback.FeedbackDistiller`), and the EmotionKD and
CGAN baselines (:mod:`mkdbook.distillation.baselines`) all subclass it and differ only in
their loss (:meth:`TeacherStudentTrainer.get_loss`) or, for the GAN, their step.

One input path for the teacher
------------------------------
Training batches are read once, with the union of both networks'
modalities, and standardised once with the trainer's own scaler (fitted on
the training segments, like every trainer's). The student receives only its
own modalities, so no EEG can reach it, and evaluation (validation, test)
does not even read EEG from disk. The teacher receives the same batch
through :class:`Restandardise`, which maps it exactly to the standardisation
the teacher was trained with; when both scalers come from the same split and
seed (every grid cell) the map is the identity, bit for bit.

A fixed teacher runs once
-------------------------
When the teacher does not change during training (:attr:`TeacherStudentTrainer.teacher_fixed`;
all methods but the feedback variant), :meth:`TeacherStudentTrainer.fit`
computes its outputs on the training segments once, in evaluation mode and
in its own standardisation (:mod:`mkdbook.distillation.teacher_outputs`, stored in
``teacher_outputs_folder`` when given), and every training step looks its
batch up there instead of running the teacher.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from mkdbook.core.seeding import seeded
from mkdbook.data.segments import TRIAL_ID, SegmentSet
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector, student_loss
from mkdbook.distillation.teacher_outputs import TeacherOutputs, teacher_outputs
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.run_identity import describe_network
from mkdbook.training.trainer import (
    ChannelScaler,
    Scores,
    TrainConfig,
    Trainer,
    TrainResult,
    make_adam,
    predict,
    score,
)

__all__ = ["Restandardise", "TeacherStudentTrainer", "feature_of", "n_classes_of", "output_width"]


class Restandardise(nn.Module):
    """Run a network on inputs standardised for another network.

    A batch standardised as :math:`x_s = (x - m_s) / s_s` is mapped, per
    row and channel, to the standardisation the wrapped network was trained
    with, :math:`x_t = (x - m_t) / s_t = x_s \\, s_s / s_t + (m_s - m_t) / s_t`:
    an exact affine map, the identity when both scalers agree. The statistics
    of each row are those its scaler gives that row's subject or trial
    (:meth:`~mkdbook.training.standardisation.ChannelScaler.statistics`), so a teacher trained
    with one standardisation and a student trained with another each see
    their own.

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
        # Plain attributes, not buffers: they must not enter the wrapped network's state_dict.
        self.source, self.target = source, target

    def forward(self, batch: dict[str, Tensor]) -> ModelOutput:  # noqa: D102
        ids = batch.get(TRIAL_ID)
        inputs = {}
        for m in self.modalities:
            x = batch[m]
            mean_s, std_s = (v.to(x.device) for v in self.source.statistics(m, ids))
            mean_t, std_t = (v.to(x.device) for v in self.target.statistics(m, ids))
            inputs[m] = x * (std_s / std_t) + (mean_s - mean_t) / std_t
        return self.network(inputs)


def feature_of(output: ModelOutput, name: str) -> Tensor:
    """The feature called ``name`` of a network output.

    ``"features"`` is :attr:`ModelOutput.features` (the teacher's IMF, the
    student's HDF); any other name is a key of :attr:`ModelOutput.taps`.
    """
    if name == "features":
        if output.features is None:
            raise ValueError("the network returns no fused features (features=None); "
                             f"name one of its taps instead: {sorted(output.taps)}")
        return output.features
    if name not in output.taps:
        raise ValueError(f"feature {name!r} is neither 'features' nor a tap of the network; "
                         f"taps: {sorted(output.taps)}")
    return output.taps[name]


def n_classes_of(network: nn.Module) -> int:
    """Classes a network predicts: the width of its ``classifier`` head (2 when it has none)."""
    head = getattr(network, "classifier", None)
    return int(head.out_features) if isinstance(head, nn.Linear) else 2


@torch.no_grad()
def output_width(network: nn.Module, feature: str, data: SegmentSet, index: np.ndarray) -> int:
    """Width of a network's feature ``feature``, read off one eval-mode pass on two segments.

    The one way the package finds feature widths: whatever the network and
    its configuration, the width is what the forward pass produces.
    """
    rows = np.sort(np.asarray(index)[:2])
    device = next(network.parameters()).device
    arrays = data.batch(rows, tuple(network.modalities))
    batch = {k: torch.from_numpy(arrays[k]).to(device) for k in network.modalities}
    was_training = network.training
    network.eval()
    try:
        return int(feature_of(network(batch), feature).shape[1])
    finally:
        network.train(was_training)


class TeacherStudentTrainer(Trainer):
    """Train a student with a trained teacher beside it.

    Its default loss is the student objective :math:`L_S`
    (:func:`mkdbook.distillation.losses.student_loss`) between chosen features of the two
    networks; checkpoints, early stopping on the student's validation score
    (``TrainConfig.select``), the final test scores and resume all come from
    :class:`~mkdbook.training.trainer.Trainer`.

    Parameters
    ----------
    student : nn.Module
        The network trained (EOG only); returns logits and features.
    teacher : nn.Module
        The trained teacher (EEG + EOG); moved to the student's device and
        put in eval mode. Teaching never changes it.
    teacher_scaler : ChannelScaler
        The input standardisation the teacher was trained with.
    config : TrainConfig
    out_dir : path-like, optional
        Checkpoint folder; a ``last.pt`` there is resumed with every part.
    loss : DistillationLossConfig or None, default the paper's 1:1:1
        ``None`` for a subclass with a training step of its own (the GAN).
    student_feature, teacher_feature : str, default "features"
        Which output of each network the feature term compares
        (:func:`feature_of`: ``"features"`` or a tap name).
    projector : FeatureProjector, optional
        Student-side regressor for the feature term. When omitted and the
        term has a positive weight, :meth:`fit` builds one from the two
        widths (:func:`output_width`), seeded by ``projector_seed``.
    projector_seed : int, optional
        Seed of that projector; ``config.seed`` by default.
    teacher_outputs_folder : path-like, optional
        Where the fixed teacher's outputs on the training segments are
        stored and shared with other students (the teacher's cell folder);
        without it they are computed once per :meth:`fit` and kept in memory.

    Attributes
    ----------
    teacher : nn.Module
    teacher_scaler : ChannelScaler
    projector : FeatureProjector or None
    teacher_fixed : bool
        Whether the teacher stays as it is during training (class attribute,
        ``True``); a subclass that updates it sets ``False``, and the
        teacher then runs on every batch.
    """

    teacher_fixed: ClassVar[bool] = True

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_scaler: ChannelScaler,
                 config: TrainConfig = TrainConfig(), out_dir: Path | str | None = None, *,
                 loss: DistillationLossConfig | None = DistillationLossConfig(),
                 student_feature: str = "features", teacher_feature: str = "features",
                 projector: FeatureProjector | None = None, projector_seed: int | None = None,
                 teacher_outputs_folder: Path | str | None = None) -> None:
        self.projector = projector
        self.loss_config = loss
        self.student_feature = student_feature
        self.teacher_feature = teacher_feature
        self.projector_seed = config.seed if projector_seed is None else projector_seed
        super().__init__(student, config, out_dir)
        self.teacher = teacher.to(self.device).eval()
        self.teacher_scaler = teacher_scaler
        self.train_modalities = tuple(dict.fromkeys(self.modalities + tuple(teacher.modalities)))
        if self.projector is not None:
            self._attach_projector()
        self._teacher_input: tuple[ChannelScaler, Restandardise] | None = None
        self.teacher_outputs_folder = teacher_outputs_folder
        self._stored: TeacherOutputs | None = None
        self._reading: _RowsRead | None = None

    def _attach_projector(self) -> None:
        self.projector.to(self.device)
        self.add_part("projector", self.projector)
        # The projector belongs to the student: one optimiser over both.
        self.optimizer = self.make_optimizer()

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam over the student's trainable parameters and the projector's."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.projector is not None:
            params += list(self.projector.parameters())
        return make_adam(params, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def identity_extras(self) -> dict:
        """The loss, the features it compares and the teacher: part of the run's identity."""
        return {"loss": asdict(self.loss_config) if self.loss_config is not None else None,
                "features": [self.student_feature, self.teacher_feature],
                "teacher": describe_network(self.teacher)}

    # -- the teacher's side ------------------------------------------------------------
    def teacher_input(self) -> Restandardise:
        """The teacher, fed from batches in this trainer's standardisation (:class:`Restandardise`)."""
        if self._teacher_input is None or self._teacher_input[0] is not self.scaler:
            self._teacher_input = (self.scaler, Restandardise(self.teacher, self.scaler, self.teacher_scaler))
        return self._teacher_input[1]

    @torch.no_grad()
    def teacher_output(self, batch: dict[str, Tensor]) -> ModelOutput:
        """The teacher's output on a training batch, in eval mode and without gradient.

        Looked up among the outputs :meth:`fit` stored when the teacher is
        fixed and the batch is one that :meth:`train_epoch` read; computed otherwise.
        """
        rows = self._reading.rows if self._reading is not None else None
        if self._stored is not None and rows is not None:
            if len(rows) != len(next(iter(batch.values()))):
                raise RuntimeError("the batch is not the one last read from the training segments")
            return self._stored.lookup(rows)
        teacher = self.teacher_input()
        was_training = teacher.training
        teacher.eval()
        try:
            return teacher(batch)
        finally:
            teacher.train(was_training)

    def teacher_predict(self, data: SegmentSet, index: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
        """The teacher's class probabilities and the labels of ``index`` (:func:`~mkdbook.training.trainer.predict`)."""
        return predict(self.teacher, self.teacher_scaler, data, index, target,
                       batch_size=self.config.eval_batch_size, device=self.device)

    def teacher_scores(self, data: SegmentSet, index: np.ndarray, target: str) -> Scores:
        """The teacher's :class:`~mkdbook.training.trainer.Scores` on ``index``."""
        return score(*self.teacher_predict(data, index, target), prior=self.prior)

    # -- the loss ----------------------------------------------------------------------
    def get_loss(self, output: ModelOutput, y: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """:math:`L_S` between the chosen features, with its unweighted terms ``ce``, ``kl``, ``mse``."""
        teacher_out = self.teacher_output(batch)
        terms = student_loss(
            ModelOutput(output.logits, feature_of(output, self.student_feature) if self.projector else None),
            ModelOutput(teacher_out.logits,
                        feature_of(teacher_out, self.teacher_feature) if self.projector else None),
            y, self.projector, self.loss_config)
        values = {"loss": terms.total, "ce": terms.ce, "kl": terms.kl, "mse": terms.mse}
        return {k: v for k, v in values.items() if v is not None}

    def train_epoch(self, data: SegmentSet, split: Split, target: str, epoch: int) -> dict[str, float]:
        """The base epoch, noting which segments each batch holds (to look up stored teacher outputs)."""
        if self._stored is None:
            return super().train_epoch(data, split, target, epoch)
        self._reading = _RowsRead(data)
        try:
            return super().train_epoch(self._reading, split, target, epoch)
        finally:
            self._reading = None

    def fit(self, data: SegmentSet, split: Split, target: str) -> TrainResult:
        """Store a fixed teacher's outputs, build the projector when one is needed, then train.

        The projector's widths are read off the networks (:func:`output_width`).
        """
        self._stored = None
        if self.teacher_fixed:
            self._stored = teacher_outputs(self.teacher, self.teacher_scaler, data, split.train,
                                           self.teacher_feature, folder=self.teacher_outputs_folder,
                                           batch_size=self.config.eval_batch_size, device=self.device)
        if self.projector is None and self.loss_config is not None and self.loss_config.mse > 0:
            widths = (output_width(self.model, self.student_feature, data, split.train),
                      output_width(self.teacher, self.teacher_feature, data, split.train))
            with seeded(self.projector_seed):
                self.projector = FeatureProjector(*widths)
            self._attach_projector()
        return super().fit(data, split, target)


class _RowsRead:
    """A segment set that remembers which segments the last batch read from it holds.

    :meth:`~mkdbook.training.trainer.Trainer.train_epoch` reads every training batch with
    ``data.batch(rows, ...)`` just before its step, so during that step
    :attr:`rows` names the batch's segments, whatever order the trainer draws.
    """

    def __init__(self, data: SegmentSet) -> None:
        self._data = data
        self.rows: np.ndarray | None = None

    def batch(self, index: np.ndarray, modalities: tuple[str, ...]) -> dict[str, np.ndarray]:  # noqa: D102
        self.rows = np.asarray(index)
        return self._data.batch(index, modalities)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)
