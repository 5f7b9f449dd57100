"""Each distillation loss against an explicit hand computation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mkdbook.distillation.losses import (
    LOSS_PRESETS,
    DistillationLossConfig,
    FeatureProjector,
    LossTerms,
    cross_entropy,
    feature_mse,
    kl_divergence,
    student_loss,
)
from mkdbook.models.outputs import ModelOutput

TEACHER_LOGITS = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, -0.3]])
STUDENT_LOGITS = np.array([[0.5, 0.3, -0.2], [-1.0, 1.5, 0.0]])
LABELS = np.array([0, 1])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl(teacher: np.ndarray, student: np.ndarray, temperature: float) -> float:
    """T^2 * mean over the batch of sum_c p_T (log p_T - log p_S), written out."""
    p_t, p_s = softmax(teacher / temperature), softmax(student / temperature)
    return temperature**2 * float(np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=-1)))


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def test_cross_entropy_matches_hand_computation():
    expected = -np.mean(np.log(softmax(STUDENT_LOGITS)[np.arange(2), LABELS]))
    got = cross_entropy(t(STUDENT_LOGITS), torch.tensor(LABELS))
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_kl_at_unit_temperature_is_plain_kl_of_teacher_from_student():
    p_t, p_s = softmax(TEACHER_LOGITS), softmax(STUDENT_LOGITS)
    expected = np.mean([sum(p_t[b, c] * np.log(p_t[b, c] / p_s[b, c]) for c in range(3)) for b in range(2)])
    got = kl_divergence(t(TEACHER_LOGITS), t(STUDENT_LOGITS))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # KL is asymmetric: the argument order must be teacher first.
    reverse = np_kl(STUDENT_LOGITS, TEACHER_LOGITS, 1.0)
    assert abs(got.item() - reverse) > 1e-3


@pytest.mark.parametrize("temperature", [0.5, 2.0, 4.0])
def test_kl_temperature_softens_and_scales_by_t_squared(temperature):
    got = kl_divergence(t(TEACHER_LOGITS), t(STUDENT_LOGITS), temperature)
    assert got.item() == pytest.approx(np_kl(TEACHER_LOGITS, STUDENT_LOGITS, temperature), rel=1e-12)
    # Logits scaled by T at temperature T give T^2 times the unit-temperature KL.
    scaled = kl_divergence(t(TEACHER_LOGITS) * temperature, t(STUDENT_LOGITS) * temperature, temperature)
    unit = kl_divergence(t(TEACHER_LOGITS), t(STUDENT_LOGITS), 1.0)
    assert scaled.item() == pytest.approx(temperature**2 * unit.item(), rel=1e-12)


def test_kl_is_zero_for_equal_logits_and_rejects_bad_input():
    assert kl_divergence(t(TEACHER_LOGITS), t(TEACHER_LOGITS)).item() == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="temperature"):
        kl_divergence(t(TEACHER_LOGITS), t(STUDENT_LOGITS), 0.0)
    with pytest.raises(ValueError, match="same shape"):
        kl_divergence(t(TEACHER_LOGITS), t(STUDENT_LOGITS[:, :2]))


def test_kl_gradient_reaches_the_teacher():
    teacher = t(TEACHER_LOGITS).requires_grad_()
    kl_divergence(teacher, t(STUDENT_LOGITS)).backward()
    # d KL / d z_T = (1/B) p_T * ((log p_T - log p_S) - KL_b), by hand.
    p_t, p_s = softmax(TEACHER_LOGITS), softmax(STUDENT_LOGITS)
    log_ratio = np.log(p_t) - np.log(p_s)
    per_sample = np.sum(p_t * log_ratio, axis=-1, keepdims=True)
    expected = p_t * (log_ratio - per_sample) / 2
    np.testing.assert_allclose(teacher.grad.numpy(), expected, rtol=1e-10, atol=1e-14)


def test_projector_is_affine_from_hdf_to_imf_width():
    projector = FeatureProjector()
    assert (projector.linear.in_features, projector.linear.out_features) == (256, 512)
    small = FeatureProjector(3, 5).double()
    x = torch.randn(4, 3, dtype=torch.float64)
    weight, bias = small.linear.weight.detach().numpy(), small.linear.bias.detach().numpy()
    np.testing.assert_allclose(small(x).detach().numpy(), x.numpy() @ weight.T + bias, rtol=1e-12)


def test_feature_mse_matches_hand_computation():
    a = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 4.0]])
    b = np.array([[1.5, 2.0, 1.0], [1.0, -1.0, 4.5]])
    expected = ((0.5**2) + 0 + 2.0**2 + 1.0**2 + 0 + 0.5**2) / 6
    assert feature_mse(t(a), t(b)).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        feature_mse(t(a), t(b[:, :2]))


def test_presets_zero_the_right_terms():
    assert DistillationLossConfig() == DistillationLossConfig.fusion() == DistillationLossConfig(1.0, 1.0, 1.0, 1.0)
    hinton, fitnets = DistillationLossConfig.hinton(), DistillationLossConfig.fitnets()
    assert (hinton.ce, hinton.kl, hinton.mse) == (1.0, 1.0, 0.0)
    assert (fitnets.ce, fitnets.kl, fitnets.mse) == (1.0, 0.0, 1.0)
    assert DistillationLossConfig.hinton(temperature=4.0).temperature == 4.0
    for name in LOSS_PRESETS:
        assert DistillationLossConfig.preset(name) == getattr(DistillationLossConfig, name)()
    with pytest.raises(ValueError, match="one of"):
        DistillationLossConfig.preset("metadistil")


@pytest.mark.parametrize(
    "kwargs, match",
    [({"kl": -1.0}, "kl"), ({"ce": float("nan")}, "ce"), ({"ce": 0, "kl": 0, "mse": 0}, "all zero"),
     ({"temperature": -2.0}, "temperature")],
)
def test_config_rejects_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistillationLossConfig(**kwargs)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DistillationLossConfig().kl = 2.0


def _outputs(requires_grad: bool = False):
    """Student and teacher outputs of widths 2 and 3 with a 2 -> 3 projector."""
    gen = torch.Generator().manual_seed(0)
    student_features = torch.randn(2, 2, generator=gen, dtype=torch.float64)
    teacher_features = torch.randn(2, 3, generator=gen, dtype=torch.float64).requires_grad_(requires_grad)
    teacher_logits = t(TEACHER_LOGITS).requires_grad_(requires_grad)
    projector = FeatureProjector(2, 3).double()
    student = ModelOutput(logits=t(STUDENT_LOGITS), features=student_features)
    teacher = ModelOutput(logits=teacher_logits, features=teacher_features)
    return student, teacher, projector


def _hand_terms(student, teacher, projector, temperature):
    ce = -np.mean(np.log(softmax(STUDENT_LOGITS)[np.arange(2), LABELS]))
    kl = np_kl(TEACHER_LOGITS, STUDENT_LOGITS, temperature)
    weight = projector.linear.weight.detach().numpy()
    bias = projector.linear.bias.detach().numpy()
    projected = student.features.numpy() @ weight.T + bias
    mse = np.mean((projected - teacher.features.detach().numpy()) ** 2)
    return ce, kl, mse


def test_student_loss_weights_each_term_as_configured():
    student, teacher, projector = _outputs()
    config = DistillationLossConfig(ce=0.5, kl=2.0, mse=3.0, temperature=2.0)
    terms = student_loss(student, teacher, torch.tensor(LABELS), projector, config)
    ce, kl, mse = _hand_terms(student, teacher, projector, 2.0)
    logged = terms.as_dict()
    assert set(logged) == {"total", "ce", "kl", "mse"}
    assert logged["ce"] == pytest.approx(ce, rel=1e-12)
    assert logged["kl"] == pytest.approx(kl, rel=1e-12)
    assert logged["mse"] == pytest.approx(mse, rel=1e-12)
    assert logged["total"] == pytest.approx(0.5 * ce + 2.0 * kl + 3.0 * mse, rel=1e-12)
    assert all(isinstance(value, float) for value in logged.values())


@pytest.mark.parametrize("name", LOSS_PRESETS)
def test_presets_total_and_logged_terms(name):
    student, teacher, projector = _outputs(requires_grad=True)
    config = DistillationLossConfig.preset(name)
    terms = student_loss(student, teacher, torch.tensor(LABELS), projector, config)
    ce, kl, mse = _hand_terms(student, teacher, projector, 1.0)
    assert terms.total.item() == pytest.approx(config.ce * ce + config.kl * kl + config.mse * mse, rel=1e-12)
    # A zero-weight term is still logged but is not in the graph: the teacher
    # receives gradient only through the terms that count.
    assert terms.kl.item() == pytest.approx(kl, rel=1e-12)
    assert terms.mse.item() == pytest.approx(mse, rel=1e-12)
    assert terms.kl.requires_grad == (config.kl > 0)
    assert terms.mse.requires_grad == (config.mse > 0)
    logit_grad, feature_grad = torch.autograd.grad(
        terms.total, [teacher.logits, teacher.features], allow_unused=True
    )
    assert (logit_grad is not None) == (config.kl > 0)
    assert (feature_grad is not None) == (config.mse > 0)


def test_hinton_needs_no_projector_and_fusion_does():
    student, teacher, _ = _outputs()
    y = torch.tensor(LABELS)
    terms = student_loss(student, teacher, y, None, DistillationLossConfig.hinton())
    assert terms.mse is None
    assert set(terms.as_dict()) == {"total", "ce", "kl"}
    with pytest.raises(ValueError, match="no projector"):
        student_loss(student, teacher, y, None, DistillationLossConfig.fusion())
    featureless = ModelOutput(logits=student.logits)
    with pytest.raises(ValueError, match="no features"):
        student_loss(featureless, teacher, y, FeatureProjector(2, 3).double(), DistillationLossConfig.fitnets())


def test_loss_terms_is_frozen():
    terms = LossTerms(total=torch.tensor(1.0), ce=torch.tensor(1.0), kl=torch.tensor(0.0), mse=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        terms.total = torch.tensor(2.0)
