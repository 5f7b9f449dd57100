"""Checkpoint integrity: a damaged or unverified checkpoint never changes a reported number.

Damage is of three kinds: bytes flipped inside a stored tensor (which
:func:`torch.load` reads without complaint), a truncated file (which it
cannot read) and a checksum file that is missing (a crash between the two
writes, or a file from before checksums). Each must end in a warning naming
the file and the numbers of an undamaged run, never in a traceback.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

import cluster_methods
from cluster_methods import TRAIN, TinyNet, epochs_logged, tiny_grid, tiny_segments
from mkdbook.cli import main
from mkdbook.core.atomic import write_atomically
from mkdbook.core.paths import results_dir
from mkdbook.experiments import methods
from mkdbook.experiments.grids import run_grid, trained_network
from mkdbook.splits import trial_split
from mkdbook.training import checkpoints
from mkdbook.training.checkpoints import (
    DamagedCheckpointError,
    checksum_path,
    discard_resume_state,
    load_checkpoint,
    load_resume_state,
    previous_path,
    read_checkpoint,
    save_checkpoint,
    save_resume_state,
)
from mkdbook.training.runs import cell_key
from mkdbook.training.trainer import Trainer


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh ``MKDBOOK_HOME`` for this module (segment caches of the cohort included)."""
    folder = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MKDBOOK_HOME", str(folder))
        yield folder


# -- damage ----------------------------------------------------------------------------------


def flip_tensor_bytes(path: Path) -> None:
    """Flip bytes inside the largest tensor stored in ``path``: the file still loads, with other numbers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        record = max((info for info in archive.infolist() if "/data/" in info.filename),
                     key=lambda info: info.file_size)
    name_length, extra_length = struct.unpack("<HH", data[record.header_offset + 26:record.header_offset + 30])
    start = record.header_offset + 30 + name_length + extra_length
    middle = start + record.file_size // 2 // 4 * 4
    # The top mantissa bit of 64 float32 values (little-endian): each grows or
    # shrinks by up to half, and stays finite, so nothing downstream complains.
    for offset in range(middle + 2, min(middle + 256, start + record.file_size), 4):
        data[offset] ^= 0x40
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # the kind of damage that used to go unnoticed


def truncate(path: Path) -> None:
    """Keep the first half of ``path``, as a full disk or a killed copy leaves it."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def drop_checksum(path: Path) -> None:
    """Remove the checksum beside ``path``, as a crash between the two writes leaves it."""
    checksum_path(path).unlink()


DAMAGE = {"flipped": flip_tensor_bytes, "truncated": truncate, "no checksum": drop_checksum}


# -- the checkpoint files --------------------------------------------------------------------


def test_a_checkpoint_round_trips_with_its_checksum_beside_it(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "history": [{"loss": 0.5}]}
    digest = save_checkpoint(tmp_path / "best.pt", state)
    assert digest == hashlib.sha256((tmp_path / "best.pt").read_bytes()).hexdigest()
    # sha256sum's format, so that `sha256sum -c best.pt.sha256` checks it by hand.
    assert (tmp_path / "best.pt.sha256").read_text() == f"{digest}  best.pt\n"
    loaded = read_checkpoint(tmp_path / "best.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["history"] == state["history"]
    assert load_checkpoint(tmp_path / "absent.pt") is None  # absent: no warning, nothing to redo


@pytest.mark.parametrize("damage", [*DAMAGE, "stale checksum", "not a checksum"])
def test_an_unverified_checkpoint_is_never_loaded(tmp_path, damage):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"model": {"w": torch.randn(64, 64)}, "epoch": 1})
    if damage == "stale checksum":  # killed after writing the file, before its checksum
        write_atomically(path, lambda stream: torch.save({"model": {"w": torch.zeros(64, 64)}}, stream))
    elif damage == "not a checksum":
        checksum_path(path).write_text("hello\n")
    else:
        DAMAGE[damage](path)
    with pytest.raises(DamagedCheckpointError, match=str(path)):
        read_checkpoint(path)
    with pytest.warns(UserWarning, match=rf"{path}: .*; it is computed again"):
        assert load_checkpoint(path) is None


