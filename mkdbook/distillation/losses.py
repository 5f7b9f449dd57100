"""Distillation losses: cross-entropy, soft-logit KL, projected feature MSE.

The student of Zhang & Lu (2025) minimises

.. math::

    L_S = \\lambda_1 \\, \\mathrm{CE}(y, f_S(x))
        + \\lambda_2 \\, \\mathrm{KL}(f_T(x) \\,\\|\\, f_S(x))
        + \\lambda_3 \\, \\mathrm{MSE}(P(F_S), F_T)

with :math:`\\lambda_1 : \\lambda_2 : \\lambda_3 = 1 : 1 : 1`, where :math:`f`
are class probabilities, :math:`F_S` the student's 256-d HDF features,
:math:`F_T` the teacher's 512-d IMF features and :math:`P` a learned linear
regressor that closes the width gap (:class:`FeatureProjector`).

The module keeps each ingredient a separate function so that every term can be
tested and logged on its own, and names three weightings of the same formula
(:class:`DistillationLossConfig`):

``"hinton"``
    CE + KL on softened logits only (Hinton et al., 2015); the paper's ablation
    variant 1.
``"fitnets"``
    CE + feature MSE through a regressor (Romero et al., 2015).
``"fusion"``
    The full :math:`L_S` (ablation variants 2 and 3, and the proposed method).

Nothing here detaches the teacher. In the teaching phase the caller computes the
teacher's outputs under :func:`torch.no_grad`, so they are constants; in the
feedback phase (:mod:`mkdbook.distillation.teaching`) the caller passes outputs that carry
the teacher's graph, and :math:`L_S` is differentiable in the teacher.

Works cited:

* Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion Recognition," Brain
  Sciences 15(7):707, 2025. doi:10.3390/brainsci15070707
* G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a Neural Network,"
  arXiv:1503.02531, 2015.
* A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta and Y. Bengio, "FitNets:
  Hints for Thin Deep Nets," ICLR 2015.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdbook.core.checks import check_option
from mkdbook.models.outputs import ModelOutput

__all__ = [
    "LOSS_PRESETS",
    "DistillationLossConfig",
    "FeatureProjector",
    "LossTerms",
    "cross_entropy",
    "feature_mse",
    "kl_divergence",
    "student_loss",
]

#: The named weightings of :math:`L_S`, as :meth:`DistillationLossConfig.preset` accepts them.
LOSS_PRESETS: tuple[str, ...] = ("hinton", "fitnets", "fusion")


def cross_entropy(logits: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy between integer labels and unnormalised logits.

    Parameters
    ----------
    logits : Tensor, shape (batch, n_classes)
        Unnormalised class scores.
    y : Tensor of int64, shape (batch,)
        Class indices (the one-hot labels of the paper, stored as indices).

    Returns
    -------
    Tensor
        Scalar :math:`-\\frac{1}{B}\\sum_b \\log \\mathrm{softmax}(z_b)_{y_b}`.
    """
    return F.cross_entropy(logits, y)


def kl_divergence(teacher_logits: Tensor, student_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """KL divergence from the student's to the teacher's softened class distribution.

    Computes

    .. math::

        T^2 \\cdot \\frac{1}{B} \\sum_b \\sum_c p^T_{bc}
        \\left(\\log p^T_{bc} - \\log p^S_{bc}\\right),
        \\qquad p = \\mathrm{softmax}(z / T),

    that is :math:`T^2 \\, \\mathrm{KL}(p_T \\| p_S)` averaged over the batch.
    The gradient of the unscaled KL with respect to the logits shrinks as
    :math:`1/T^2` when the temperature grows (Hinton et al., 2015, section 2);
    the :math:`T^2` factor undoes that, so the soft term keeps the same weight
    relative to the cross-entropy whatever the temperature. At ``T = 1`` (the
    paper's setting, as it names no temperature) this is the plain KL.

    Neither argument is detached: gradients reach the teacher's logits too
    when they carry a graph.

    Parameters
    ----------
    teacher_logits, student_logits : Tensor, shape (batch, n_classes)
        Unnormalised class scores of the teacher and of the student.
    temperature : float, default 1.0
        Softening temperature :math:`T > 0`.

    Returns
    -------
    Tensor
        Scalar, non-negative up to rounding.

    References
    ----------
    .. [1] G. Hinton, O. Vinyals and J. Dean, "Distilling the Knowledge in a
       Neural Network," arXiv:1503.02531, 2015.
    """
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits and student_logits must have the same shape, got "
            f"{tuple(teacher_logits.shape)} and {tuple(student_logits.shape)}"
        )
    _check_temperature(temperature)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    # Written out rather than through F.kl_div so that the gradient with
    # respect to the teacher (the target) is plainly part of the expression.
    kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum(dim=-1).mean()
    return kl * temperature**2


