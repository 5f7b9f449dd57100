"""The FitNets baseline, in its two stages (Romero et al., 2015).

FitNets trains a student in two stages (their Algorithm 1):

1. **Hint training.** The student's layers up to a *guided* layer, plus a
   regressor on top of it, are trained so that the regressed guided layer
   predicts the teacher's *hint* layer: :math:`\\min \\tfrac12 \\| u_h(x) -
   r(v_g(x)) \\|^2`. Nothing above the guided layer moves.
2. **Knowledge distillation.** Starting from those weights, the whole
   student is trained on the labels and the teacher's softened outputs,
   :math:`\\mathrm{CE}(y, P_S) + \\lambda\\, H(P_T^\\tau, P_S^\\tau)` (Hinton
   et al., 2015).

Here (:func:`run_fitnets`):

* the guided layer is the student's middle encoder layer (tap ``"x2"``,
  layer 2 of 3) and the hint layer the teacher's EEG stream at its middle
  tap (``"eeg_1"``, layer 2 of 3): Romero et al. take the middle layers of
  both networks, and of the teacher's two streams the EEG one holds what the
  EOG student cannot see; both are options (:class:`FitNetsConfig`);
* the regressor is a learned linear map
  (:class:`~mkdbook.distillation.losses.FeatureProjector`), not a convolution, since our
  taps are vectors; the squared error is averaged, not summed and halved,
  which only rescales the step;
* stage 1 runs ``hint_epochs`` epochs (a quarter of the cell's epochs by
  default, our choice) and keeps its last weights: no validation label
  chooses anything in it;
* stage 2 is the ``hinton`` distiller (:class:`~mkdbook.distillation.teaching.Distiller`)
  with the KL weight fixed at ``kl`` and temperature ``temperature``
  (default 4, our choice); Romero et al. anneal the soft-target weight
  during training, which we do not.

Works cited:

* A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta and Y. Bengio, "FitNets:
  Hints for Thin Deep Nets," ICLR 2015.
* G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a Neural Network,"
  arXiv:1503.02531, 2015.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mkdbook.core.checks import check_int, check_number
from mkdbook.core.seeding import seeded
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector, feature_mse
from mkdbook.distillation.teacher_student import TeacherStudentTrainer, feature_of, output_width
from mkdbook.distillation.teaching import Distiller, finish_distillation
from mkdbook.models import build_model
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import Split
from mkdbook.training.checkpoints import load_checkpoint, save_checkpoint
from mkdbook.training.run_identity import identity_differences, run_identity
from mkdbook.training.runs import MethodResult
from mkdbook.training.standardisation import ChannelScaler
from mkdbook.training.trainer import TrainConfig, Trainer

__all__ = ["FITNETS_OPTIONS", "FitNetsConfig", "HintTrainer", "run_fitnets"]


@dataclass(frozen=True)
class FitNetsConfig:
    """Settings of the two FitNets stages; every default is our choice.

    Attributes
    ----------
    guided : str, default "x2"
        The student's guided layer (a tap of :class:`~mkdbook.models.Student`).
    hint : str, default "eeg_1"
        The teacher's hint layer (a tap of :class:`~mkdbook.models.Teacher`,
        or ``"features"`` for IMF).
    hint_epochs : int or None, default None
        Epochs of stage 1; ``None``: a quarter of the cell's epochs, at least one.
    temperature : float, default 4.0
        Softening temperature of stage 2.
    kl : float, default 1.0
        Weight of the soft-target term in stage 2 (the cross-entropy's is 1).
    """

    guided: str = "x2"
    hint: str = "eeg_1"
    hint_epochs: int | None = None
    temperature: float = 4.0
    kl: float = 1.0

    def __post_init__(self) -> None:
        if self.hint_epochs is not None:
            check_int("hint_epochs", self.hint_epochs, 1)
        check_number("temperature", self.temperature, 0.0, strict=True)
        check_number("kl", self.kl, 0.0)

    def epochs_of_stage_1(self, cell_epochs: int) -> int:
        """Stage 1's epochs for a cell trained ``cell_epochs`` epochs."""
        return self.hint_epochs if self.hint_epochs is not None else max(1, cell_epochs // 4)


#: Options of a FitNets cell besides ``student_<field>`` overrides of the student network.
FITNETS_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(FitNetsConfig))


class HintTrainer(TeacherStudentTrainer):
    """Stage 1 of FitNets: regress the teacher's hint layer from the student's guided layer.

    The loss is the mean squared error between ``projector(guided)`` and the
    teacher's ``hint`` feature, nothing else, so only the parameters that
    compute the guided layer (and the regressor) receive a gradient; the
    optimiser skips every other parameter. :meth:`fit_hints` runs a fixed
    number of epochs and keeps the last weights.

    Parameters
    ----------
    student, teacher, teacher_scaler, config, out_dir
        As for :class:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer`
        (``out_dir`` receives ``hints.pt``, stage 1's result).
    guided, hint : str
        The features compared (:func:`~mkdbook.distillation.teacher_student.feature_of`).
    projector : FeatureProjector
        The regressor, from the guided layer's width to the hint's.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, teacher_scaler: ChannelScaler,
                 config: TrainConfig, out_dir: Path, *, guided: str, hint: str,
                 projector: FeatureProjector) -> None:
        super().__init__(student, teacher, teacher_scaler, config, out_dir, loss=None,
                         student_feature=guided, teacher_feature=hint, projector=projector)
        self.teacher.requires_grad_(False)

    def get_loss(self, output: ModelOutput, y: Tensor, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The hint loss ``MSE(r(guided), hint)`` (logged as ``loss`` and ``hint``)."""
        hint = feature_of(self.teacher_output(batch), self.teacher_feature)
        loss = feature_mse(self.projector(feature_of(output, self.student_feature)), hint)
        return {"loss": loss, "hint": loss}

    def identity_extras(self) -> dict:
        """The features compared and the teacher."""
        return {"features": [self.student_feature, self.teacher_feature],
                "teacher": super().identity_extras()["teacher"], "stage": "hints"}

    def fit_hints(self, data: SegmentSet, split: Split, target: str) -> list[dict[str, float]]:
        """Train ``config.epochs`` epochs on the hint loss, or load ``hints.pt`` of this run.

        An unverified ``hints.pt`` (its checksum missing or not matching,
        :mod:`mkdbook.training.checkpoints`) is never loaded: stage 1 is
        trained again, with a warning.

        Returns the history (one row per epoch: ``epoch``, ``train_hint``).

        Raises
        ------
        ValueError
            If ``hints.pt`` was written by another run.
        """
        self.identity = {**run_identity(self.model, data, split, target, self.config.identity()),
                         **self.identity_extras()}
        self.scaler = ChannelScaler.fit(data, split.train, self.train_modalities, seed=self.config.seed)
        path = self.out_dir / "hints.pt"
        state = load_checkpoint(path, self.device, redo="training the hint stage again")
        if state is not None:
            differ = identity_differences(state.get("identity") or {}, self.identity)
            if differ:
                raise ValueError(f"{path}: written by another run ({', '.join(differ)} differ); "
                                 f"use a new output folder or delete this one")
            self.model.load_state_dict(state["model"])
            return state["history"]
        history = []
        for epoch in range(1, self.config.epochs + 1):
            row = self.train_epoch(data, split, target, epoch)
            history.append({"epoch": epoch, "train_hint": row["train_hint"]})
        self.out_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(path, {"model": self.model.state_dict(), "identity": self.identity, "history": history})
        return history


class _KDStage(Distiller):
    """Stage 2: a Hinton-KD distiller whose identity includes stage 1's settings."""

    def __init__(self, *args: Any, fitnets: FitNetsConfig, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fitnets = fitnets

    def identity_extras(self) -> dict:
        """The distiller's identity and the FitNets settings (stage 1 decides stage 2's start)."""
        return {**super().identity_extras(), "fitnets": asdict(self.fitnets)}


def run_fitnets(cell, data: SegmentSet, split: Split, teacher: Trainer, out_dir: Path) -> MethodResult:
    """FitNets on one cell: hint training, then KD training of the whole student (a method's run function).

    The cell's options are fields of :class:`FitNetsConfig` and
    ``student_<field>`` overrides of the student network
    (:func:`~mkdbook.models.build_model` ``("student")``). ``out_dir``
    receives ``hints.pt`` (stage 1) and stage 2's resumable checkpoints,
    ``scaler.pt`` and ``teacher_final.pt``; the result's ``extra`` holds the
    distiller's summary, the settings (``fitnets``) and stage 1's history
    (``hint_history``).
    """
    settings = cell.settings
    unknown = sorted(k for k in settings if k not in FITNETS_OPTIONS and not k.startswith("student_"))
    if unknown:
        raise ValueError(f"method {cell.method!r}: unknown option(s) {unknown}; expected any of "
                         f"{sorted(FITNETS_OPTIONS)} or student_<model field>")
    config = FitNetsConfig(**{k: v for k, v in settings.items() if k in FITNETS_OPTIONS})
    overrides = {k[len("student_"):]: v for k, v in settings.items() if k.startswith("student_")}
    student = build_model("student", **data.model_inputs(), seed=cell.seed, **overrides)
    widths = (output_width(student, config.guided, data, split.train),
              output_width(teacher.model, config.hint, data, split.train))
    with seeded(cell.seed * 7919 + 5):
        projector = FeatureProjector(*widths)
    stage_1 = replace(cell.train, epochs=config.epochs_of_stage_1(cell.train.epochs))
    hints = HintTrainer(student, teacher.model, teacher.scaler, stage_1, Path(out_dir),
                        guided=config.guided, hint=config.hint, projector=projector)
    hint_history = hints.fit_hints(data, split, cell.target)
    loss = DistillationLossConfig(ce=1.0, kl=config.kl, mse=0.0, temperature=config.temperature)
    distiller = _KDStage(student, teacher.model, teacher.scaler, cell.train, out_dir, loss=loss, fitnets=config)
    output = finish_distillation(distiller, distiller.fit(data, split, cell.target), out_dir)
    return MethodResult(output.train, {**output.extra, "fitnets": asdict(config), "hint_history": hint_history})