def test_the_previous_resume_state_survives_a_crash_between_file_and_checksum(tmp_path, monkeypatch):
    last = tmp_path / "last.pt"
    for epoch in (1, 2):
        save_resume_state(last, {"epoch": epoch})
    assert read_checkpoint(previous_path(last))["epoch"] == 1 and read_checkpoint(last)["epoch"] == 2
    write_checksum = checkpoints._write_checksum

    def killed_before_the_new_checksum(path: Path, digest: str) -> None:
        if path == last:
            raise KeyboardInterrupt
        write_checksum(path, digest)

    monkeypatch.setattr(checkpoints, "_write_checksum", killed_before_the_new_checksum)
    with pytest.raises(KeyboardInterrupt):
        save_resume_state(last, {"epoch": 3})
    monkeypatch.undo()
    assert torch.load(last, weights_only=True)["epoch"] == 3  # whole, but its checksum is epoch 2's
    with pytest.warns(UserWarning, match=r"last.pt: its SHA-256 does not match"):
        assert load_resume_state(last)["epoch"] == 2
    # An unverified last.pt never becomes the previous state.
    save_resume_state(last, {"epoch": 3})
    assert read_checkpoint(previous_path(last))["epoch"] == 2 and read_checkpoint(last)["epoch"] == 3
    discard_resume_state(last)
    assert list(tmp_path.iterdir()) == []


# -- the trainer -----------------------------------------------------------------------------


DATA = tiny_segments()
SPLIT = trial_split(DATA, fold=0, n_folds=3, seed=0)
CONFIG = replace(TRAIN, epochs=4)


def fit(folder: Path):
    return Trainer(TinyNet("tiny", ("eog",), 0), CONFIG, folder).fit(DATA, SPLIT, "valence")


def numbers(result) -> tuple:
    history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
    return result.best_epoch, history, result.test.summary(), result.val.summary()


def assert_warned_about(caught: pytest.WarningsRecorder, names: list[str]) -> None:
    """Each damaged checkpoint was named in a warning."""
    warned = [str(warning.message) for warning in caught]
    for name in names:
        assert any(f"/{name}: " in message for message in warned), (name, warned)


class Interrupted(Exception):
    pass


def interrupt_at(monkeypatch: pytest.MonkeyPatch, stop_at: int) -> None:
    train_epoch = Trainer.train_epoch

    def interrupted(self, data, split, target, epoch):
        if epoch == stop_at:
            raise Interrupted
        return train_epoch(self, data, split, target, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)


