"""The trainer: learning, determinism, checkpoints and resume after an interruption."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.models.outputs import ModelOutput
from mkdbook.splits import trial_split
from mkdbook.metrics import class_prior, score
from mkdbook.train import NonFiniteLossError, TrainConfig, Trainer, write_metrics


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


def learnable_segments(n_subjects: int = 2, n_times: int = 64) -> SegmentSet:
    """Segments whose vEOG level follows the trial's valence rating."""
    rng = np.random.default_rng(0)
    n_trials, per_trial = 40, 15
    n = n_subjects * n_trials * per_trial
    valence = rng.uniform(1, 9, size=n_subjects * n_trials)
    ratings = np.repeat(np.stack([valence] * 4, 1), per_trial, axis=0).astype(np.float32)
    signals = rng.standard_normal((n, 40, n_times)).astype(np.float32)
    signals[:, 33] += 1.5 * (ratings[:, :1] > 5)
    return SegmentSet(signals, np.repeat(np.arange(1, n_subjects + 1), n_trials * per_trial),
                      np.tile(np.repeat(np.arange(n_trials), per_trial), n_subjects),
                      np.tile(np.arange(per_trial), n_subjects * n_trials), ratings,
                      SegmentConfig(), "test")


DATA = learnable_segments()
SPLIT = trial_split(DATA, fold=0, seed=0)
CONFIG = TrainConfig(epochs=4, batch_size=32, lr=3e-3, patience=10, progress=False, device="cpu")


def test_learns_and_reports_scores(tmp_path):
    result = Trainer(TinyEOGNet(), CONFIG, tmp_path).fit(DATA, SPLIT, "valence")
    assert result.test.accuracy > 0.8
    assert result.test.n == len(SPLIT.test)
    assert [row["epoch"] for row in result.history] == [1, 2, 3, 4]
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "val_f1"} <= set(result.history[0])
    best = min(result.history, key=lambda r: r["val_loss"])["epoch"]
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
