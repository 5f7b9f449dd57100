"""Knowledge distillation: the losses, the teacher-student trainer, teaching, feedback and the baselines.

Taught in chapters 5 (distillation) and 6 (feedback); the baselines in chapter 8.

:mod:`~mkdbook.distillation.losses`
    Cross-entropy, soft-logit KL and projected feature MSE.
:mod:`~mkdbook.distillation.teacher_student`
    One trainer for every method that learns from a trained teacher.
:mod:`~mkdbook.distillation.teacher_outputs`
    A fixed teacher's outputs, computed once and looked up by segment.
:mod:`~mkdbook.distillation.teaching`
    The teaching phase: a fixed teacher, a student that learns.
:mod:`~mkdbook.distillation.feedback`
    The feedback phase, in which the teacher learns from the student, and its fit loop.
:mod:`~mkdbook.distillation.baselines`
    FitNets, EmotionKD and a conditional GAN.
"""
