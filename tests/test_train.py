"""The trainer: learning, determinism, checkpoints and resume after an interruption."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from mkdbook.analysis.band_power import modality_band_power, score_classifier, standardise_features
from mkdbook.data.segments import TRIAL_ID, SegmentSet, TrialBaseline
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import subject_split, trial_split
from mkdbook.training.metrics import class_prior, score
from mkdbook.training.standardisation import ChannelScaler
from mkdbook.training.trainer import NonFiniteLossError, TrainConfig, Trainer, selection_criterion, write_metrics

from conftest import make_segments


class TinyEOGNet(nn.Module):
    modalities = ("eog",)

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv1d(2, 4, 9, stride=4)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(4, 2)

    def forward(self, batch):
        x = self.drop(torch.relu(self.conv(batch["eog"]))).mean(-1)
        return ModelOutput(self.head(x))


#: Two subjects, forty trials of fifteen segments of 64 samples; the vEOG level follows the valence.
DATA = make_segments(2, 40, 15, 64, shift={33: 1.5})
SPLIT = trial_split(DATA, fold=0, seed=0)
CONFIG = TrainConfig(epochs=4, batch_size=32, lr=3e-3, patience=10, progress=False, device="cpu")


def test_learns_and_reports_scores(tmp_path):
    result = Trainer(TinyEOGNet(), CONFIG, tmp_path).fit(DATA, SPLIT, "valence")
    assert result.test.accuracy > 0.8
    assert result.test.n == len(SPLIT.test)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1"} <= set(result.history[0])
    # The default criterion: highest validation balanced accuracy, lower loss breaking ties.
    best = max(result.history, key=lambda r: (r["val_balanced_accuracy"], -r["val_loss"]))["epoch"]
    assert result.best_epoch == best
    metrics = write_metrics(result, SPLIT, {"model": "tiny"}, tmp_path / "metrics.json")
    assert metrics["n_test_segments"] == len(SPLIT.test) and metrics["split"]["shared_trials"] == 0


def test_same_seed_same_numbers():
    a = Trainer(TinyEOGNet(), CONFIG).fit(DATA, SPLIT, "valence")
    b = Trainer(TinyEOGNet(), CONFIG).fit(DATA, SPLIT, "valence")
    assert a.history == [dict(r, seconds=s["seconds"]) for r, s in zip(b.history, a.history)]
    np.testing.assert_array_equal(a.test.probabilities, b.test.probabilities)


def test_best_checkpoint_round_trip(tmp_path):
    trainer = Trainer(TinyEOGNet(), CONFIG, tmp_path)
    result = trainer.fit(DATA, SPLIT, "valence")
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    assert state["epoch"] == result.best_epoch
    fresh = TinyEOGNet(seed=1)
    fresh.load_state_dict(state["model"])
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(tensor, fresh.state_dict()[name])


class Interrupted(Exception):
    pass


class InterruptAfter(Trainer):
    def __init__(self, *args, stop_at: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.stop_at = stop_at

    def train_epoch(self, data, split, target, epoch):
        if epoch == self.stop_at:
            raise Interrupted
        return super().train_epoch(data, split, target, epoch)


def test_resume_matches_an_uninterrupted_run(tmp_path):
    whole = Trainer(TinyEOGNet(), CONFIG, tmp_path / "whole").fit(DATA, SPLIT, "valence")
    with pytest.raises(Interrupted):
        InterruptAfter(TinyEOGNet(), CONFIG, tmp_path / "cut", stop_at=3).fit(DATA, SPLIT, "valence")
    done = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert done["epoch"] == 2
    resumed = Trainer(TinyEOGNet(), CONFIG, tmp_path / "cut").fit(DATA, SPLIT, "valence")
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(whole.history)
    np.testing.assert_array_equal(resumed.test.probabilities, whole.test.probabilities)


def test_resume_refuses_another_run_and_ignores_display_flags(tmp_path):
    Trainer(TinyEOGNet(), CONFIG, tmp_path).fit(DATA, SPLIT, "valence")
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = TrainConfig(epochs=5, batch_size=32, lr=1e-2, progress=False, device="cpu")
    with pytest.raises(ValueError, match=r"last.pt: written by another run \(train differ\)"):
        Trainer(TinyEOGNet(), other, tmp_path).fit(DATA, SPLIT, "valence")
    with pytest.raises(ValueError, match=r"another run \(target differ\)"):
        Trainer(TinyEOGNet(), CONFIG, tmp_path).fit(DATA, SPLIT, "arousal")
    other_fold = trial_split(DATA, fold=1, seed=0)
    with pytest.raises(ValueError, match=r"another run \(split differ\)"):
        Trainer(TinyEOGNet(), CONFIG, tmp_path).fit(DATA, other_fold, "valence")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved  # nothing overwritten
    # Progress bars are a display setting: toggling them resumes the same run.
    Trainer(TinyEOGNet(), replace(CONFIG, progress=True), tmp_path).fit(DATA, SPLIT, "valence")


@pytest.mark.parametrize(("changes", "match"), [
    ({"epochs": 0}, "epochs must be an integer >= 1, got 0"),
    ({"patience": -1}, "patience must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"lr": float("inf")}, "lr must be a finite number >= 0"),
    ({"seed": -1}, r"seed must be an integer in \[0, 4294967295\]"),
    ({"seed": 2**40}, "seed must be an integer in"),
    ({"device": "gpu"}, "device must be one of"),
    ({"max_batches": 0}, "max_batches must be an integer >= 1"),
    ({"standardise": "trial"}, "standardise must be one of"),
    ({"select": "accuracy"}, "select must be one of"),
])
def test_train_config_is_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**changes)


def test_non_finite_loss_stops_training(tmp_path):
    with pytest.raises(NonFiniteLossError, match="epoch 1: the training loss became"):
        Trainer(TinyEOGNet(), replace(CONFIG, lr=1e30), tmp_path).fit(DATA, SPLIT, "valence")


def test_early_stopping_stops():
    config = TrainConfig(epochs=30, batch_size=32, lr=0.0, patience=2, progress=False, device="cpu")
    result = Trainer(TinyEOGNet(), config).fit(DATA, SPLIT, "valence")
    assert len(result.history) == 3


def test_scores_expose_a_constant_predictor():
    labels = np.array([1, 1, 1, 0, 1, 0, 1, 1])
    always_high = np.tile([0.2, 0.8], (len(labels), 1))
    scores = score(always_high, labels, prior=class_prior(np.array([1, 1, 0, 1])))
    assert scores.accuracy == 0.75 and scores.majority_rate == 0.75 and scores.majority_class == 1
    assert scores.balanced_accuracy == 0.5 and scores.auc == 0.5
    perfect = score(np.eye(2)[labels] * 0.98 + 0.01, labels, prior=np.array([0.25, 0.75]))
    assert perfect.auc == 1.0 and perfect.balanced_accuracy == 1.0 and perfect.log_loss_gain > 0.5
    assert np.isnan(score(always_high[:4], np.ones(4, dtype=int)).auc)  # one class: AUC undefined


def test_metrics_file_reports_every_score(tmp_path):
    result = Trainer(TinyEOGNet(), CONFIG).fit(DATA, SPLIT, "valence")
    metrics = write_metrics(result, SPLIT, {}, tmp_path / "metrics.json")
    for name in ("accuracy", "f1", "balanced_accuracy", "auc", "majority_rate", "log_loss_gain"):
        assert np.isfinite(metrics[f"test_{name}"]), name
    majority = np.bincount(DATA.labels("valence")[SPLIT.train]).argmax()
    assert metrics["test_majority_rate"] == np.mean(DATA.labels("valence")[SPLIT.test] == majority)


def shifted_segments() -> SegmentSet:
    """Three subjects whose channels have their own offsets and gains, with baseline statistics."""
    rng = np.random.default_rng(1)
    n_subjects, n_trials, per_trial = 3, 10, 4
    n = n_subjects * n_trials * per_trial
    subject = np.repeat(np.arange(1, n_subjects + 1), n_trials * per_trial)
    offset = rng.normal(0, 50, (n_subjects, 40))[subject - 1][..., None]
    gain = rng.uniform(1, 20, (n_subjects, 40))[subject - 1][..., None]
    signals = (offset + gain * rng.standard_normal((n, 40, 32))).astype(np.float32)
    ratings = rng.uniform(1, 9, (n_subjects * n_trials, 4))
    trial_id = np.arange(1, n_subjects + 1).repeat(n_trials) * 1000 + np.tile(np.arange(n_trials), n_subjects)
    baseline = TrialBaseline(trial_id, rng.normal(0, 5, (len(trial_id), 40)).astype(np.float32),
                             rng.uniform(1, 3, (len(trial_id), 40)).astype(np.float32))
    return make_segments(n_subjects, n_trials, per_trial, 32, ratings=ratings, signals=signals, baseline=baseline)


SHIFTED = shifted_segments()


def scaled_batch(scaler: ChannelScaler, rows: np.ndarray) -> dict:
    return scaler({k: torch.from_numpy(v) for k, v in SHIFTED.batch(np.sort(rows), ("eog", "eeg")).items()})


def test_subject_statistics_come_from_that_subjects_training_trials_only():
    split = trial_split(SHIFTED, fold=0, n_folds=5, seed=0)
    scaler = ChannelScaler.fit(SHIFTED, split.train, ("eeg", "eog"), mode="subject", per_subject=10_000)
    for k, subject in enumerate(scaler.groups.tolist()):
        own = split.train[SHIFTED.subject[split.train] == subject]
        values = SHIFTED.modality("eeg", own).astype(np.float64)
        np.testing.assert_allclose(scaler.group_mean["eeg"][k, :, 0], values.mean((0, 2)), rtol=1e-4)
        np.testing.assert_allclose(scaler.group_std["eeg"][k, :, 0], values.std((0, 2)), rtol=1e-4)
    # Whatever the validation and test segments hold, the statistics do not move.
    garbled = replace(SHIFTED, signals=SHIFTED.signals.copy())
    garbled.signals[np.concatenate([split.val, split.test])] *= 100
    again = ChannelScaler.fit(garbled, split.train, ("eeg", "eog"), mode="subject", per_subject=10_000)
    torch.testing.assert_close(again.group_std["eog"], scaler.group_std["eog"])
    # Per subject, the training segments come out centred with unit spread.
    for subject in SHIFTED.subjects:
        scaled = scaled_batch(scaler, split.train[SHIFTED.subject[split.train] == subject])["eeg"]
        assert float(scaled.mean((0, 2)).abs().max()) < 1e-3
        torch.testing.assert_close(scaled.std((0, 2)), torch.ones(32), atol=0.02, rtol=0)


def test_a_subject_without_training_trials_gets_the_pooled_statistics():
    split = subject_split(SHIFTED, fold=0, n_folds=3, seed=0)
    scaler = ChannelScaler.fit(SHIFTED, split.train, ("eeg", "eog"), mode="subject")
    pooled = ChannelScaler.fit(SHIFTED, split.train, ("eeg", "eog"), mode="global")
    test_subject = int(np.unique(SHIFTED.subject[split.test])[0])
    assert test_subject not in scaler.groups.tolist()
    rows = split.test[:6]
    torch.testing.assert_close(scaled_batch(scaler, rows)["eog"], scaled_batch(pooled, rows)["eog"])


def test_baseline_mode_divides_each_trial_by_its_own_baseline():
    split = trial_split(SHIFTED, fold=0, n_folds=5, seed=0)
    scaler = ChannelScaler.fit(SHIFTED, split.train, ("eeg", "eog"), mode="baseline")
    rows = np.sort(split.test[:5])
    scaled = scaled_batch(scaler, rows)
    where = np.searchsorted(SHIFTED.baseline.trial_id, SHIFTED.trial_id[rows])
    expected = ((SHIFTED.modality("eog", rows) - SHIFTED.baseline.mean[where, 32:34, None])
                / (SHIFTED.baseline.std[where, 32:34, None] + 1e-6))
    np.testing.assert_allclose(scaled["eog"].numpy(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(scaled[TRIAL_ID], torch.from_numpy(SHIFTED.trial_id[rows]))
    with pytest.raises(ValueError, match="baseline statistics"):
        ChannelScaler.fit(DATA, SPLIT.train, ("eog",), mode="baseline")
    with pytest.raises(ValueError, match="needs the rows' trial ids"):
        scaler({"eog": torch.zeros(2, 2, 32)})


@pytest.mark.parametrize("mode", ["subject", "baseline", "global"])
def test_every_scaler_saves_as_plain_tensors(tmp_path, mode):
    split = trial_split(SHIFTED, fold=0, n_folds=5, seed=0)
    scaler = ChannelScaler.fit(SHIFTED, split.train, ("eeg", "eog"), mode=mode)
    torch.save(scaler.state_dict(), tmp_path / "scaler.pt")
    loaded = ChannelScaler.from_state_dict(torch.load(tmp_path / "scaler.pt", weights_only=True))
    assert loaded.mode == mode
    for name, value in scaled_batch(scaler, split.test[:7]).items():
        torch.testing.assert_close(scaled_batch(loaded, split.test[:7])[name], value)


def test_standardisation_is_part_of_a_runs_identity(tmp_path):
    Trainer(TinyEOGNet(), replace(CONFIG, epochs=1), tmp_path).fit(DATA, SPLIT, "valence")
    with pytest.raises(ValueError, match=r"another run \(train differ\)"):
        Trainer(TinyEOGNet(), replace(CONFIG, epochs=1, standardise="global"), tmp_path).fit(DATA, SPLIT, "valence")


def test_the_checkpoint_criterion_does_not_reward_a_constant_predictor():
    labels = np.array([1, 1, 1, 0, 1, 0, 1, 1])
    prior = np.array([0.25, 0.75])
    constant = score(np.tile([0.3, 0.7], (8, 1)), labels, prior=prior)           # low loss, learns nothing
    ranking = score(np.where(labels[:, None] == 1, [0.45, 0.55], [0.55, 0.45]), labels, prior=prior)
    assert constant.loss < ranking.loss
    assert selection_criterion(constant, "loss") > selection_criterion(ranking, "loss")
    for select in ("balanced_accuracy", "auc"):
        assert selection_criterion(ranking, select) > selection_criterion(constant, select)
    # Equal scores: the lower loss wins.
    assert selection_criterion(constant, "balanced_accuracy") > selection_criterion(
        score(np.tile([0.4, 0.6], (8, 1)), labels, prior=prior), "balanced_accuracy")


@pytest.mark.filterwarnings("ignore:nperseg")  # 32-sample segments: Welch uses one window
def test_band_power_features_follow_the_same_standardisation():
    split = trial_split(SHIFTED, fold=0, n_folds=5, seed=0)
    features = np.hstack([modality_band_power(SHIFTED, name) for name in ("eeg", "eog")])
    # Baseline: the features of the signal divided by each trial's baseline SD, exactly.
    where = np.searchsorted(SHIFTED.baseline.trial_id, SHIFTED.trial_id)
    divided = replace(SHIFTED, signals=(SHIFTED.signals / (SHIFTED.baseline.std[where, :, None] + 1e-6)))
    expected = np.hstack([modality_band_power(divided, name) for name in ("eeg", "eog")])
    got = standardise_features(features, SHIFTED, split, "baseline")
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # Subject: every subject's training features centred with unit spread, from training rows only.
    scaled = standardise_features(features, SHIFTED, split, "subject")
    for subject in SHIFTED.subjects:
        own = split.train[SHIFTED.subject[split.train] == subject]
        np.testing.assert_allclose(scaled[own].mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(scaled[own].std(0), 1, atol=1e-6)
    garbled = features.copy()
    garbled[split.test] += 100.0
    np.testing.assert_array_equal(standardise_features(garbled, SHIFTED, split, "subject")[split.train],
                                  scaled[split.train])
    # A subject without training trials: the pooled training statistics.
    held_out = subject_split(SHIFTED, fold=0, n_folds=3, seed=0)
    pooled = (features - features[held_out.train].mean(0)) / features[held_out.train].std(0)
    np.testing.assert_allclose(standardise_features(features, SHIFTED, held_out, "subject")[held_out.test],
                               pooled[held_out.test], rtol=1e-9)
    np.testing.assert_array_equal(standardise_features(features, SHIFTED, split, "global"), features)
    scores = score_classifier(scaled, SHIFTED.labels("valence"), split)
    assert {"balanced_accuracy", "auc", "majority"} <= set(scores)
