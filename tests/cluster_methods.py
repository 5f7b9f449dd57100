"""Tiny methods for tests whose cells run in other processes (Dask workers, a second driver).

A monkeypatched method table does not reach another process, so the rows
live here, at module level: :func:`install` adds them to the method table of
the process that calls it, and Dask workers call it through ``preload``
(:func:`dask_setup`). Every training epoch appends ``<cell> epoch <k>`` to
``$MKDBOOK_HOME/epochs.log``, with the process id (one short ``O_APPEND``
write, whole even with several writers), so a test counts trainings across
processes.

``tiny-killer`` kills its own process with SIGKILL at the start of its second
epoch, once per ``MKDBOOK_HOME`` (a marker file remembers it), after its first
epoch's ``last.pt`` is written. ``TINY_EPOCH_SECONDS`` makes every epoch
sleep that long, so that two drivers overlap.

Run as a script, it is one driver of the shared-cache test:
``python cluster_methods.py OUT_CSV N`` waits until N drivers are ready (so
that they overlap), runs :func:`tiny_grid` serially and writes the table.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from functools import partial

import torch
from torch import nn

from mkdbook.core.paths import home
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentSet
from mkdbook.experiments import methods
from mkdbook.experiments.grids import Grid
from mkdbook.experiments.methods import Method
from mkdbook.models.outputs import ModelOutput
from mkdbook.training.runs import MethodResult
from mkdbook.training.trainer import TrainConfig, Trainer

from conftest import make_segments

TRAIN = TrainConfig(epochs=3, batch_size=8, lr=3e-3, patience=10, progress=False, device="cpu")


def tiny_segments() -> SegmentSet:
    """Two subjects, nine trials of four segments of 128 samples; vEOG and Fz levels follow the valence."""
    return make_segments(2, 9, 4, 128, shift={18: 1.0, 33: 1.0}, source="tiny test set")


class TinyNet(nn.Module):
    """A convolution, dropout, mean over time and a linear head over the given modalities."""

    def __init__(self, name: str, modalities: tuple[str, ...], seed: int):
        super().__init__()
        self.name, self.modalities = name, modalities
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv1d(sum(DEAP.n_channels(m) for m in modalities), 4, 9, stride=4)
            self.drop = nn.Dropout(0.3)
            self.head = nn.Linear(4, 2)

    def forward(self, batch):
        x = torch.cat([batch[m] for m in self.modalities], 1)
        return ModelOutput(self.head(self.drop(torch.relu(self.conv(x))).mean(-1)))


class LoggingTrainer(Trainer):
    """A trainer that logs its epochs to ``epochs.log`` and, for ``tiny-killer``, dies once."""

    def __init__(self, model, config, out_dir, label: str, kill: bool = False):
        super().__init__(model, config, out_dir)
        self.label, self.kill = label, kill

    def train_epoch(self, data, split, target, epoch):
        marker = home() / "killed"
        if self.kill and epoch == 2 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(float(os.environ.get("TINY_EPOCH_SECONDS", "0")))
        with open(home() / "epochs.log", "a", encoding="utf-8") as log:
            log.write(f"{self.label} epoch {epoch} pid {os.getpid()}\n")
        return super().train_epoch(data, split, target, epoch)


def _label(cell) -> str:
    return f"{cell.method}/{cell.target}/fold{cell.fold}/seed{cell.seed}"


def _build(name: str, modalities: tuple[str, ...]):
    return lambda cell, data: TinyNet(name, modalities, cell.seed)


def _run_network(name: str, modalities: tuple[str, ...], kill: bool, cell, data, split, teacher, out_dir):
    trainer = LoggingTrainer(_build(name, modalities)(cell, data), cell.train, out_dir, _label(cell), kill)
    result = trainer.fit(data, split, cell.target)
    trainer.save_scaler()
    return result


def _run_student(cell, data, split, teacher, out_dir):
    trainer = LoggingTrainer(TinyNet(cell.method, ("eog",), cell.seed), cell.train, out_dir, _label(cell))
    result = trainer.fit(data, split, cell.target)
    # Depends on the teacher's weights, so a wrong teacher shows in the table's record.
    return MethodResult(result, {"teacher_val_accuracy": teacher.evaluate(data, split.val, cell.target).accuracy})


# Rows like the package's own (a description and a reference each), so that a process
# whose table holds them still passes the checks of the method table's contract.
_CITED = ("zhang2025multimodal",)


def _network(name: str, modalities: tuple[str, ...], kill: bool = False) -> Method:
    return Method(name, "student baseline", partial(_run_network, name, modalities, kill),
                  build=_build(name, modalities), references=_CITED,
                  description=f"a tiny test network on {'+'.join(modalities)}" + (", killed mid-run" if kill else ""))


#: The rows :func:`install` adds.
TINY_METHODS = (
    _network("tiny-teacher", ("eog", "eeg")),
    _network("tiny-killer", ("eog",), kill=True),
    Method("tiny-kd", "distillation baseline", _run_student, needs_teacher=True, teacher="tiny-teacher",
           references=_CITED, description="a tiny test student taught by tiny-teacher"),
)


def install() -> None:
    """Add :data:`TINY_METHODS` to this process's method table (once)."""
    if "tiny-teacher" not in methods.method_names():
        methods.METHODS = methods.METHODS + TINY_METHODS


def dask_setup(worker) -> None:
    """Dask's preload hook: every worker gets the tiny methods."""
    install()


def tiny_grid(methods_=("tiny-teacher", "tiny-kd"), **changes) -> Grid:
    """Three folds of a three-fold split, valence only."""
    return Grid(methods_, **{"targets": ("valence",), "n_folds": 3, "train": TRAIN, **changes})


def epochs_logged() -> list[str]:
    """The lines of ``epochs.log`` (empty when nothing trained)."""
    log = home() / "epochs.log"
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


if __name__ == "__main__":
    from mkdbook.experiments.grids import run_grid

    install()
    torch.set_num_threads(1)
    data = tiny_segments()
    home().mkdir(parents=True, exist_ok=True)
    (home() / f"ready-{os.getpid()}").touch()
    while len(list(home().glob("ready-*"))) < int(sys.argv[2]):
        time.sleep(0.02)
    run_grid(tiny_grid(), data, progress=False).to_csv(sys.argv[1], index=False)
