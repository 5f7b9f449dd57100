"""The distillation baselines of the paper's comparison: FitNets, EmotionKD and a conditional GAN.

Zhang & Lu (2025) compare their distilled EOG student with, among others,
FitNets (Romero et al., 2015), EmotionKD (Liu, Jia & Wang, 2023) and a
"CGAN" cross-modal transfer baseline after Yan, Zhao & Lu (2021). The paper
specifies none of them; each module follows its source (for EmotionKD, the
authors' released code) and says what comes from where and what is our
decision.

All train with :class:`~mkdbook.distillation.teacher_student.TeacherStudentTrainer`, as
the paper's own method does: the same seeded batch order, the same
best-validation selection and resume machinery, and the same input path (the
student receives only EOG; EEG is read for the teacher during training and
never at evaluation). The teacher is frozen in FitNets and the CGAN;
EmotionKD updates it by its own feedback loss.

:mod:`mkdbook.distillation.baselines.fitnets`
    :class:`HintTrainer` (stage 1) then a Hinton distiller (stage 2), run by :func:`run_fitnets`.
:mod:`mkdbook.distillation.baselines.cgan`
    :class:`CGANTrainer`, run by :func:`run_cgan`.
:mod:`mkdbook.distillation.baselines.emotionkd`
    :class:`EmotionKDStudent` and :class:`EmotionKDTrainer`, run by :func:`run_emotionkd`.
"""

from mkdbook.distillation.baselines.cgan import CGANConfig, CGANStudent, CGANTrainer, ConditionalDiscriminator, run_cgan
from mkdbook.distillation.baselines.emotionkd import (
    EMOTIONKD_LOSS,
    EMOTIONKD_OPTIONS,
    DepthFusion,
    EmotionKDConfig,
    EmotionKDStudent,
    EmotionKDTrainer,
    run_emotionkd,
)
from mkdbook.distillation.baselines.fitnets import FITNETS_OPTIONS, FitNetsConfig, HintTrainer, run_fitnets

__all__ = [
    "EMOTIONKD_LOSS",
    "EMOTIONKD_OPTIONS",
    "FITNETS_OPTIONS",
    "CGANConfig",
    "CGANStudent",
    "CGANTrainer",
    "ConditionalDiscriminator",
    "DepthFusion",
    "EmotionKDConfig",
    "EmotionKDStudent",
    "EmotionKDTrainer",
    "FitNetsConfig",
    "HintTrainer",
    "run_cgan",
    "run_emotionkd",
    "run_fitnets",
]