class FeatureProjector(nn.Module):
    """Learned linear regressor from the student's HDF to the teacher's IMF space.

    The student's fused features (HDF, 256-d) are narrower than the teacher's
    (IMF, 512-d), so they cannot be compared directly. As in FitNets (Romero et
    al., 2015), a regressor on the *student* side maps the student's features
    into the teacher's space and is trained together with the student by the
    feature loss; the teacher's features are never squeezed. FitNets used a
    convolutional regressor on feature maps; HDF and IMF are vectors, so the
    regressor here is a single affine layer, the least capacity that can
    align the two widths (a deep regressor could fit the teacher's features
    by itself and teach the student little).

    Parameters
    ----------
    in_features : int, default 256
        Width of the student's features (HDF).
    out_features : int, default 512
        Width of the teacher's features (IMF).

    References
    ----------
    .. [1] A. Romero, N. Ballas, S. E. Kahou, A. Chassang, C. Gatta and
       Y. Bengio, "FitNets: Hints for Thin Deep Nets," ICLR 2015.
    """

    def __init__(self, in_features: int = 256, out_features: int = 512) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, student_features: Tensor) -> Tensor:
        """Map student features of shape (batch, in_features) to (batch, out_features)."""
        return self.linear(student_features)


def feature_mse(projected_student: Tensor, teacher_features: Tensor) -> Tensor:
    """Mean squared error between projected student features and teacher features.

    Parameters
    ----------
    projected_student : Tensor, shape (batch, d)
        The student's features after :class:`FeatureProjector`.
    teacher_features : Tensor, shape (batch, d)
        The teacher's features (IMF).

    Returns
    -------
    Tensor
        Scalar :math:`\\frac{1}{B d} \\sum_{b,j} (P(F_S)_{bj} - F^T_{bj})^2`,
        the element-wise mean, so its scale does not grow with the width.
    """
    if projected_student.shape != teacher_features.shape:
        raise ValueError(
            f"projected student features and teacher features must have the same "
            f"shape, got {tuple(projected_student.shape)} and {tuple(teacher_features.shape)}"
        )
    return F.mse_loss(projected_student, teacher_features)


@dataclass(frozen=True)
class DistillationLossConfig:
    """Weights and temperature of the student objective :math:`L_S`.

    The defaults are the paper's 1:1:1 (the ``"fusion"`` preset). A weight of
    zero removes a term from the objective (see :func:`student_loss`).

    Attributes
    ----------
    ce : float, default 1.0
        :math:`\\lambda_1`, weight of the cross-entropy with the labels.
    kl : float, default 1.0
        :math:`\\lambda_2`, weight of :func:`kl_divergence`.
    mse : float, default 1.0
        :math:`\\lambda_3`, weight of :func:`feature_mse`.
    temperature : float, default 1.0
        Temperature of the KL term. The paper names none, so 1.
    """

    ce: float = 1.0
    kl: float = 1.0
    mse: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ce", "kl", "mse"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite weight >= 0, got {value!r}")
        if self.ce == self.kl == self.mse == 0.0:
            raise ValueError("at least one of ce, kl, mse must be positive, got all zero")
        _check_temperature(self.temperature)

    @classmethod
    def hinton(cls, temperature: float = 1.0) -> DistillationLossConfig:
        """CE + KL on (softened) logits, no feature term (Hinton et al., 2015)."""
        return cls(ce=1.0, kl=1.0, mse=0.0, temperature=temperature)

    @classmethod
    def fitnets(cls) -> DistillationLossConfig:
        """CE + projected feature MSE, no logit term (Romero et al., 2015)."""
        return cls(ce=1.0, kl=0.0, mse=1.0)

    @classmethod
    def fusion(cls) -> DistillationLossConfig:
        """The paper's full objective, CE + KL + feature MSE at 1:1:1."""
        return cls(ce=1.0, kl=1.0, mse=1.0)

    @classmethod
    def preset(cls, name: str) -> DistillationLossConfig:
        """The preset called ``name``, one of :data:`LOSS_PRESETS`."""
        check_option("name", name, LOSS_PRESETS)
        return getattr(cls, name)()


