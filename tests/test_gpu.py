"""The CUDA path gives the CPU's numbers: teacher, student, teaching step, second-order feedback.

Skipped without CUDA. Each scenario runs the same seeded networks on the same
batch on the CPU and on CUDA, with TF32 off so that CUDA computes in true
float32, and compares what comes out. Networks run in evaluation mode
(dropout off), because the CPU and CUDA random streams differ by design.

Tolerances, stated once here:

* logits of a forward pass: ``rtol=1e-3, atol=1e-4``;
* logits after one optimiser step (Adam with lr 1e-3, whose first step moves
  every weight by up to the learning rate, so a gradient near zero may flip
  the sign of a step): ``atol=5e-3``;
* gradient norms of the feedback phase: ``rtol=1e-3``;
* bfloat16 autocast against float32, forward: class probabilities within
  ``0.05`` (bfloat16 keeps 8 bits of mantissa).

With ``MKDBOOK_GPU_REPORT=PATH`` the measured largest differences are written
to ``PATH`` as JSON.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from mkdbook.data.layout import DEAP
from mkdbook.distillation.feedback import FeedbackConfig, feedback_phase, make_teacher_optimizer
from mkdbook.distillation.losses import DistillationLossConfig, FeatureProjector
from mkdbook.distillation.teaching import teaching_step
from mkdbook.models import build_model
from mkdbook.training.trainer import Trainer, TrainConfig, make_adam

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")
CPU = torch.device("cpu")
REPORT: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def true_float32():
    """TF32 off while comparing, and the measured differences written at the end."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    if os.environ.get("MKDBOOK_GPU_REPORT"):
        with open(os.environ["MKDBOOK_GPU_REPORT"], "w", encoding="utf-8") as stream:
            json.dump(REPORT, stream, indent=1)


def batch(n: int = 16, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    signals = {m: torch.randn(n, DEAP.n_channels(m), 512, generator=generator) for m in ("eeg", "eog")}
    return signals, torch.randint(0, 2, (n,), generator=generator)


def on(device: torch.device, signals: dict[str, torch.Tensor], y: torch.Tensor):
    return {k: v.to(device) for k, v in signals.items()}, y.to(device)


def network(name: str, device: torch.device, seed: int = 0) -> torch.nn.Module:
    return build_model(name, n_channels=DEAP.channel_counts(), seed=seed).to(device).eval()


def compare(label: str, cpu: torch.Tensor, cuda: torch.Tensor, **tolerance) -> None:
    REPORT[label] = float((cpu - cuda.cpu()).abs().max())
    torch.testing.assert_close(cuda.cpu(), cpu, **tolerance)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_forward_and_one_training_step_agree(name):
    signals, y = batch()
    check, _ = batch(seed=1)
    logits, after = {}, {}
    for device in (CPU, CUDA):
        model = network(name, device)
        x, labels = on(device, signals, y)
        out = model(x).logits
        logits[device.type] = out.detach()
        optimizer = make_adam(model.parameters(), lr=1e-3)  # the fused kernel, on either device
        torch.nn.functional.cross_entropy(out, labels).backward()
        optimizer.step()
        with torch.no_grad():
            after[device.type] = model(on(device, check, y)[0]).logits
    compare(f"{name} forward", logits["cpu"], logits["cuda"], rtol=1e-3, atol=1e-4)
    compare(f"{name} after one step", after["cpu"], after["cuda"], rtol=0, atol=5e-3)


def _distillation(device: torch.device):
    student, teacher = network("student", device), network("teacher", device, seed=1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(2)
        projector = FeatureProjector(student.config.fusion_width, teacher.config.fusion_width).to(device)
    return student, teacher, projector


def test_a_teaching_step_agrees():
    signals, y = batch()
    check, _ = batch(seed=1)
    after = {}
    for device in (CPU, CUDA):
        student, teacher, projector = _distillation(device)
        optimizer = make_adam(list(student.parameters()) + list(projector.parameters()), lr=1e-3)
        teaching_step(student, teacher, projector, *on(device, signals, y), optimizer,
                      DistillationLossConfig.fusion())
        with torch.no_grad():
            after[device.type] = student(on(device, check, y)[0]).logits
    compare("student after a teaching step", after["cpu"], after["cuda"], rtol=0, atol=5e-3)


@pytest.mark.parametrize("student_term", [True, False])
def test_the_feedback_phase_agrees(student_term):
    train, y = batch()
    val, y_val = batch(seed=1)
    stats, after = {}, {}
    config = FeedbackConfig(student_term=student_term)
    for device in (CPU, CUDA):
        student, teacher, projector = _distillation(device)
        optimizer = make_teacher_optimizer(teacher, config)
        stats[device.type] = feedback_phase(teacher, student, projector, *on(device, train, y),
                                            *on(device, val, y_val), optimizer,
                                            DistillationLossConfig.fusion(), config)
        with torch.no_grad():
            after[device.type] = teacher.eval()(on(device, val, y_val)[0]).logits
    order = "second" if student_term else "own CE only"
    for key in ("grad_norm_via_student", "grad_norm_teacher_ce", "grad_norm_total"):
        REPORT[f"feedback ({order}) {key} relative"] = (
            abs(stats["cuda"][key] - stats["cpu"][key]) / max(abs(stats["cpu"][key]), 1e-12))
        assert stats["cuda"][key] == pytest.approx(stats["cpu"][key], rel=1e-3, abs=1e-9), key
    compare(f"teacher after feedback ({order})", after["cpu"], after["cuda"], rtol=0, atol=5e-3)


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_bfloat16_autocast_stays_close(name):
    signals, y = batch()
    model = network(name, CUDA)
    x, _ = on(CUDA, signals, y)
    with torch.no_grad():
        full = torch.softmax(model(x).logits.float(), 1)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = torch.softmax(model(x).logits.float(), 1)
    REPORT[f"{name} bf16 probabilities"] = float((full - half).abs().max())
    torch.testing.assert_close(half, full, rtol=0, atol=0.05)


def test_the_trainer_runs_on_cuda(tmp_path):
    """A whole (short) fit on CUDA, and a resume from its CUDA checkpoint."""
    from cluster_methods import tiny_segments

    from mkdbook.splits import make_split

    data = tiny_segments()
    split = make_split(data, "trial", fold=0, n_folds=3, seed=0)
    config = TrainConfig(epochs=2, batch_size=16, max_batches=2, progress=False, device="cuda")
    small = {"d_model": 16, "n_heads": 2, "ff_width": 16, "depth": 1}
    trainer = Trainer(build_model("eog", **data.model_inputs(), seed=0, **small), config, tmp_path)
    result = trainer.fit(data, split, "valence")
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert len(result.test.predictions) == len(split.test) and result.best_epoch >= 1
    assert torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=True)["epoch"] == 2
    again = Trainer(build_model("eog", **data.model_inputs(), seed=0, **small), config, tmp_path)
    resumed = again.fit(data, split, "valence")
    assert len(resumed.history) == 2 and resumed.test.accuracy == result.test.accuracy
