"""Contract tests for :mod:`mkdbook.models`: shapes, taps, modality isolation, seeding, gradients."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from functools import cache

import pytest
import torch

from mkdbook.data.channels import MODALITIES
from mkdbook.models import (
    MODEL_NAMES,
    ConvFrontEnd,
    DeepConvNet,
    FrontEndConfig,
    Student,
    StudentConfig,
    Teacher,
    build_model,
    count_parameters,
)
from mkdbook.models.frontend import (
    LOG_ENERGY_FLOOR,
    SharedMaskDropout,
    filter_log_energy,
    strided_filter_bank,
)

BATCH = 4
N_TIMES = 512


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of four gain nothing from threads, and threads slow a busy machine down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@cache
def evaluated(name: str) -> torch.nn.Module:
    """One seeded network per name in eval mode, shared by the tests that only run it."""
    return build_model(name, seed=0).eval()


def make_batch(seed: int, modalities: tuple[str, ...] = tuple(MODALITIES)) -> dict[str, torch.Tensor]:
    """Random DEAP-shaped signals for ``modalities``, from an explicit generator."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(BATCH, len(MODALITIES[name]), N_TIMES, generator=generator)
        for name in modalities
    }


class RecordingBatch(Mapping):
    """A batch that remembers which keys a network read."""

    def __init__(self, data: dict[str, torch.Tensor]) -> None:
        self.data = data
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        self.read.add(key)
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        # A network that iterates over the batch could read any key.
        raise AssertionError("networks must not iterate over the batch")

    def __len__(self) -> int:
        return len(self.data)


# name -> (features width or None, expected tap names and widths)
EXPECTED = {
    "teacher": (512, {"eog_1": 256, "eog_2": 256, "eeg_1": 256, "eeg_2": 256,
                      "gate_1": 512, "gate_2": 512}),
    "teacher-concat": (512, {"eog_1": 256, "eog_2": 256, "eeg_1": 256, "eeg_2": 256}),
    "student": (256, {"x1": 256, "x2": 256, "x3": 256,
                      "gate_1": 256, "gate_2": 256, "gate_3": 256}),
    "student-concat": (256, {"x1": 256, "x2": 256, "x3": 256}),
    "eeg": (None, {"pooled": 64}),
    "eog": (None, {"pooled": 64}),
    "deepconvnet": (None, {"pooled": 200}),
}


def test_expected_covers_every_name():
    assert set(EXPECTED) == set(MODEL_NAMES)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_output_shapes_and_taps(name):
    model = build_model(name, n_classes=3, seed=0).eval()
    with torch.no_grad():
        output = model(make_batch(0))
    width, taps = EXPECTED[name]
    assert output.logits.shape == (BATCH, 3)
    if width is None:
        assert output.features is None
    else:
        assert output.features.shape == (BATCH, width)
    assert {key: value.shape for key, value in output.taps.items()} == {
        key: (BATCH, tap_width) for key, tap_width in taps.items()
    }
    assert count_parameters(model) > 0


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_reads_only_its_modalities(name):
    model = evaluated(name)
    batch = RecordingBatch(make_batch(0))
    with torch.no_grad():
        model(batch)
    assert batch.read == set(type(model).modalities)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_runs_on_exactly_its_modalities(name):
    model = evaluated(name)
    with torch.no_grad():
        model(make_batch(0, type(model).modalities))


def test_student_cannot_see_eeg():
    student = evaluated("student")
    batch = make_batch(0)
    other_eeg = dict(batch, eeg=torch.randn(BATCH, 32, N_TIMES, generator=torch.Generator().manual_seed(9)))
    with torch.no_grad():
        assert torch.equal(student(batch).logits, student(other_eeg).logits)


def test_teacher_sees_eeg():
    teacher = evaluated("teacher")
    batch = make_batch(0)
    other_eeg = dict(batch, eeg=torch.randn(BATCH, 32, N_TIMES, generator=torch.Generator().manual_seed(9)))
    with torch.no_grad():
        assert not torch.allclose(teacher(batch).logits, teacher(other_eeg).logits)
        assert not torch.allclose(teacher(batch).taps["eeg_2"], teacher(other_eeg).taps["eeg_2"])
        assert torch.equal(teacher(batch).taps["eog_2"], teacher(other_eeg).taps["eog_2"])


