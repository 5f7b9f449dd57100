"""The distillation fit loop: loss terms, feedback scheduling, quiz-only feedback data, resume, methods."""

from __future__ import annotations

from dataclasses import replace

import copy
import dataclasses
import math

import numpy as np
import pytest
import torch

from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentSet
from mkdbook.distillation.feedback import FeedbackConfig
from mkdbook.distillation.feedback import FeedbackDistiller
from mkdbook.distillation.losses import DistillationLossConfig
from mkdbook.distillation.teacher_student import Restandardise
from mkdbook.distillation.teaching import Distiller
from mkdbook.models import build_model
from mkdbook.splits import Split, trial_split, with_quiz
from mkdbook.training.trainer import ChannelScaler, TrainConfig, Trainer

from conftest import make_segments

torch.set_num_threads(1)

N_TIMES = 128
TINY = dict(d_model=16, n_heads=2, ff_width=32, n_temporal_filters=8)
TEACHER = dict(fusion_width=16, fusion_hidden=16, **TINY)
STUDENT = dict(fusion_width=8, fusion_hidden=8, **TINY)
CONFIG = TrainConfig(epochs=2, batch_size=32, lr=3e-3, patience=10, progress=False, device="cpu")


def segments(n_subjects: int = 2) -> SegmentSet:
    """Forty trials of eight segments per subject; vEOG amplitude (and one EEG channel's) follows the valence."""
    # Amplitude, not offset: the networks' front ends read band power.
    return make_segments(n_subjects, 40, 8, N_TIMES, gain={33: 0.6, 3: 1.0}, eeg_scale=20.0,
                         source="tiny test segments")


DATA = segments()
SPLIT = trial_split(DATA, fold=0, seed=0)


@pytest.fixture(scope="module")
def teacher() -> Trainer:
    trainer = Trainer(build_model("teacher", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0, **TEACHER), CONFIG)
    trainer.fit(DATA, SPLIT, "valence")
    return trainer


def student() -> torch.nn.Module:
    return build_model("student", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0, **STUDENT)


def distiller(teacher: Trainer, out_dir=None, **kwargs) -> Distiller:
    kind = FeedbackDistiller if "feedback" in kwargs else Distiller
    return kind(student(), copy.deepcopy(teacher.model), teacher.scaler, CONFIG, out_dir, **kwargs)