@dataclass(frozen=True)
class LossTerms:
    """The student objective and each of its terms, unweighted.

    Attributes
    ----------
    total : Tensor
        The weighted sum :math:`L_S`, with its graph: the tensor to
        differentiate.
    ce, kl : Tensor
        The cross-entropy and the (temperature-scaled) KL, unweighted.
    mse : Tensor or None
        The projected feature MSE, unweighted; ``None`` when it could not be
        measured (no projector or no features, with a zero weight).
    """

    total: Tensor
    ce: Tensor
    kl: Tensor
    mse: Tensor | None

    def as_dict(self) -> dict[str, float]:
        """Python floats for logging: ``total``, ``ce``, ``kl`` and ``mse`` when measured."""
        values = {"total": self.total, "ce": self.ce, "kl": self.kl, "mse": self.mse}
        return {name: float(value.detach()) for name, value in values.items() if value is not None}


def student_loss(
    student_out: ModelOutput,
    teacher_out: ModelOutput,
    y: Tensor,
    projector: FeatureProjector | None,
    config: DistillationLossConfig,
) -> LossTerms:
    """The student objective :math:`L_S` with each of its terms.

    Parameters
    ----------
    student_out : ModelOutput
        The student's logits and HDF features.
    teacher_out : ModelOutput
        The teacher's logits and IMF features. Used as given: compute them
        under :func:`torch.no_grad` to treat the teacher as fixed (teaching
        phase), or with their graph to differentiate :math:`L_S` in the
        teacher (feedback phase).
    y : Tensor of int64, shape (batch,)
        Class labels.
    projector : FeatureProjector or None
        Maps student features to the teacher's width. Required when
        ``config.mse > 0``.
    config : DistillationLossConfig
        Weights and temperature.

    Returns
    -------
    LossTerms
        ``total`` and the unweighted terms. A term whose weight is zero does
        not enter ``total`` or its graph, but is still measured without
        gradient when its inputs exist, so that runs of different variants
        log the same columns (how far a Hinton-KD student's logits are from
        the teacher's is worth knowing for a FitNets student too).
    """
    ce = cross_entropy(student_out.logits, y)
    total = config.ce * ce
    with torch.set_grad_enabled(torch.is_grad_enabled() and config.kl > 0):
        kl = kl_divergence(teacher_out.logits, student_out.logits, config.temperature)
    if config.kl > 0:
        total = total + config.kl * kl

    have_features = student_out.features is not None and teacher_out.features is not None
    if config.mse > 0 and (projector is None or not have_features):
        raise ValueError(
            f"the feature term has weight mse={config.mse} but "
            + ("no projector was given" if projector is None else "a network returned no features")
        )
    mse = None
    if projector is not None and have_features:
        with torch.set_grad_enabled(torch.is_grad_enabled() and config.mse > 0):
            mse = feature_mse(projector(student_out.features), teacher_out.features)
        if config.mse > 0:
            total = total + config.mse * mse
    return LossTerms(total=total, ce=ce, kl=kl, mse=mse)


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
