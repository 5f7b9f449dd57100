"""The teaching step and the second-order feedback phase on tiny stand-in networks."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mkdbook.distillation.feedback import (
    FeedbackConfig,
    feedback_objective,
    feedback_phase,
    make_teacher_optimizer,
    teacher_forward,
)
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector
from mkdbook.distillation.teaching import teaching_step
from mkdbook.models.outputs import ModelOutput

N_TIME = 8
TEACHER_WIDTH, STUDENT_WIDTH = 6, 4


class TinyTeacher(nn.Module):
    """Reads "eeg" and "eog"; batch norm and dropout like the real teacher."""

    def __init__(self) -> None:
        super().__init__()
        self.eeg = nn.Linear(32, 2)
        self.eog = nn.Linear(2, TEACHER_WIDTH - 2)
        self.norm = nn.BatchNorm1d(TEACHER_WIDTH)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(TEACHER_WIDTH, 2)

    def forward(self, batch):
        fused = torch.cat([self.eeg(batch["eeg"].mean(-1)), self.eog(batch["eog"].mean(-1))], dim=-1)
        features = torch.tanh(self.norm(fused))
        return ModelOutput(logits=self.head(self.drop(features)), features=features)


class TinyStudent(nn.Module):
    """Reads only "eog"; smooth (tanh) so finite differences are accurate."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 3, kernel_size=3)
        self.norm = nn.BatchNorm1d(3)
        self.fuse = nn.Linear(3, STUDENT_WIDTH)
        self.head = nn.Linear(STUDENT_WIDTH, 2)

    def forward(self, batch):
        hidden = torch.tanh(self.norm(self.conv(batch["eog"]))).mean(-1)
        features = torch.tanh(self.fuse(hidden))
        return ModelOutput(logits=self.head(features), features=features)


