"""Contract tests for :mod:`mkdbook.models`: shapes, taps, modality isolation, seeding, gradients."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from functools import cache

import pytest
import torch

from mkdbook.data.layout import DEAP
from mkdbook.models import (
    MODEL_NAMES,
    ConvFrontEnd,
    DeepConvNet,
    FrontEndConfig,
    Network,
    Student,
    StudentConfig,
    Teacher,
    build_model,
    count_parameters,
)
from mkdbook.models.encoder import StreamConfig, TapReadout
from mkdbook.models.filters import FreeFilterBank, SincFilterBank
from mkdbook.models.frontend import (
    LOG_ENERGY_FLOOR,
    SharedMaskDropout,
    filter_log_energy,
    strided_filter_bank,
)

BATCH = 4
N_TIMES = 512
#: What a network is told about DEAP's montage: electrodes per modality.
N_CHANNELS = DEAP.channel_counts()


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
    return build_model(name, n_channels=N_CHANNELS, seed=0).eval()


def make_batch(seed: int, modalities: tuple[str, ...] = tuple(N_CHANNELS)) -> dict[str, torch.Tensor]:
    """Random DEAP-shaped signals for ``modalities``, from an explicit generator."""
    generator = torch.Generator().manual_seed(seed)
    return {
        name: torch.randn(BATCH, N_CHANNELS[name], N_TIMES, generator=generator)
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
    model = build_model(name, n_channels=N_CHANNELS, n_classes=3, seed=0).eval()
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
    first = build_model(name, n_channels=N_CHANNELS, seed=3)
    second = build_model(name, n_channels=N_CHANNELS, seed=3)
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), key
    batch = make_batch(0)
    with torch.no_grad():
        assert torch.equal(first.eval()(batch).logits, second.eval()(batch).logits)


#: sha256 of every seed-0 network's initial state_dict (names and bytes), last
#: computed when the front end's filters became a sinc bank and the readouts'
#: layer norms batch norms: a refactoring must not move a single weight.
INITIAL_WEIGHTS_SHA256 = {
    "teacher": "d7fe18ff0193d19256325c5442e8a1d0a1ab65114b26eed33974091d8a0a6025",
    "student": "7ee3fde5cc790dcafeadb95297663fcc999cf6a6d998985b53d446832277eb65",
    "eeg": "79427fb7ca0a50de33c8b7eb1d78b052719389453a6cd3207ef74c7072f4e049",
    "eog": "19ae60a5dd69916299a7b3f10dbcff24030137d0f8fb846865792a5224453e7e",
    "deepconvnet": "12a21a0a43e089942748d3846fdf53f16955fe6433243e894214748f21d9a8c5",
    "teacher-concat": "76d266ab3dfefd5c63ec085c3c1fb4a67268988e2ad2aedb2410466c86cd681e",
    "student-concat": "d82aa19e103bf36cf4bbd9bf10ff152523b83786298df3846912d74f06254cb5",
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_initial_weights_as_before(name):
    digest = hashlib.sha256()
    for key, value in build_model(name, n_channels=N_CHANNELS, seed=0).state_dict().items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    assert digest.hexdigest() == INITIAL_WEIGHTS_SHA256[name]


def test_networks_take_the_channel_counts_they_are_told():
    montage = {"eog": 3, "eeg": 8}
    teacher = build_model("teacher", n_channels=montage, seed=0).eval()
    generator = torch.Generator().manual_seed(0)
    batch = {name: torch.randn(BATCH, count, N_TIMES, generator=generator) for name, count in montage.items()}
    with torch.no_grad():
        assert teacher(batch).logits.shape == (BATCH, 2)
    assert teacher.streams["eeg"].stream.front_end.n_channels == 8


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_missing_channel_count_names_the_modality(name):
    network_class = type(evaluated(name))
    missing = network_class.modalities[-1]
    told = {modality: count for modality, count in N_CHANNELS.items() if modality != missing}
    with pytest.raises(ValueError, match=f"no entry for modality '{missing}'"):
        build_model(name, n_channels=told)


def test_channel_count_must_be_a_positive_integer():
    with pytest.raises(ValueError, match=r"n_channels\['eog'\] must be a positive integer, got 0"):
        build_model("student", n_channels={"eog": 0})


def test_seed_leaves_global_random_state_alone():
    state = torch.random.get_rng_state()
    build_model("student", n_channels=N_CHANNELS, seed=1)
    assert torch.equal(state, torch.random.get_rng_state())


def test_different_seeds_differ():
    a = build_model("student", n_channels=N_CHANNELS, seed=0).state_dict()
    b = build_model("student", n_channels=N_CHANNELS, seed=1).state_dict()
    assert not all(torch.equal(a[key], b[key]) for key in a)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as error:
        build_model("resnet", n_channels=N_CHANNELS)
    for name in MODEL_NAMES:
        assert name in str(error.value)


def test_unknown_override_lists_fields():
    with pytest.raises(ValueError, match="d_model"):
        build_model("student", n_channels=N_CHANNELS, not_a_field=1)


def test_overrides_reach_nested_configs():
    teacher = build_model("teacher", n_channels=N_CHANNELS, depth=4, taps=(2, 4), n_temporal_filters=4)
    assert teacher.config.eog.depth == teacher.config.eeg.depth == 4
    assert teacher.config.eeg.front_end.n_temporal_filters == 4
    assert len(teacher.streams["eeg"].stream.layers) == 4
    student = build_model("student", n_channels=N_CHANNELS, config=StudentConfig(taps=(2, 3)),
                          fusion_hidden=128)
    assert student.config.taps == (2, 3) and student.config.fusion_hidden == 128


def test_concat_names_change_only_the_fusion():
    assert build_model("teacher-concat", n_channels=N_CHANNELS).config.fusion == "concat"
    assert build_model("student-concat", n_channels=N_CHANNELS).config.fusion == "concat"
    assert isinstance(build_model("teacher-concat", n_channels=N_CHANNELS), Teacher)
    assert isinstance(build_model("student-concat", n_channels=N_CHANNELS), Student)


@pytest.mark.parametrize("taps", [(1, 2), (3, 2), (0, 3), (2, 2, 3)])
def test_invalid_taps_are_refused(taps):
    with pytest.raises(ValueError, match="taps"):
        build_model("student", n_channels=N_CHANNELS, taps=taps)


def test_wrong_channel_count_is_refused():
    student = build_model("student", n_channels=N_CHANNELS)
    with pytest.raises(ValueError, match="expected a"):
        student({"eog": torch.randn(BATCH, 3, N_TIMES)})


@pytest.mark.parametrize("name", ["teacher", "student", "teacher-concat", "student-concat"])
def test_gradient_reaches_every_parameter(name):
    model = build_model(name, n_channels=N_CHANNELS, seed=0).eval()  # eval: no branch is dropped at random
    output = model(make_batch(0))
    (output.logits.sum() + output.features.sum()).backward()
    for key, parameter in model.named_parameters():
        assert parameter.grad is not None, key
        assert parameter.grad.abs().sum() > 0, key


def test_student_is_aligned_with_teacher_eog_stream():
    teacher = build_model("teacher", n_channels=N_CHANNELS, seed=0)
    student = build_model("student", n_channels=N_CHANNELS, seed=1)
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
    student, teacher = (build_model(name, n_channels=N_CHANNELS) for name in ("student", "teacher"))
    assert count_parameters(student) < count_parameters(teacher)


def test_deepconvnet_reduces_a_segment_to_one_step():
    model = build_model("deepconvnet", n_channels=N_CHANNELS)
    assert isinstance(model, DeepConvNet)
    assert model.classifier.kernel_size == (1, 1)
    with pytest.raises(ValueError, match="too few"):
        build_model("deepconvnet", n_channels=N_CHANNELS, n_times=128)


def test_train_mode_is_stochastic_and_eval_is_not():
    model = build_model("student", n_channels=N_CHANNELS, seed=0)
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


def gain(taps: torch.Tensor, hz: float, sfreq: float = 128.0) -> torch.Tensor:
    """Magnitude of each filter's frequency response at ``hz``."""
    n = torch.arange(taps.shape[-1], dtype=taps.dtype)
    phase = torch.exp(-2j * math.pi * hz / sfreq * n)
    return (taps.to(torch.complex128) * phase).sum(-1).abs()