def strip(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.mark.parametrize("mode", ["global", "subject"])
def test_restandardise_feeds_the_teacher_its_own_standardisation(teacher, mode):
    assert teacher.scaler.mode == "subject"  # the default
    rows = np.sort(np.concatenate([SPLIT.train[:4], SPLIT.train[-4:]]))  # both subjects
    batch = {k: torch.from_numpy(v) for k, v in DATA.batch(rows, ("eeg", "eog")).items()}
    # Deliberately different statistics, in either mode, per subject or pooled.
    other = ChannelScaler.fit(DATA, SPLIT.val, ("eeg", "eog"), mode=mode)
    teacher.model.eval()
    wrapped = Restandardise(teacher.model, other, teacher.scaler)
    with torch.no_grad():
        expected = teacher.model(teacher.scaler(batch)).logits
        got = wrapped(other(batch)).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
    assert list(wrapped.parameters()) == list(teacher.model.parameters())


def test_distillation_logs_every_term_and_leaves_the_teacher_alone(teacher):
    before = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    run = distiller(teacher, loss=DistillationLossConfig.fusion())
    result = run.fit(DATA, SPLIT, "valence")
    for row in result.history:
        for key in ("train_loss", "train_ce", "train_kl", "train_mse", "teacher_val_accuracy", "agreement"):
            assert math.isfinite(row[key]), key
        assert row["train_loss"] == pytest.approx(row["train_ce"] + row["train_kl"] + row["train_mse"], rel=1e-5)
    assert run.summary()["feedback_log"] == [] and run.step == math.ceil(len(SPLIT.train) / CONFIG.batch_size) * 2
    for name, value in run.teacher.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert run.teacher_before == run.teacher_after and run.teacher_before_test == run.teacher_after_test
    assert run.teacher_before != run.teacher_before_test  # two different sets were scored
    assert run.used_split is SPLIT
    assert result.test.accuracy > 0.7


def test_hinton_has_no_feature_term(teacher):
    run = distiller(teacher, loss=DistillationLossConfig.hinton())
    assert run.projector is None
    row = run.fit(DATA, SPLIT, "valence").history[0]
    assert "train_mse" not in row and row["train_loss"] == pytest.approx(row["train_ce"] + row["train_kl"], rel=1e-5)


class Unshared(FeedbackConfig):
    """The feedback phase runs the teacher on the training batch again."""

    shares_teaching_pass = False


def test_sharing_the_teaching_steps_teacher_pass_changes_no_number(teacher):
    runs = [distiller(teacher, feedback=kind(every=3, alpha=0.1, teacher_lr=1e-3))
            for kind in (FeedbackConfig, Unshared)]
    rows = [0, 0]  # segments the teacher ran on
    for i, run in enumerate(runs):
        run.teacher.register_forward_hook(lambda _, __, out, i=i: rows.__setitem__(i, rows[i] + len(out.logits)))
    results = [run.fit(DATA, SPLIT, "valence") for run in runs]
    n_phases = len(runs[0].feedback_log)
    # Unshared, each phase runs the teacher again on the pilot's half of a training batch.
    assert n_phases >= 5 and n_phases <= rows[1] - rows[0] <= n_phases * CONFIG.batch_size // 2
    assert strip(runs[0].feedback_log) == strip(runs[1].feedback_log)
    assert [strip([row]) for row in results[0].history] == [strip([row]) for row in results[1].history]
    for a, b in zip(runs[0].teacher.state_dict().values(), runs[1].teacher.state_dict().values()):
        assert torch.equal(a, b)


def test_feedback_every_k_steps_with_both_gradient_paths_on_the_quiz_set(teacher):
    every = 7
    run = distiller(teacher, feedback=FeedbackConfig(every=every, alpha=0.1, teacher_lr=1e-3))
    run.fit(DATA, SPLIT, "valence")
    assert [row["step"] for row in run.feedback_log] == list(range(every, run.step + 1, every))
    assert [row["phase"] for row in run.feedback_log] == list(range(1, len(run.feedback_log) + 1))
    for row in run.feedback_log:
        assert row["grad_norm_via_student"] > 0 and row["grad_norm_teacher_ce"] > 0
        assert math.isfinite(row["teacher_quiz_ce"]) and row["teacher_step_norm"] > 0
    assert any(not torch.equal(a, b) for a, b in
               zip(run.teacher.state_dict().values(), teacher.model.state_dict().values()))
    # The student trained on the training trials minus the quiz set; the teacher's updates
    # used only the quiz set: no validation, test or student-training segment.
    used_split = run.used_split
    np.testing.assert_array_equal(used_split.val, SPLIT.val)
    np.testing.assert_array_equal(used_split.test, SPLIT.test)
    np.testing.assert_array_equal(np.sort(np.concatenate([used_split.train, used_split.quiz])), SPLIT.train)
    assert run.step == math.ceil(len(used_split.train) / CONFIG.batch_size) * CONFIG.epochs
    used = np.fromiter(run.feedback_rows, dtype=np.int64)
    assert np.isin(used, used_split.quiz).all()
    summary = run.summary()
    assert summary["feedback_rows_outside_source"] == 0
    assert summary["feedback_rows_in_validation"] == 0 and summary["feedback_rows_in_test"] == 0
    assert summary["teacher_after"] != summary["teacher_before"]
    assert summary["teacher_after_test"] != summary["teacher_before_test"]


@pytest.mark.parametrize("quiz_batch", [5, 12])
def test_quiz_batches_are_nearly_equal_and_cycle_through_the_quiz_set(teacher, monkeypatch, quiz_batch):
    import mkdbook.distillation.feedback

    sizes = []
    phase = mkdbook.distillation.feedback.feedback_phase

    def recording(*args, **kwargs):
        sizes.append(len(args[6]))  # y_quiz
        return phase(*args, **kwargs)

    monkeypatch.setattr(mkdbook.distillation.feedback, "feedback_phase", recording)
    run = distiller(teacher, feedback=FeedbackConfig(every=2, quiz_batch=quiz_batch))
    run.fit(DATA, SPLIT, "valence")
    n_quiz = len(run.used_split.quiz)
    per_cycle = -(-n_quiz // quiz_batch)
    assert len(sizes) > per_cycle, "the test needs more phases than a cycle has batches"
    # The fewest batches of at most quiz_batch segments, as equal as they can be (never a
    # straggler of one segment, which batch normalisation cannot train on); every quiz segment is drawn.
    expected = [len(part) for part in np.array_split(np.arange(n_quiz), per_cycle)]
    assert sizes == [expected[k % per_cycle] for k in range(len(sizes))]
    assert max(sizes) <= quiz_batch and max(sizes) - min(sizes) <= 1
    assert sorted(run.feedback_rows) == sorted(int(r) for r in run.used_split.quiz)


def test_the_literal_protocol_feeds_back_on_validation_and_trains_on_all_training_trials(teacher):
    run = distiller(teacher, feedback=FeedbackConfig(every=7, feedback_on="validation", steps=2))
    run.fit(DATA, SPLIT, "valence")
    assert run.used_split is SPLIT and not len(run.used_split.quiz)
    used = np.fromiter(run.feedback_rows, dtype=np.int64)
    assert np.isin(used, SPLIT.val).all()
    summary = run.summary()
    assert summary["feedback_rows_outside_source"] == 0 and summary["feedback_rows_in_test"] == 0
    # Two teacher updates per phase, each its own row.
    assert [row["update"] for row in run.feedback_log] == [1, 2] * (len(run.feedback_log) // 2)
    with pytest.raises(ValueError, match="quiz set"):
        distiller(teacher, feedback=FeedbackConfig(feedback_on="validation")).fit(
            DATA, with_quiz(SPLIT, DATA), "valence")


def test_the_control_fine_tunes_the_teacher_without_the_student(teacher):
    run = distiller(teacher, feedback=FeedbackConfig(every=7, student_term=False))
    run.fit(DATA, SPLIT, "valence")
    assert run.feedback_log and all(row["grad_norm_via_student"] == 0 and row["teacher_step_norm"] > 0
                                    for row in run.feedback_log)
    assert len(run.used_split.quiz) and run.summary()["feedback_rows_outside_source"] == 0


def test_feedback_refuses_a_split_whose_validation_is_test(teacher):
    leaky = Split(SPLIT.kind, SPLIT.fold, SPLIT.n_folds, SPLIT.seed, SPLIT.train, SPLIT.test, SPLIT.test,
                  SPLIT.shared_trials)
    with pytest.raises(ValueError, match="overlap"):
        distiller(teacher, feedback=FeedbackConfig()).fit(DATA, leaky, "valence")


class Interrupted(Exception):
    pass


class InterruptAt(FeedbackDistiller):
    def train_epoch(self, data, split, target, epoch):
        if epoch == 2:
            raise Interrupted
        return super().train_epoch(data, split, target, epoch)


def test_resume_matches_an_uninterrupted_run(teacher, tmp_path):
    feedback = FeedbackConfig(every=5, alpha=0.1, teacher_lr=1e-3)
    whole = distiller(teacher, tmp_path / "whole", feedback=feedback)
    whole_result = whole.fit(DATA, SPLIT, "valence")
    with pytest.raises(Interrupted):
        InterruptAt(student(), copy.deepcopy(teacher.model), teacher.scaler, CONFIG, tmp_path / "cut",
                    feedback=feedback).fit(DATA, SPLIT, "valence")
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["extra"]["step"] > 0
    resumed = distiller(teacher, tmp_path / "cut", feedback=feedback)
    resumed_result = resumed.fit(DATA, SPLIT, "valence")
    assert strip(resumed_result.history) == strip(whole_result.history)
    assert strip(resumed.feedback_log) == strip(whole.feedback_log)
    assert resumed.teacher_before == whole.teacher_before and resumed.teacher_after == whole.teacher_after
    assert resumed.teacher_after_test == whole.teacher_after_test
    np.testing.assert_array_equal(resumed_result.test.probabilities, whole_result.test.probabilities)
    for name, value in whole.teacher.state_dict().items():
        assert torch.equal(resumed.teacher.state_dict()[name], value), name


def test_methods_are_registered_and_run_through_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))
    from mkdbook.experiments.grids import Grid, run_grid
    from mkdbook.experiments.methods import method_named

    assert all(method_named(name).needs_teacher for name in ("hinton", "fitnets", "fusion", "fusion+feedback"))
    small = segments(n_subjects=1)
    options = {"teacher-without-quiz": TEACHER,
               "fusion+feedback": {"every": 4, **{f"student_{k}": v for k, v in STUDENT.items()}}}
    grid = Grid(("fusion+feedback",), targets=("valence",), folds=(0,), n_folds=5,
                train=TrainConfig(epochs=1, batch_size=32, progress=False, device="cpu"), options=options)
    table = run_grid(grid, small, progress=False)
    assert set(table["method"]) == {"fusion+feedback"}
    from mkdbook.core.paths import results_dir
    records = [p for p in results_dir().glob("*/result.json")]
    import json
    extras = [json.loads(p.read_text())["extra"] for p in records]
    distilled = [e for e in extras if "feedback_log" in e]
    assert len(distilled) == 1 and distilled[0]["feedback_log"]
    assert distilled[0]["feedback_rows_in_test"] == 0 and distilled[0]["feedback_rows_in_validation"] == 0
    record = json.loads(next(p for p in records if "feedback_log" in json.loads(p.read_text())["extra"]).read_text())
    trials = {part: set(names) for part, names in record["trials"].items()}
    assert set(trials) == {"train", "quiz", "val", "test"} and trials["quiz"]
    assert all(not trials[a] & trials[b] for a in trials for b in trials if a < b)
    assert record["split"]["quiz"] > 0 and record["split"]["val"] + record["split"]["test"] > 0
    # V3's teacher was pretrained without the quiz trials: its feedback phase updates
    # it on trials it has never seen, the quiz it held out being V3's.
    teacher = next(json.loads(p.read_text()) for p in records if "feedback_log" not in json.loads(p.read_text())["extra"])
    assert teacher["cell"]["method"] == "teacher-without-quiz"
    assert set(teacher["trials"]["quiz"]) == trials["quiz"]
    assert not set(teacher["trials"]["train"]) & trials["quiz"]
    assert set(teacher["trials"]["train"]) == trials["train"]
    with pytest.raises(ValueError, match=r"option\(s\) \['quiz_fraction'\] are fixed by the method"):
        run_grid(replace(grid, options={**options, "fusion+feedback": {"quiz_fraction": 0.25}}), small,
                 progress=False)
    with pytest.raises(ValueError, match="unknown option"):
        run_grid(Grid(("fusion",), targets=("valence",), folds=(0,), n_folds=5, train=grid.train,
                      options={"teacher": TEACHER, "fusion": {"every": 3}}), small, progress=False)


def _recorded_batch_sizes(monkeypatch, trainer_class) -> list[int]:
    """The sizes of the batches ``trainer_class.train_step`` is called with, from now on."""
    sizes = []
    step = trainer_class.train_step

    def recording(self, batch, y):
        sizes.append(len(y))
        return step(self, batch, y)

    monkeypatch.setattr(trainer_class, "train_step", recording)
    return sizes


@pytest.mark.parametrize("remainder", [1, 2])
def test_an_epoch_leaves_out_a_last_batch_too_small_for_a_feedback_pilot(teacher, monkeypatch, remainder):
    # A last batch of one segment cannot pass batch normalisation in training mode, and one of
    # two gives the pilot (every second segment) a single one: both crashed a V3 run.
    n_train = 3 * CONFIG.batch_size + remainder
    split = dataclasses.replace(SPLIT, train=SPLIT.train[:n_train])
    sizes = _recorded_batch_sizes(monkeypatch, FeedbackDistiller)
    run = distiller(teacher, feedback=FeedbackConfig(every=1, feedback_on="validation"))
    assert run.min_batch == FeedbackConfig().pilot_stride + 1 == 3
    run.fit(DATA, split, "valence")
    assert sizes == [CONFIG.batch_size] * 3 * CONFIG.epochs
    # A plain trainer needs two segments: it leaves out a last batch of one, keeps one of two.
    plain_sizes = _recorded_batch_sizes(monkeypatch, Trainer)
    plain = Trainer(student(), CONFIG)
    assert plain.min_batch == 2
    plain.fit(DATA, split, "valence")
    assert plain_sizes == ([CONFIG.batch_size] * 3 + ([2] if remainder == 2 else [])) * CONFIG.epochs
