"""Two cross-modal baselines of the paper's comparison: a conditional GAN and EmotionKD.

Zhang & Lu (2025) compare their distilled EOG student with, among others, a
"CGAN" cross-modal transfer baseline and EmotionKD (Liu, Jia & Wang, 2023).
Neither is specified in the paper; both are reconstructed here, and each
module says what comes from a source and what is our decision.

Both train with :class:`~mkdbook.teacher_student.TeacherStudentTrainer`, as
the paper's own method does: the same seeded batch order, the same
best-validation selection and resume machinery, and the same input path (the
student receives only EOG; EEG is read for the frozen teacher during training
and never at evaluation). The teacher is frozen in both.

:mod:`mkdbook.baselines.cgan`
    :class:`CGANTrainer`, run by :func:`run_cgan`.
:mod:`mkdbook.baselines.emotionkd`
    :class:`EmotionKDTrainer`, run by :func:`run_emotionkd`.
"""

from mkdbook.baselines.cgan import CGANConfig, CGANStudent, CGANTrainer, ConditionalDiscriminator, run_cgan
from mkdbook.baselines.emotionkd import EMOTIONKD_OPTIONS, EmotionKDTrainer, run_emotionkd

__all__ = [
    "EMOTIONKD_OPTIONS",
    "CGANConfig",
    "CGANStudent",
    "CGANTrainer",
    "ConditionalDiscriminator",
    "EmotionKDTrainer",
    "run_cgan",
    "run_emotionkd",
]