def test_sinc_bank_starts_as_log_spaced_band_pass_filters():
    bank = SincFilterBank(8, 64, 128.0, (4.0, 60.0))
    low, high = (edge.detach().double() for edge in bank.edges())
    edges = torch.logspace(math.log10(4.0), math.log10(60.0), 9, dtype=torch.float64)
    assert torch.allclose(low, edges[:-1], atol=1e-5) and torch.allclose(high, edges[1:], atol=1e-5)
    taps = bank().detach().double()
    assert taps.shape == (8, 64)
    # The widest band passes its centre at about unit gain and stops far outside.
    top = taps[-1]
    assert abs(gain(top, 50.0) - 1.0) < 0.1
    assert gain(top, 10.0) < 0.05


def test_sinc_bank_learns_its_edges_only():
    bank = SincFilterBank(4, 64, 128.0, (4.0, 40.0))
    assert sum(p.numel() for p in bank.parameters()) == 8
    bank().square().sum().backward()
    assert bank.low_hz.grad.abs().sum() > 0 and bank.band_hz.grad.abs().sum() > 0


@pytest.mark.parametrize("edges", [(0.5, 40.0), (40.0, 4.0), (4.0, 64.0)])
def test_sinc_bank_refuses_edges_outside_one_hz_to_nyquist(edges):
    with pytest.raises(ValueError, match="band_edges_hz"):
        SincFilterBank(4, 64, 128.0, edges)


