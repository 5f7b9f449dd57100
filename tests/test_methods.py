"""The method table: explicit, complete, and extended by one row."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mkdbook.experiments import methods
from mkdbook.experiments.grids import Grid, run_grid
from mkdbook.models.outputs import ModelOutput
from mkdbook.training.trainer import TrainConfig

from test_experiments import DATA


def test_the_method_table_is_explicit_and_complete():
    names = methods.method_names()
    assert len(set(names)) == len(names)
    assert {"teacher", "student", "hinton", "fusion", "fusion+feedback", "cgan", "emotionkd"} <= set(names)
    assert methods.method_names("proposed") == ("fusion+feedback",)
    bib = (Path(__file__).parents[1] / "references.bib").read_text()
    for method in methods.METHODS:
        assert method.role in methods.ROLES and method.description
        assert method.references and all(f"{{{key}," in bib for key in method.references)
        if method.needs_teacher:
            assert methods.method_named(method.teacher).build is not None
    with pytest.raises(ValueError, match="method must be one of"):
        methods.method_named("nope")


class MeanEOG(nn.Module):
    """A toy network: a linear head on each EOG channel's mean absolute value."""

    modalities = ("eog",)

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)

    def forward(self, batch):
        return ModelOutput(self.head(batch["eog"].abs().mean(-1)))


def test_a_new_method_is_one_row(tmp_path, monkeypatch):
    """As the README's *Extending mkdbook* shows: a build function and one row of the table."""
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))

    def build(cell, data):
        torch.manual_seed(cell.seed)
        return MeanEOG()

    toy = methods.Method("mean-eog", "student baseline", partial(methods.train_network, build), build=build,
                         references=("zhang2025multimodal",), description="linear model on EOG amplitude")
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + (toy,))
    grid = Grid(("mean-eog",), targets=("valence",), folds=(0,), n_folds=3,
                train=TrainConfig(epochs=2, batch_size=16, progress=False, device="cpu"))
    table = run_grid(grid, DATA, progress=False)
    assert set(table["method"]) == {"mean-eog"} and len(table) == len(DATA.subjects)
    assert np.isfinite(table["accuracy"]).all()