@pytest.mark.parametrize("name", ["teacher", "student"])
def test_gates_lie_in_open_unit_interval(name):
    model = evaluated(name)
    with torch.no_grad():
        taps = model(make_batch(0)).taps
    gates = [value for key, value in taps.items() if key.startswith("gate_")]
    assert len(gates) == (2 if name == "teacher" else 3)
    for gate in gates:
        assert gate.min() > 0 and gate.max() < 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_network(name):
    first, second = build_model(name, seed=3), build_model(name, seed=3)
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), key
    batch = make_batch(0)
    with torch.no_grad():
        assert torch.equal(first.eval()(batch).logits, second.eval()(batch).logits)


def test_seed_leaves_global_random_state_alone():
    state = torch.random.get_rng_state()
    build_model("student", seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_different_seeds_differ():
    a = build_model("student", seed=0).state_dict()
    b = build_model("student", seed=1).state_dict()
    assert not all(torch.equal(a[key], b[key]) for key in a)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        build_model("resnet")
    for name in MODEL_NAMES:
        assert name in str(error.value)


def test_unknown_override_lists_fields():
    with pytest.raises(ValueError, match="d_model"):
        build_model("student", not_a_field=1)


def test_overrides_reach_nested_configs():
    teacher = build_model("teacher", depth=4, taps=(2, 4), n_temporal_filters=4)
    assert teacher.config.eog.depth == teacher.config.eeg.depth == 4
    assert teacher.config.eeg.front_end.n_temporal_filters == 4
    assert len(teacher.streams["eeg"].stream.layers) == 4
    student = build_model("student", config=StudentConfig(taps=(2, 3)), fusion_hidden=128)
    assert student.config.taps == (2, 3) and student.config.fusion_hidden == 128


def test_concat_names_change_only_the_fusion():
    assert build_model("teacher-concat").config.fusion == "concat"
    assert build_model("student-concat").config.fusion == "concat"
    assert isinstance(build_model("teacher-concat"), Teacher)
    assert isinstance(build_model("student-concat"), Student)


@pytest.mark.parametrize("taps", [(1, 2), (3, 2), (0, 3), (2, 2, 3)])
def test_invalid_taps_are_refused(taps):
    with pytest.raises(ValueError, match="taps"):
        build_model("student", taps=taps)


def test_wrong_channel_count_is_refused():
    student = build_model("student")
    with pytest.raises(ValueError, match="expected a"):
        student({"eog": torch.randn(BATCH, 3, N_TIMES)})


@pytest.mark.parametrize("name", ["teacher", "student", "teacher-concat", "student-concat"])
def test_gradient_reaches_every_parameter(name):
    model = build_model(name, seed=0).eval()  # eval: no branch is dropped at random
    output = model(make_batch(0))
    (output.logits.sum() + output.features.sum()).backward()
    for key, parameter in model.named_parameters():
        assert parameter.grad is not None, key
        assert parameter.grad.abs().sum() > 0, key


def test_student_is_aligned_with_teacher_eog_stream():
    teacher, student = build_model("teacher", seed=0), build_model("student", seed=1)
    teacher_stream = teacher.streams["eog"].stream.state_dict()
    student_stream = student.stream.stream.state_dict()
    assert {k: v.shape for k, v in teacher_stream.items()} == {
        k: v.shape for k, v in student_stream.items()
    }
    student.stream.stream.load_state_dict(teacher_stream)
    teacher.eval(), student.eval()
    batch = make_batch(0)
    with torch.no_grad():
        # Layer 3 is tapped by both, through readouts of the same shape.
        student.stream.readouts["3"].load_state_dict(teacher.streams["eog"].readouts["3"].state_dict())
        assert torch.allclose(student(batch).taps["x3"], teacher(batch).taps["eog_2"])


def test_student_is_cheaper_than_teacher():
    assert count_parameters(build_model("student")) < count_parameters(build_model("teacher"))


def test_deepconvnet_reduces_a_segment_to_one_step():
    model = build_model("deepconvnet")
    assert isinstance(model, DeepConvNet)
    assert model.classifier.kernel_size == (1, 1)
    with pytest.raises(ValueError, match="too few"):
        build_model("deepconvnet", n_times=128)


def test_train_mode_is_stochastic_and_eval_is_not():
    model = build_model("student", seed=0)
    batch = make_batch(0)
    with torch.no_grad():
        assert not torch.equal(model.train()(batch).logits, model(batch).logits)
        assert torch.equal(model.eval()(batch).logits, model(batch).logits)


@pytest.mark.parametrize(
    ("n_times", "kernel", "hop"), [(512, 64, 32), (512, 64, 16), (500, 50, 16), (100, 33, 7), (64, 8, 8)]
)
def test_strided_filter_bank_is_a_strided_convolution(n_times, kernel, hop):
    generator = torch.Generator().manual_seed(0)
    signals = torch.randn(6, n_times, generator=generator, dtype=torch.float64)
    filters = torch.randn(5, kernel, generator=generator, dtype=torch.float64)
    padding = (kernel - hop) // 2
    expected = torch.nn.functional.conv1d(signals[:, None], filters[:, None], stride=hop, padding=padding)
    actual = strided_filter_bank(signals, filters, hop, padding, expected.shape[-1])
    assert torch.allclose(actual, expected)


@pytest.mark.parametrize(("hop", "points"), [(32, 4), (32, 1), (16, 8)])
def test_filter_log_energy_is_the_log_mean_square_of_a_strided_convolution(hop, points):
    generator = torch.Generator().manual_seed(0)
    signals = torch.randn(6, 512, generator=generator, dtype=torch.float64)
    filters = torch.randn(5, 64, generator=generator, dtype=torch.float64)
    stride, n_tokens = hop // points, 512 // hop
    padding = (64 - stride) // 2
    outputs = torch.nn.functional.conv1d(signals[:, None], filters[:, None], stride=stride, padding=padding)
    mean_square = outputs[..., : n_tokens * points].square().unflatten(-1, (n_tokens, points)).mean(-1)
    actual = filter_log_energy(signals, filters, hop, points, padding, n_tokens)
    assert torch.allclose(actual, torch.log(mean_square + LOG_ENERGY_FLOOR))


def test_front_end_tokens_carry_band_power():
    # Doubling the amplitude adds log 4 to every log-energy map, which the
    # layer norm behind the spatial filter cannot divide out.
    generator = torch.Generator().manual_seed(0)
    signals = 10 * torch.randn(4, 512, generator=generator, dtype=torch.float64)
    filters = torch.randn(3, 64, generator=generator, dtype=torch.float64)
    once = filter_log_energy(signals, filters, 32, 4, 28, 16)
    twice = filter_log_energy(2 * signals, filters, 32, 4, 28, 16)
    assert torch.allclose(twice - once, torch.full_like(once, math.log(4)), atol=1e-4)


def test_front_end_refuses_energy_points_that_do_not_divide_the_hop():
    with pytest.raises(ValueError, match="energy_points=3"):
        ConvFrontEnd(32, 512, 128.0, 64, FrontEndConfig(energy_points=3))


def test_front_end_makes_one_token_per_hop():
    front_end = ConvFrontEnd(32, 512, 128.0, 64, FrontEndConfig())
    assert front_end.n_tokens == 16
    assert front_end(torch.randn(2, 32, 512)).shape == (2, 16, 64)


def test_shared_mask_dropout_shares_its_mask():
    dropout = SharedMaskDropout(0.5, shared_dims=(1,))
    x = torch.ones(64, 16, 8)
    out = dropout(x)
    assert torch.equal(out, out[:, :1].expand_as(out))  # one mask value per (sample, feature)
    assert set(out.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(dropout.eval()(x), x)
    with pytest.raises(ValueError, match="batch"):
        SharedMaskDropout(0.1, shared_dims=(0,))