@pytest.mark.parametrize("checkpoint", ["best.pt", "last.pt", "last.pt and last.prev.pt"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_resumed_run_reports_the_numbers_of_an_undamaged_one(tmp_path, monkeypatch, checkpoint, damage):
    whole = numbers(fit(tmp_path / "whole"))
    interrupt_at(monkeypatch, 4)
    with pytest.raises(Interrupted):
        fit(tmp_path / "cut")
    monkeypatch.undo()
    names = checkpoint.split(" and ")
    for name in names:
        DAMAGE[damage](tmp_path / "cut" / name)
    with pytest.warns(UserWarning) as caught:
        assert numbers(fit(tmp_path / "cut")) == whole
    assert_warned_about(caught, names)
    assert read_checkpoint(tmp_path / "cut" / "best.pt")["epoch"] == whole[0]  # repaired on the way


# -- mkdbook train ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(cohort: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished ``mkdbook train`` run of three epochs: its folder, with ``metrics.json``."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(train(cohort, out)) == 0
    return out


def train(cohort: Path, out: Path) -> list[str]:
    return ["train", str(cohort), "--model", "eog", "--target", "valence", "--epochs", "3",
            "--device", "cpu", "--quiet", "--out", str(out)]


def reported(out: Path) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    return {k: v for k, v in metrics.items() if k.startswith(("test_", "val_")) or k == "best_epoch"} | {
        "history": [{k: v for k, v in row.items() if k != "seconds"} for row in metrics["history"]]}


def rerun(cohort: Path, out: Path, damaged: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run ``mkdbook train`` again on ``out``: exit 0, a warning naming each of ``damaged``; returns its output."""
    with pytest.warns(UserWarning) as caught:
        assert main(train(cohort, out)) == 0
    assert_warned_about(caught, damaged)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.out


@pytest.mark.parametrize("damage", DAMAGE)
def test_train_retrains_or_repairs_a_damaged_best_checkpoint(cohort, finished, tmp_path, capsys, damage):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "metrics.json").unlink()
    DAMAGE[damage](out / "best.pt")
    rerun(cohort, out, ["best.pt"], capsys)
    assert reported(out) == reported(finished)
    read_checkpoint(out / "best.pt")  # verified again


@pytest.mark.parametrize("damage", DAMAGE)
def test_train_resumes_past_a_damaged_last_checkpoint(cohort, finished, tmp_path, monkeypatch, capsys, damage):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, 3)
    with pytest.raises(Interrupted):
        main(train(cohort, out))
    monkeypatch.undo()
    capsys.readouterr()
    DAMAGE[damage](out / "last.pt")
    printed = rerun(cohort, out, ["last.pt"], capsys)
    assert reported(out) == reported(finished)
    assert f"test accuracy {reported(finished)['test_accuracy']:.3f}" in printed


def test_train_starts_again_when_no_resume_state_verifies(cohort, finished, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    (out / "metrics.json").unlink()
    truncate(out / "last.pt")
    drop_checksum(out / "last.prev.pt")
    rerun(cohort, out, ["last.pt", "last.prev.pt"], capsys)
    assert reported(out) == reported(finished)


# -- a cached teacher ------------------------------------------------------------------------


@pytest.fixture
def grid_home(tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + cluster_methods.TINY_METHODS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("checkpoint", ["best.pt", "scaler.pt"])
@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_teacher_is_trained_again_before_any_student_learns_from_it(grid_home, checkpoint, damage):
    grid = tiny_grid(folds=(0,))
    expected = run_grid(grid, DATA, progress=False)
    teacher_cell, student_cell = grid.work_cells(DATA)
    teacher, student = (results_dir() / cell_key(cell) for cell in (teacher_cell, student_cell))
    expected_extra = json.loads((student / "result.json").read_text())["extra"]
    weights = read_checkpoint(teacher / "train" / "best.pt")["model"]
    scaler = read_checkpoint(teacher / "train" / "scaler.pt")
    DAMAGE[damage](teacher / "train" / checkpoint)
    shutil.rmtree(student)  # a student still to compute (a new method of the grid, say)
    before = Counter(line.split()[0] for line in epochs_logged())
    with pytest.warns(UserWarning, match=rf"cached network .*{checkpoint}.*training it again"):
        table = run_grid(grid, DATA, progress=False)
    trained = Counter(line.split()[0] for line in epochs_logged()) - before
    assert trained == Counter({"tiny-teacher/valence/fold0/seed0": 3, "tiny-kd/valence/fold0/seed0": 3})
    pd.testing.assert_frame_equal(table, expected)
    # The student's record holds its teacher's validation accuracy: the teacher's, not the damage's.
    assert json.loads((student / "result.json").read_text())["extra"] == expected_extra
    read_checkpoint(teacher / "train" / checkpoint)
    reloaded = trained_network(teacher_cell, DATA)
    for name, value in reloaded.model.state_dict().items():
        assert torch.equal(value, weights[name]), name
    for modality, mean in reloaded.scaler.state_dict()["mean"].items():
        assert torch.equal(mean, scaler["mean"][modality]), modality
