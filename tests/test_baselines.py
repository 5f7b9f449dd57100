"""The FitNets, CGAN and EmotionKD baselines: training, logged terms, EOG-only inference, resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation import baselines
from mkdbook.distillation.teacher_student import TeacherStudentTrainer
from mkdbook.experiments.methods import method_named
from mkdbook.models import FrontEndConfig, StreamConfig, build_model
from mkdbook.splits import trial_split
from mkdbook.training.checkpoints import read_checkpoint
from mkdbook.training.runs import Cell, MethodResult
from mkdbook.training.trainer import ChannelScaler, TrainConfig, Trainer

from conftest import make_segments

# Small widths for every network (overrides apply at any depth of the configs).
STREAM_SMALL = {"d_model": 8, "n_heads": 2, "ff_width": 8, "depth": 1, "n_temporal_filters": 2}
SMALL = {**STREAM_SMALL, "taps": (1,), "fusion_width": 16, "fusion_hidden": 16}
CONFIG = TrainConfig(epochs=2, batch_size=16, lr=3e-3, patience=10, progress=False, device="cpu")
EEG = slice(0, 32)  # DEAP rows 0-31 are EEG, 32-33 hEOG/vEOG


#: Two subjects, ten trials of three segments of 128 samples; EEG and vEOG levels follow the valence.
DATA = make_segments(2, 10, 3, 128, shift={33: 1.5, 5: 1.5})
SPLIT = trial_split(DATA, fold=0, seed=0)
N_TIMES = DATA.signals.shape[-1]


def with_other_eeg(data: SegmentSet) -> SegmentSet:
    signals = np.array(data.signals, copy=True)
    signals[:, EEG] = np.random.default_rng(1).standard_normal(signals[:, EEG].shape) * 50
    return replace(data, signals=signals)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks: thread start-up and contention would dominate the run time."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def teacher(one_thread) -> Trainer:
    model = build_model("teacher", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0, **SMALL)
    trainer = Trainer(model, replace(CONFIG, epochs=1))
    trainer.fit(DATA, SPLIT, "valence")
    return trainer


def fresh_teacher(teacher: Trainer) -> Trainer:
    """A copy, as the grid runner hands each method its own."""
    model = build_model("teacher", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=1, **SMALL)
    model.load_state_dict(teacher.model.state_dict())
    copy = Trainer(model.eval(), CONFIG)
    copy.scaler = teacher.scaler
    return copy


#: Student-network overrides per method: the CGAN encoder is the HDF student,
#: the EmotionKD student its own network (no fusion widths), FitNets' the HDF
#: student, guided at its one tap by the teacher's EEG stream.
STUDENT_SMALL = {"cgan": SMALL, "emotionkd": STREAM_SMALL,
                 "fitnets": {**{f"student_{k}": v for k, v in SMALL.items()}, "guided": "x1"}}


def cell(method: str, **settings) -> Cell:
    options = {**STUDENT_SMALL[method], **settings}
    return Cell(method, "valence", 0, 0, train=CONFIG, options=tuple(sorted(options.items())))


EXPECTED_TERMS = {
    "cgan": {"train_loss", "train_ce", "train_adv", "train_rec", "train_disc_loss", "train_d_real",
             "train_d_fake"},
    "emotionkd": {"train_loss", "train_ce", "train_kl", "train_mse", "train_teacher_ce",
                  "train_feedback_loss"},
    "fitnets": {"train_loss", "train_ce", "train_kl"},
}


def test_in_the_method_table():
    for name in ("cgan", "emotionkd", "fitnets"):
        method = method_named(name)
        assert method.needs_teacher and method.teacher == "teacher" and method.role == "distillation baseline"


@pytest.mark.parametrize("method, settings", [("cgan", {}), ("cgan", {"condition": "label"}),
                                               ("emotionkd", {}), ("emotionkd", {"feedback": False}),
                                               ("fitnets", {})])
def test_trains_logs_terms_and_uses_only_eog_at_test_time(method, settings, teacher, tmp_path, monkeypatch):
    t = fresh_teacher(teacher)
    before = {k: v.clone() for k, v in t.model.state_dict().items()}
    built = {}
    init = TeacherStudentTrainer.__init__

    keys = []

    def spy_init(self, model, *args, **kwargs):
        model.register_forward_pre_hook(lambda module, args: keys.append(set(args[0])))
        init(self, model, *args, **kwargs)
        built["trainer"] = self

    monkeypatch.setattr(TeacherStudentTrainer, "__init__", spy_init)
    output = method_named(method).run(cell(method, **settings), DATA, SPLIT, t, tmp_path)
    # The student network only ever receives EOG, in training and evaluation.
    assert keys and all(k == {"eog"} for k in keys)
    assert isinstance(output, MethodResult)
    result = output.train
    assert len(result.history) == 2 and result.test.n == len(SPLIT.test)
    expected = EXPECTED_TERMS[method] - ({"train_teacher_ce", "train_feedback_loss"} if settings else set())
    for row in result.history:
        assert expected <= set(row)
        assert all(np.isfinite(row[k]) for k in expected)
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "scaler.pt").is_file()
    if method == "cgan":
        # The classifier is the teacher's head, unchanged by training.
        best = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
        torch.testing.assert_close(best["classifier.weight"], t.model.classifier.weight)
    if method == "fitnets":
        assert (tmp_path / "hints.pt").is_file() and len(output.extra["hint_history"]) == 1
    # The teacher is frozen, except in EmotionKD with its feedback loss.
    moved = [name for name, value in t.model.state_dict().items() if not torch.equal(value, before[name])]
    assert bool(moved) == (method == "emotionkd" and settings.get("feedback", True))

    trainer = built["trainer"]
    assert trainer.modalities == ("eog",)
    # Predictions do not depend on the EEG channels at all.
    p_same, _ = trainer.predict(DATA, SPLIT.test, "valence")
    p_other, _ = trainer.predict(with_other_eeg(DATA), SPLIT.test, "valence")
    np.testing.assert_array_equal(p_same, p_other)
    np.testing.assert_allclose(p_same, result.test.probabilities)


def test_teacher_sees_its_own_standardisation(teacher):
    t = fresh_teacher(teacher)
    student = build_model("eog", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0, **STREAM_SMALL)
    trainer = baselines.EmotionKDTrainer(student, t, CONFIG)
    assert trainer.train_modalities == ("eog", "eeg") and trainer.modalities == ("eog",)
    # Deliberately different statistics from the teacher's.
    trainer.scaler = ChannelScaler.fit(DATA, SPLIT.train, ("eog", "eeg"), seed=5, max_segments=7)
    rows = SPLIT.train[:4]
    raw = {k: torch.from_numpy(v) for k, v in DATA.batch(rows, ("eog", "eeg")).items()}
    batch, _ = trainer._to_device(raw, torch.zeros(4, dtype=torch.long))
    with torch.no_grad():
        expected = t.model.eval()(t.scaler(raw)).logits
    torch.testing.assert_close(trainer.teacher_output(batch).logits, expected, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(batch["eog"], trainer.scaler({"eog": raw["eog"]})["eog"])


def test_cgan_resume_matches_uninterrupted(teacher, tmp_path, monkeypatch):
    whole = method_named("cgan").run(cell("cgan"), DATA, SPLIT, fresh_teacher(teacher), tmp_path / "a").train

    original = baselines.CGANTrainer.train_epoch

    def fail_in_epoch_2(self, data, split, target, epoch):
        if epoch == 2:
            raise KeyboardInterrupt
        return original(self, data, split, target, epoch)

    monkeypatch.setattr(baselines.CGANTrainer, "train_epoch", fail_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        method_named("cgan").run(cell("cgan"), DATA, SPLIT, fresh_teacher(teacher), tmp_path / "b")
    monkeypatch.setattr(baselines.CGANTrainer, "train_epoch", original)
    state = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert set(state["parts"]) == {"discriminator", "disc_optimizer"}
    resumed = method_named("cgan").run(cell("cgan"), DATA, SPLIT, fresh_teacher(teacher), tmp_path / "b").train
    np.testing.assert_allclose(resumed.test.probabilities, whole.test.probabilities, rtol=1e-5, atol=1e-6)
    assert [r["train_disc_loss"] for r in resumed.history] == pytest.approx(
        [r["train_disc_loss"] for r in whole.history])


def test_cgan_settings_are_checked():
    with pytest.raises(ValueError, match="reconstruction"):
        baselines.CGANConfig(reconstruction="l3")
    with pytest.raises(TypeError, match="adversarial"):
        baselines.CGANConfig(adversarial=1.0)
    with pytest.raises(ValueError, match="adv_weight must be a finite number >= 0"):
        baselines.CGANConfig(adv_weight=float("nan"))


def test_emotionkd_same_seed_same_numbers(teacher, tmp_path):
    one = replace(cell("emotionkd"), train=replace(CONFIG, epochs=1))
    a = method_named("emotionkd").run(one, DATA, SPLIT, fresh_teacher(teacher), tmp_path / "a")
    b = method_named("emotionkd").run(one, DATA, SPLIT, fresh_teacher(teacher), tmp_path / "b")
    np.testing.assert_array_equal(a.train.test.probabilities, b.train.test.probabilities)
    # The released code's final-training weights, and its feedback on by default.
    assert a.extra["feedback"] is True and (a.extra["loss"]["ce"], a.extra["loss"]["kl"], a.extra["loss"]["mse"]) \
        == (1.0, 0.1, 1.0)


def test_emotionkd_student_fuses_every_depth():
    student = baselines.EmotionKDStudent(DEAP.channel_counts(), n_times=N_TIMES).eval()
    x = {"eog": torch.randn(3, 2, N_TIMES)}
    out = student(x)
    n_tokens, width = student.stream.front_end.n_tokens, student.config.stream.d_model
    assert out.features.shape == (3, n_tokens * width) and out.logits.shape == (3, 2)
    assert sorted(out.taps) == ["score_1", "score_2", "score_3"]
    # Softsign scores lie in (-1, 1), one per token and channel of each depth.
    assert all(s.shape == (3, n_tokens, width) and s.abs().max() < 1 for s in out.taps.values())
    # Silencing each depth's score block changes the fused features: every depth contributes.
    for depth in range(3):
        with torch.no_grad():
            student.fusion.scores[depth][-3].weight.zero_()
            student.fusion.scores[depth][-3].bias.zero_()
            changed = student(x).features
        assert not torch.allclose(changed, out.features)
        out = student(x)


def test_emotionkd_feedback_is_the_teachers_own_cross_entropy(teacher):
    # The student's CE enters the feedback loss as a constant (as in the released code):
    # the teacher's step is the same whatever the student predicts.
    steps = []
    for seed in (0, 1):
        t = fresh_teacher(teacher)
        stream = StreamConfig(front_end=FrontEndConfig(n_temporal_filters=2), d_model=8, n_heads=2,
                              ff_width=8, depth=1)
        student = baselines.EmotionKDStudent(DEAP.channel_counts(), n_times=N_TIMES,
                                             config=baselines.EmotionKDConfig(stream))
        torch.manual_seed(seed)
        for p in student.parameters():
            p.data.normal_()
        trainer = baselines.EmotionKDTrainer(student, t, CONFIG)
        trainer.scaler = t.scaler
        raw = {k: torch.from_numpy(v) for k, v in DATA.batch(SPLIT.train[:8], ("eog", "eeg")).items()}
        y = torch.from_numpy(DATA.labels("valence")[SPLIT.train[:8]])
        batch, y = trainer._to_device(raw, y)
        torch.manual_seed(0)
        logged = trainer._feedback_step(batch, y)
        steps.append(({k: v.clone() for k, v in t.model.state_dict().items()}, logged))
    (first, one), (second, two) = steps
    assert one["feedback_loss"] != two["feedback_loss"]
    assert one["teacher_ce"] == pytest.approx(two["teacher_ce"])
    for name in first:
        torch.testing.assert_close(first[name], second[name])


def test_cgan_conditions_on_eog_by_default():
    assert baselines.CGANConfig().condition == "eog"
    with pytest.raises(ValueError, match="condition"):
        baselines.CGANConfig(condition="noise")


def test_fitnets_stage_1_trains_only_up_to_the_guided_layer(teacher, tmp_path):
    t = fresh_teacher(teacher)
    student = build_model("student", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0,
                          **{**SMALL, "depth": 2, "taps": (1, 2)})
    before = {k: v.clone() for k, v in student.named_parameters()}
    hints = baselines.HintTrainer(student, t.model, t.scaler, CONFIG, tmp_path, guided="x1", hint="eeg_1",
                                  projector=baselines.fitnets.FeatureProjector(16, 8))
    history = hints.fit_hints(DATA, SPLIT, "valence")
    assert len(history) == CONFIG.epochs and all(np.isfinite(r["train_hint"]) for r in history)
    # Parameters only: a batch norm's running statistics follow every forward pass in training mode.
    moved = {k for k, v in student.named_parameters() if not torch.equal(v, before[k])}
    # Front end, layer 1 and its readout move; layer 2, its readout, the fusion and the head do not.
    assert any(k.startswith("stream.stream.front_end") for k in moved)
    assert any(k.startswith("stream.stream.layers.0") for k in moved)
    assert any(k.startswith("stream.readouts.1") for k in moved)
    assert not [k for k in moved if k.startswith(("stream.stream.layers.1", "stream.readouts.2", "fusion",
                                                   "classifier"))]
    # A second call reads hints.pt back instead of training again.
    again = baselines.HintTrainer(build_model("student", n_channels=DEAP.channel_counts(), n_times=N_TIMES,
                                              seed=3, **{**SMALL, "depth": 2, "taps": (1, 2)}),
                                  t.model, t.scaler, CONFIG, tmp_path, guided="x1", hint="eeg_1",
                                  projector=baselines.fitnets.FeatureProjector(16, 8))
    assert again.fit_hints(DATA, SPLIT, "valence") == history
    for k, v in again.model.state_dict().items():
        torch.testing.assert_close(v, student.state_dict()[k])
    # A hints.pt that does not match its checksum is never read: stage 1 is trained again.
    (tmp_path / "hints.pt").write_bytes((tmp_path / "hints.pt").read_bytes()[:1000])
    redone = baselines.HintTrainer(build_model("student", n_channels=DEAP.channel_counts(), n_times=N_TIMES,
                                               seed=0, **{**SMALL, "depth": 2, "taps": (1, 2)}),
                                   fresh_teacher(teacher).model, t.scaler, CONFIG, tmp_path, guided="x1",
                                   hint="eeg_1", projector=baselines.fitnets.FeatureProjector(16, 8))
    with pytest.warns(UserWarning, match=r"hints.pt: its SHA-256 does not match.*training the hint stage again"):
        retrained = redone.fit_hints(DATA, SPLIT, "valence")
    assert len(retrained) == CONFIG.epochs
    assert read_checkpoint(tmp_path / "hints.pt")["history"] == retrained  # written again, verified


def test_fitnets_settings_are_checked():
    with pytest.raises(ValueError, match="hint_epochs"):
        baselines.FitNetsConfig(hint_epochs=0)
    assert baselines.FitNetsConfig().epochs_of_stage_1(12) == 3
    assert baselines.FitNetsConfig().epochs_of_stage_1(2) == 1
    with pytest.raises(ValueError, match="unknown option"):
        method_named("fitnets").run(cell("fitnets", lambda_=1), DATA, SPLIT, None, Path("unused"))
