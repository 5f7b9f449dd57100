"""A fixed teacher's outputs, computed once: the same numbers as running it on every batch, keyed by what they depend on."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mkdbook.data.layout import DEAP
from mkdbook.distillation.feedback import FeedbackConfig
from mkdbook.distillation.feedback import FeedbackDistiller
from mkdbook.distillation.losses import DistillationLossConfig
from mkdbook.distillation.teacher_outputs import compute_teacher_outputs, outputs_key, teacher_outputs
from mkdbook.distillation.teaching import Distiller
from mkdbook.models import build_model
from mkdbook.splits import trial_split
from mkdbook.training.trainer import ChannelScaler, Trainer
from test_distiller import CONFIG, DATA, N_TIMES, SPLIT, TEACHER, student

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def teacher() -> Trainer:
    trainer = Trainer(build_model("teacher", n_channels=DEAP.channel_counts(), n_times=N_TIMES, seed=0, **TEACHER),
                      CONFIG)
    trainer.fit(DATA, SPLIT, "valence")
    return trainer


def _distil(teacher: Trainer, fixed: bool, loss: DistillationLossConfig, folder=None) -> Distiller:
    run = Distiller(student(), copy.deepcopy(teacher.model), teacher.scaler, CONFIG, loss=loss,
                    teacher_outputs_folder=folder)
    run.teacher_fixed = fixed  # False: the teacher runs on every training batch, as before
    return run


@pytest.mark.parametrize("loss", [DistillationLossConfig.fusion(), DistillationLossConfig.hinton()],
                         ids=["fusion", "hinton"])
def test_stored_and_on_the_fly_teacher_give_the_same_student(teacher, loss, tmp_path):
    on_the_fly = _distil(teacher, False, loss)
    stored = _distil(teacher, True, loss, tmp_path)
    a, b = on_the_fly.fit(DATA, SPLIT, "valence"), stored.fit(DATA, SPLIT, "valence")
    assert len(list(tmp_path.glob("*.npz"))) == 1 and on_the_fly._stored is None
    assert [row["epoch"] for row in a.history] == [row["epoch"] for row in b.history]
    for row_a, row_b in zip(a.history, b.history):
        for key in ("train_loss", "train_ce", "train_kl", "val_loss", "agreement"):
            assert row_b[key] == pytest.approx(row_a[key], rel=1e-4, abs=1e-5), key
    np.testing.assert_allclose(b.test.probabilities, a.test.probabilities, rtol=1e-4, atol=1e-5)
    for name, value in on_the_fly.model.state_dict().items():
        torch.testing.assert_close(stored.model.state_dict()[name], value, rtol=1e-4, atol=1e-5)


def test_stored_outputs_are_the_teachers_outputs_in_eval_mode(teacher):
    network = copy.deepcopy(teacher.model).train()
    rng_before = torch.get_rng_state()
    outputs = compute_teacher_outputs(network, teacher.scaler, DATA, SPLIT.train[::-1], "features", batch_size=64)
    assert network.training and torch.equal(torch.get_rng_state(), rng_before)  # mode restored, no random draw
    assert np.array_equal(outputs.index, np.sort(SPLIT.train)) and outputs.logits.dtype == torch.float32
    rows = np.sort(np.random.default_rng(0).choice(SPLIT.train, 32, replace=False))
    network.eval()
    with torch.no_grad():
        expected = network(teacher.scaler({k: torch.from_numpy(v) for k, v in DATA.batch(rows, ("eeg", "eog")).items()}))
    got = outputs.lookup(rows)
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.features, expected.features, rtol=1e-5, atol=1e-6)
    with pytest.raises(KeyError, match="no stored teacher output"):
        outputs.lookup(SPLIT.test[:3])
    tap = compute_teacher_outputs(network, teacher.scaler, DATA, SPLIT.train, "eeg_1").lookup(rows)
    assert tap.features is None
    torch.testing.assert_close(tap.taps["eeg_1"], expected.taps["eeg_1"], rtol=1e-5, atol=1e-6)


def test_a_changed_teacher_split_or_standardisation_gets_new_outputs(teacher, tmp_path):
    def stored(network, scaler, index):
        teacher_outputs(network, scaler, DATA, index, folder=tmp_path)
        return sorted(path.name for path in tmp_path.glob("*.npz"))

    key = outputs_key(teacher.model, teacher.scaler, DATA, SPLIT.train, "features")
    assert stored(teacher.model, teacher.scaler, SPLIT.train) == [f"{key}.npz"]
    assert stored(teacher.model, teacher.scaler, SPLIT.train[::-1]) == [f"{key}.npz"]  # order does not matter
    changed = copy.deepcopy(teacher.model)
    with torch.no_grad():
        next(changed.parameters()).view(-1)[0] += 1e-3
    other_split = trial_split(DATA, fold=1, seed=0).train
    other_scaler = ChannelScaler.fit(DATA, SPLIT.train, ("eeg", "eog"), max_segments=100)
    variants = [(changed, teacher.scaler, SPLIT.train), (teacher.model, teacher.scaler, other_split),
                (teacher.model, other_scaler, SPLIT.train)]
    for n, variant in enumerate(variants, start=2):
        assert len(stored(*variant)) == n
    assert outputs_key(teacher.model, teacher.scaler, DATA, SPLIT.train, "pooled") != key


def test_stored_outputs_are_read_back_not_recomputed_and_damage_is_healed(teacher, tmp_path, monkeypatch):
    first = teacher_outputs(teacher.model, teacher.scaler, DATA, SPLIT.train, folder=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    import mkdbook.distillation.teacher_outputs as module

    monkeypatch.setattr(module, "compute_teacher_outputs", lambda *a, **k: pytest.fail("recomputed"))
    again = teacher_outputs(teacher.model, teacher.scaler, DATA, SPLIT.train, folder=tmp_path)
    assert torch.equal(again.logits, first.logits) and torch.equal(again.features, first.features)
    monkeypatch.undo()
    path.write_bytes(b"damaged")
    with pytest.warns(UserWarning, match="unreadable"):
        healed = teacher_outputs(teacher.model, teacher.scaler, DATA, SPLIT.train, folder=tmp_path)
    assert torch.equal(healed.logits, first.logits)


def test_the_feedback_variant_runs_its_changing_teacher_on_every_batch(teacher, tmp_path):
    run = FeedbackDistiller(student(), copy.deepcopy(teacher.model), teacher.scaler, CONFIG,
                            feedback=FeedbackConfig(every=5), teacher_outputs_folder=tmp_path)
    run.fit(DATA, SPLIT, "valence")
    assert not FeedbackDistiller.teacher_fixed and not list(tmp_path.glob("*.npz"))
