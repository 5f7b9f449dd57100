"""The CGAN and EmotionKD baselines: training, logged terms, EOG-only inference, resume."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from mkdbook import baselines
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.methods import method_named
from mkdbook.models import build_model
from mkdbook.results import Cell, MethodResult
from mkdbook.splits import trial_split
from mkdbook.teacher_student import TeacherStudentTrainer
from mkdbook.train import ChannelScaler, TrainConfig, Trainer

# Small widths for every network (overrides apply at any depth of the configs).
STREAM_SMALL = {"d_model": 8, "n_heads": 2, "ff_width": 8, "depth": 1, "n_temporal_filters": 2}
SMALL = {**STREAM_SMALL, "taps": (1,), "fusion_width": 16, "fusion_hidden": 16}
CONFIG = TrainConfig(epochs=2, batch_size=16, lr=3e-3, patience=10, progress=False, device="cpu")
EEG = slice(0, 32)  # DEAP rows 0-31 are EEG, 32-33 hEOG/vEOG


def tiny_segments(n_subjects: int = 2, n_trials: int = 10, per_trial: int = 3,
                  n_times: int = 128) -> SegmentSet:
    """Segments whose EEG and vEOG levels follow the trial's valence rating."""
    rng = np.random.default_rng(0)
    n = n_subjects * n_trials * per_trial
    valence = rng.uniform(1, 9, size=n_subjects * n_trials)
    ratings = np.repeat(np.stack([valence] * 4, 1), per_trial, axis=0).astype(np.float32)
    signals = rng.standard_normal((n, 40, n_times)).astype(np.float32)
    signals[:, 33] += 1.5 * (ratings[:, :1] > 5)
    signals[:, 5] += 1.5 * (ratings[:, :1] > 5)
    return SegmentSet(signals, np.repeat(np.arange(1, n_subjects + 1), n_trials * per_trial),
                      np.tile(np.repeat(np.arange(n_trials), per_trial), n_subjects),
                      np.tile(np.arange(per_trial), n_subjects * n_trials), ratings,
                      SegmentConfig(), "test")


DATA = tiny_segments()
SPLIT = trial_split(DATA, fold=0, seed=0)
N_TIMES = DATA.signals.shape[-1]


def with_other_eeg(data: SegmentSet) -> SegmentSet:
    signals = np.array(data.signals, copy=True)
    signals[:, EEG] = np.random.default_rng(1).standard_normal(signals[:, EEG].shape) * 50
    return SegmentSet(signals, data.subject, data.trial, data.position, data.ratings,
                      data.config, data.source)


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
#: the EmotionKD student the single-stream EOG network (no fusion widths).
STUDENT_SMALL = {"cgan": SMALL, "emotionkd": STREAM_SMALL}


def cell(method: str, **settings) -> Cell:
    options = {**STUDENT_SMALL[method], **settings}
    return Cell(method, "valence", 0, 0, train=CONFIG, options=tuple(sorted(options.items())))


EXPECTED_TERMS = {
    "cgan": {"train_loss", "train_ce", "train_adv", "train_rec", "train_disc_loss", "train_d_real",
             "train_d_fake"},
    "emotionkd": {"train_loss", "train_ce", "train_kl", "train_mse"},
}


def test_in_the_method_table():
    for name in ("cgan", "emotionkd"):
        method = method_named(name)
        assert method.needs_teacher and method.teacher == "teacher" and method.role == "distillation baseline"


@pytest.mark.parametrize("method", ["cgan", "emotionkd"])
def test_trains_logs_terms_and_uses_only_eog_at_test_time(method, teacher, tmp_path, monkeypatch):
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
    output = method_named(method).run(cell(method), DATA, SPLIT, t, tmp_path)
    # The student network only ever receives EOG, in training and evaluation.
    assert keys and all(k == {"eog"} for k in keys)
    assert isinstance(output, MethodResult)
    result = output.train
    assert len(result.history) == 2 and result.test.n == len(SPLIT.test)
    for row in result.history:
        assert EXPECTED_TERMS[method] <= set(row)
        assert all(np.isfinite(row[k]) for k in EXPECTED_TERMS[method])
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "scaler.pt").is_file()
    if method == "cgan":
        # The classifier is the teacher's head, unchanged by training.
        best = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
        torch.testing.assert_close(best["classifier.weight"], t.model.classifier.weight)
    # The teacher is frozen: its weights did not move.
    for name, value in t.model.state_dict().items():
        assert torch.equal(value, before[name]), name

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
    assert a.extra["feedback"] is False and a.extra["student_feature"] == "pooled"