def test_front_end_filter_bank_kinds():
    sinc = ConvFrontEnd(2, 512, 128.0, 16, FrontEndConfig())
    free = ConvFrontEnd(2, 512, 128.0, 16, FrontEndConfig(filter_bank="free"))
    assert isinstance(sinc.filter_bank, SincFilterBank) and isinstance(free.filter_bank, FreeFilterBank)
    assert sinc.temporal_filters.shape == free.temporal_filters.shape == (8, 64)
    with pytest.raises(ValueError, match="filter_bank"):
        FrontEndConfig(filter_bank="gabor")
    with pytest.raises(ValueError, match="energy_dropout"):
        FrontEndConfig(energy_dropout=-0.1)


def test_energy_dropout_drops_whole_log_energy_maps_in_training_only():
    front = ConvFrontEnd(2, 512, 128.0, 16, FrontEndConfig(energy_dropout=0.5, conv_dropout=0.0))
    seen = []
    front.energy_dropout.register_forward_hook(lambda module, args, out: seen.append(out))
    signal = torch.randn(3, 2, 512, generator=torch.Generator().manual_seed(0))
    front.train()(signal)
    dropped = seen[-1] == 0
    # A map is dropped for all its tokens or for none.
    assert dropped.any() and torch.equal(dropped.all(-1), dropped.any(-1))
    front.eval()(signal)
    assert not (seen[-1] == 0).any()


@pytest.mark.parametrize(("kind", "norm"), [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm)])
def test_readout_norm_follows_the_stream_config(kind, norm):
    assert isinstance(TapReadout(16, 8, "mean", kind).norm, norm)
    net = build_model("eog", n_channels=N_CHANNELS, seed=0, readout_norm=kind)
    assert isinstance(net.norm, norm)
    with pytest.raises(ValueError, match="readout_norm"):
        StreamConfig(readout_norm="group")


def test_batch_norm_readout_centres_each_feature_over_the_batch():
    # A pattern shared by every segment, which a layer norm would keep, is removed.
    readout = TapReadout(16, 16, "mean", "batch").train()
    torch.nn.init.eye_(readout.project.weight)
    torch.nn.init.zeros_(readout.project.bias)
    tokens = 100 * torch.randn(1, 1, 16) + torch.randn(32, 4, 16)
    out = readout(tokens)
    assert out.mean(0).abs().max() < 1e-4


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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_network_keeps_the_common_arguments(name):
    network = build_model(name, n_channels={"eeg": 8, "eog": 3, "emg": 2}, n_times=1024, sfreq=256.0)
    assert isinstance(network, Network)
    assert network.n_channels == {m: {"eeg": 8, "eog": 3}[m] for m in network.modalities}
    assert (network.n_classes, network.n_times, network.sfreq) == (2, 1024, 256.0)
    assert isinstance(network.config, network.config_class)


def test_the_common_parameters_are_documented_once_for_every_network():
    assert "the entries for ``eog`` and ``eeg`` are read, others ignored." in Teacher.__doc__
    for network in (Student, DeepConvNet):
        assert "only the entry for ``eog`` is read." in network.__doc__
    for network in (Network, Teacher, Student, DeepConvNet):
        assert "\n    %(" not in network.__doc__ and "Samples per segment" in network.__doc__


def test_a_network_must_build_its_layers():
    class Unbuilt(Network):
        modalities = ("eog",)
        config_class = StudentConfig

    with pytest.raises(NotImplementedError, match="Unbuilt must define build"):
        Unbuilt({"eog": 2})