class TinyAttentionStudent(nn.Module):
    """Reads only "eog" through one head of fused scaled dot-product attention,
    the kernel the real encoders use."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(2, STUDENT_WIDTH)
        self.qkv = nn.Linear(STUDENT_WIDTH, 3 * STUDENT_WIDTH)
        self.head = nn.Linear(STUDENT_WIDTH, 2)

    def forward(self, batch):
        tokens = self.embed(batch["eog"].transpose(1, 2))
        query, key, value = self.qkv(tokens).unsqueeze(1).chunk(3, dim=-1)
        features = F.scaled_dot_product_attention(query, key, value).squeeze(1).mean(1)
        return ModelOutput(logits=self.head(features), features=features)


def make_batch(gen: torch.Generator, n: int = 6):
    batch = {
        "eeg": torch.randn(n, 32, N_TIME, generator=gen, dtype=torch.float64),
        "eog": torch.randn(n, 2, N_TIME, generator=gen, dtype=torch.float64),
    }
    return batch, torch.randint(0, 2, (n,), generator=gen)


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread: on a busy machine, thread hand-offs cost these tiny
    double-precision kernels a hundredfold (BatchNorm1d: ~10 ms against ~0.03 ms)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup():
    """Models in double precision, the student in train mode, and two batches."""
    torch.manual_seed(0)
    teacher, student = TinyTeacher().double(), TinyStudent().double()
    projector = FeatureProjector(STUDENT_WIDTH, TEACHER_WIDTH).double()
    student.train()
    gen = torch.Generator().manual_seed(1)
    train, y_train = make_batch(gen)
    val, y_val = make_batch(gen)
    # Move the teacher's batch-norm statistics away from their defaults, as
    # a pretrained teacher's would be.
    with torch.no_grad():
        for _ in range(3):
            teacher(make_batch(gen)[0])
    teacher.eval()
    return teacher, student, projector, train, y_train, val, y_val


def reference_objective(teacher, student, projector, train, y_train, val, y_val, alpha, teacher_weight, stride):
    """The feedback objective built independently: deep-copy the student, take one
    plain SGD step on the explicit L_S (1:1:1, T = 1) on every stride-th training
    segment, evaluate on validation."""
    train, y_train = {k: v[::stride] for k, v in train.items()}, y_train[::stride]
    temporary = copy.deepcopy(student)
    with torch.no_grad():
        teacher_out = teacher(train)
    out = temporary(train)
    p_teacher = F.softmax(teacher_out.logits, dim=-1)
    kl = (p_teacher * (p_teacher.log() - F.log_softmax(out.logits, dim=-1))).sum(-1).mean()
    mse = ((projector(out.features) - teacher_out.features) ** 2).mean()
    loss = F.cross_entropy(out.logits, y_train) + kl + mse
    grads = torch.autograd.grad(loss, list(temporary.parameters()))
    with torch.no_grad():
        for p, g in zip(temporary.parameters(), grads):
            p -= alpha * g
        value = F.cross_entropy(temporary(val).logits, y_val)
        value += teacher_weight * F.cross_entropy(teacher(val).logits, y_val)
    return value.item()


@pytest.mark.parametrize("teacher_weight, stride", [(0.0, 1), (1.0, 1), (0.0, 2), (1.0, 2)])
def test_teacher_gradient_matches_central_finite_differences(setup, teacher_weight, stride):
    # teacher_weight = 0 isolates the second-order path (MetaDistil's objective).
    teacher, student, projector, train, y_train, val, y_val = setup
    config = FeedbackConfig(alpha=0.5, teacher_weight=teacher_weight, pilot_stride=stride)
    args = (student, projector, train, y_train, val, y_val)
    before = [p.detach().clone() for p in teacher.parameters()]
    expected_value = reference_objective(teacher, *args, config.alpha, config.teacher_weight, stride)

    # With plain SGD at lr 1 the step taken is exactly minus the gradient applied.
    sgd = torch.optim.SGD(teacher.parameters(), lr=1.0)
    logged = feedback_phase(teacher, *args, sgd, DistillationLossConfig.fusion(), config)
    applied = [b - p.detach() for b, p in zip(before, teacher.parameters())]
    assert logged["teacher_loss"] == pytest.approx(expected_value, rel=1e-12)
    assert (logged["grad_norm_teacher_ce"] > 0) == (teacher_weight > 0)

    with torch.no_grad():
        for p, b in zip(teacher.parameters(), before):
            p.copy_(b)
    eps = 1e-6
    for p, grad in zip(teacher.parameters(), applied):
        numeric = torch.empty_like(p)
        flat, flat_numeric = p.data.view(-1), numeric.view(-1)
        for i in range(flat.numel()):
            original = flat[i].item()
            flat[i] = original + eps
            upper = reference_objective(teacher, *args, config.alpha, config.teacher_weight, stride)
            flat[i] = original - eps
            lower = reference_objective(teacher, *args, config.alpha, config.teacher_weight, stride)
            flat[i] = original
            flat_numeric[i] = (upper - lower) / (2 * eps)
        torch.testing.assert_close(grad, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("teacher_weight, stride", [(0.0, 1), (1.0, 2), (1.0, 3)])
def test_reusing_the_teaching_steps_teacher_pass_changes_nothing(setup, teacher_weight, stride):
    teacher, student, projector, train, y_train, val, y_val = setup
    config = FeedbackConfig(alpha=0.5, teacher_weight=teacher_weight, pilot_stride=stride)
    start = copy.deepcopy(teacher.state_dict())
    updated, logs = [], []
    for shared in (False, True):
        teacher.load_state_dict(start)
        teacher.train()  # teacher_forward must switch to eval itself and switch back
        teacher_train = None
        if shared:
            whole, teacher_train = teacher_forward(teacher, train, config)
            with torch.no_grad():
                expected = teacher.eval()(train)
            # The teaching step's output is the pass on the whole batch, detached.
            assert not whole.logits.requires_grad and teacher_train.logits.requires_grad
            torch.testing.assert_close(whole.logits, expected.logits, rtol=1e-12, atol=0)
            torch.testing.assert_close(whole.features, expected.features, rtol=1e-12, atol=0)
            teacher.train()
        assert teacher.training
        teacher.eval()
        logs.append(feedback_phase(teacher, student, projector, train, y_train, val, y_val,
                                   torch.optim.SGD(teacher.parameters(), lr=1.0),
                                   DistillationLossConfig.fusion(), config, teacher_train))
        updated.append(copy.deepcopy(teacher.state_dict()))
    assert logs[0] == logs[1]
    _assert_identical(updated[0], updated[1])


@pytest.mark.parametrize("config", [FeedbackConfig(teacher_train_mode=True), FeedbackConfig(student_term=False)])
def test_a_teacher_pass_is_shared_only_where_it_is_the_pilots(setup, config):
    teacher, student, projector, train, y_train, val, y_val = setup
    assert not config.shares_teaching_pass
    whole, pilot = teacher_forward(teacher, train, FeedbackConfig())
    with pytest.raises(ValueError, match="shares_teaching_pass"):
        feedback_objective(teacher, student, projector, train, y_train, val, y_val, DistillationLossConfig.fusion(),
                           config, pilot)
    # The whole batch's output has no graph and the wrong rows; a detached pilot output has no graph.
    for wrong in (whole, type(pilot)(pilot.logits.detach(), pilot.features.detach())):
        with pytest.raises(ValueError, match="teacher_forward"):
            feedback_objective(teacher, student, projector, train, y_train, val, y_val,
                               DistillationLossConfig.fusion(), FeedbackConfig(), wrong)


def _norms(setup, loss_config, feedback_config):
    teacher, student, projector, train, y_train, val, y_val = setup
    optimizer = make_teacher_optimizer(teacher, feedback_config)
    return feedback_phase(
        teacher, student, projector, train, y_train, val, y_val, optimizer, loss_config, feedback_config
    )


@pytest.mark.parametrize("preset", ["fusion", "hinton", "fitnets"])
def test_gradient_through_temporary_student_is_nonzero(setup, preset):
    loss_config = DistillationLossConfig.preset(preset)
    if preset == "hinton":
        setup = (*setup[:2], None, *setup[3:])
    logged = _norms(setup, loss_config, FeedbackConfig(alpha=0.5))
    # Both the logit (KL) and the feature (MSE) path carry feedback by themselves.
    assert logged["grad_norm_via_student"] > 1e-6
    assert logged["grad_norm_teacher_ce"] > 1e-6
    assert logged["grad_norm_total"] <= logged["grad_norm_via_student"] + logged["grad_norm_teacher_ce"] + 1e-12
    assert {"pilot_total", "pilot_ce", "pilot_kl", "student_quiz_ce", "teacher_quiz_ce"} <= set(logged)
    assert logged["teacher_step_norm"] > 0


def test_without_the_student_term_the_teacher_is_fine_tuned_on_its_own_ce(setup):
    teacher, student, projector, train, y_train, val, y_val = setup
    config = FeedbackConfig(alpha=0.5, teacher_weight=2.0, student_term=False)
    objective = feedback_objective(
        teacher, student, projector, train, y_train, val, y_val, DistillationLossConfig.fusion(), config
    )
    # No pilot step is computed at all.
    assert objective.student_quiz_ce is None and objective.pilot is None
    # What is applied is then exactly the gradient of the teacher's own CE.
    own = torch.autograd.grad(2.0 * F.cross_entropy(teacher(val).logits, y_val), list(teacher.parameters()))
    before = [p.detach().clone() for p in teacher.parameters()]
    logged = feedback_phase(
        teacher, student, projector, train, y_train, val, y_val,
        torch.optim.SGD(teacher.parameters(), lr=1.0), DistillationLossConfig.fusion(), config,
    )
    assert logged["grad_norm_via_student"] == 0.0 and "student_quiz_ce" not in logged
    assert logged["grad_norm_total"] == pytest.approx(logged["grad_norm_teacher_ce"], rel=1e-12)
    for b, p, g in zip(before, teacher.parameters(), own):
        torch.testing.assert_close(b - p.detach(), g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_feedback_differentiates_twice_through_fused_attention(setup, dtype):
    # Fused attention kernels have no double backward; the pilot step must
    # fall back to one that does.
    teacher, _, _, train, y_train, val, y_val = setup
    teacher, student = teacher.to(dtype), TinyAttentionStudent().to(dtype)
    projector = FeatureProjector(STUDENT_WIDTH, TEACHER_WIDTH).to(dtype)
    train, val = ({k: v.to(dtype) for k, v in b.items()} for b in (train, val))
    logged = _norms(
        (teacher, student, projector, train, y_train, val, y_val),
        DistillationLossConfig.fusion(), FeedbackConfig(alpha=0.5),
    )
    assert logged["grad_norm_via_student"] > 1e-6


def test_no_feedback_when_student_loss_ignores_the_teacher(setup):
    # CE alone: L_S does not depend on the teacher, so neither does the pilot.
    logged = _norms(setup, DistillationLossConfig(ce=1.0, kl=0.0, mse=0.0), FeedbackConfig(alpha=0.5))
    assert logged["grad_norm_via_student"] == 0.0


def _snapshot(student, projector, optimizer):
    return {
        "params": {n: p.detach().clone() for n, p in student.named_parameters()},
        "grads": {n: p.grad.clone() for n, p in student.named_parameters()},
        "buffers": {n: b.clone() for n, b in student.named_buffers()},
        "projector": {n: p.detach().clone() for n, p in projector.named_parameters()},
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "training": student.training,
    }


def _assert_identical(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_identical(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_identical(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


def test_feedback_leaves_real_student_bit_identical_and_moves_teacher(setup):
    teacher, student, projector, train, y_train, val, y_val = setup
    loss_config = DistillationLossConfig.fusion()
    optimizer = torch.optim.Adam([*student.parameters(), *projector.parameters()], lr=1e-2)
    for _ in range(3):
        teaching_step(student, teacher, projector, train, y_train, optimizer, loss_config)
    before = _snapshot(student, projector, optimizer)
    assert before["buffers"]["norm.num_batches_tracked"].item() == 3
    teacher_before = [p.detach().clone() for p in teacher.parameters()]

    for teacher_train_mode in (False, True):
        config = FeedbackConfig(alpha=0.5, teacher_train_mode=teacher_train_mode)
        feedback_phase(
            teacher, student, projector, train, y_train, val, y_val,
            make_teacher_optimizer(teacher, config), loss_config, config,
        )
    _assert_identical(before, _snapshot(student, projector, optimizer))
    assert all(not torch.equal(b, p) for b, p in zip(teacher_before, teacher.parameters()))
    assert not teacher.training


def test_teacher_mode_in_feedback_decides_whether_its_statistics_move(setup):
    teacher, student, projector, train, y_train, val, y_val = setup
    tracked = teacher.norm.num_batches_tracked.item()
    for teacher_train_mode, moved in ((False, 0), (True, 2)):
        config = FeedbackConfig(teacher_train_mode=teacher_train_mode)
        feedback_phase(
            teacher, student, projector, train, y_train, val, y_val,
            make_teacher_optimizer(teacher, config), DistillationLossConfig.fusion(), config,
        )
        # Train mode: one forward pass on the training batch, one on validation.
        assert teacher.norm.num_batches_tracked.item() == tracked + moved
        assert not teacher.training


def test_teaching_step_leaves_teacher_untouched_and_updates_student(setup):
    teacher, student, projector, train, y_train, _, _ = setup
    teacher.train()  # the step must switch to eval itself and switch back
    state = copy.deepcopy(teacher.state_dict())
    student_before = [p.detach().clone() for p in student.parameters()]
    projector_before = [p.detach().clone() for p in projector.parameters()]
    optimizer = torch.optim.Adam([*student.parameters(), *projector.parameters()], lr=1e-2)

    logged = teaching_step(student, teacher, projector, train, y_train, optimizer, DistillationLossConfig.fusion())
    assert set(logged) == {"total", "ce", "kl", "mse"}
    assert logged["total"] == pytest.approx(logged["ce"] + logged["kl"] + logged["mse"], rel=1e-12)
    _assert_identical(state, teacher.state_dict())
    assert teacher.training
    assert all(p.grad is None for p in teacher.parameters())
    assert all(not torch.equal(b, p) for b, p in zip(student_before, student.parameters()))
    assert all(not torch.equal(b, p) for b, p in zip(projector_before, projector.parameters()))


def test_feedback_schedule():
    config = FeedbackConfig(every=3, warmup_steps=5)
    assert [step for step in range(1, 15) if config.due(step)] == [8, 11, 14]
    assert [step for step in range(1, 7) if FeedbackConfig(every=2).due(step)] == [2, 4, 6]


@pytest.mark.parametrize(
    "kwargs, match",
    [({"every": 0}, "every"), ({"alpha": 0.0}, "alpha"), ({"teacher_lr": float("inf")}, "teacher_lr"),
     ({"teacher_weight": -1.0}, "teacher_weight"), ({"warmup_steps": -1}, "warmup_steps"),
     ({"steps": 0}, "steps"), ({"feedback_on": "test"}, "feedback_on"), ({"quiz_fraction": 1.0}, "quiz_fraction"),
     ({"quiz_fraction": 0.0}, "quiz_fraction"), ({"student_term": 1}, "student_term"),
     ({"pilot_stride": 0}, "pilot_stride"),
     ({"quiz_batch": 0}, "quiz_batch"),
     ({"student_term": False, "teacher_weight": 0.0}, "nothing to learn")],
)
def test_feedback_config_rejects_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        FeedbackConfig(**kwargs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        FeedbackConfig().alpha = 1.0
