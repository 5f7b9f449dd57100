"""Experiment grids: cache keys, cache hits, resumption, shared teachers, the results table."""

from __future__ import annotations

from collections import Counter
from dataclasses import fields, replace
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

import cluster_methods
from cluster_methods import TRAIN, tiny_segments
from mkdbook.cli import main
from mkdbook.core.paths import results_dir
from mkdbook.core.profiles import PROFILES
from mkdbook.data.segments import SegmentConfig
from mkdbook.experiments import grids, methods
from mkdbook.experiments.grids import TABLE_COLUMNS, Grid, make_grid, run_cell, run_grid, summarise, trained_network
from mkdbook.experiments.methods import Method, method_names, train_network
from mkdbook.splits import make_split
from mkdbook.training import runs
from mkdbook.training.runs import Cell, MethodResult, cell_key
from mkdbook.training.trainer import TrainConfig, Trainer


DATA = tiny_segments()
FITS: Counter = Counter()      # Trainer.fit calls by network name
STEPS = {"kill_after": None}   # a training forward pass raises Killed when this reaches zero
RECEIVED: dict[str, dict] = {}  # what each tiny student method got as its teacher


class Killed(Exception):
    """Stands in for a process killed in the middle of training."""


class TinyNet(cluster_methods.TinyNet):
    """The shared tiny network, whose training forward pass can stand in for a killed process."""

    def forward(self, batch):
        if self.training and STEPS["kill_after"] is not None:
            STEPS["kill_after"] -= 1
            if STEPS["kill_after"] < 0:
                raise Killed
        return super().forward(batch)


def _tiny(name: str, modalities: tuple[str, ...]):
    return lambda cell, data: TinyNet(name, modalities, cell.seed)


def _tiny_student(name: str):
    def run(cell, data, split, teacher, out_dir):
        probs, _ = teacher.predict(data, split.test, cell.target)
        RECEIVED[name] = {"trainer": teacher, "probabilities": probs,
                          "weights": {k: v.clone() for k, v in teacher.model.state_dict().items()}}
        with torch.no_grad():  # a method may change its teacher (as feedback does)
            for parameter in teacher.model.parameters():
                parameter.zero_()
        result = Trainer(TinyNet(name, ("eog",), cell.seed), cell.train, out_dir).fit(data, split, cell.target)
        return MethodResult(result, {"teacher_name": teacher.model.name})
    return run


def _tiny_network(name: str, modalities: tuple[str, ...]) -> Method:
    build = _tiny(name, modalities)
    return Method(name, "student baseline", partial(train_network, build), build=build)


#: Rows added to the method table, as a new method would be added: one row each.
TINY_METHODS = (
    _tiny_network("tiny-eog", ("eog",)),
    _tiny_network("tiny-teacher", ("eog", "eeg")),
    *(Method(name, "distillation baseline", _tiny_student(name), needs_teacher=True, teacher="tiny-teacher")
      for name in ("kd-a", "kd-b")),
)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """A fresh MKDBOOK_HOME, the method table with the tiny methods added, counters reset."""
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + TINY_METHODS)
    fit = Trainer.fit

    def counting_fit(self, *args, **kwargs):
        FITS[getattr(self.model, "name", type(self.model).__name__)] += 1
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", counting_fit)
    FITS.clear()
    RECEIVED.clear()
    STEPS["kill_after"] = None
    # At this size thread hand-offs cost more than the arithmetic, many times
    # more when other processes share the cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    STEPS["kill_after"] = None


def tiny_grid(methods=("tiny-eog",), **changes) -> Grid:
    return Grid(methods, **{"targets": ("valence",), "n_folds": 3, "train": TRAIN, **changes})


def base_cell(**changes) -> Cell:
    return Cell(**{"method": "tiny-eog", "target": "valence", "fold": 0, "seed": 0, "n_folds": 3,
                   "train": TRAIN, "data_source": "tiny", "data_fingerprint": "abc", **changes})


# -- cache keys ---------------------------------------------------------------------------


def test_key_changes_with_every_configuration_field(monkeypatch):
    base = base_cell()
    changed_cell = {
        "method": "tiny-teacher", "target": "arousal", "fold": 1,
        "seed": None,  # with train.seed, below
        "split_kind": "subjects", "n_folds": 4, "train": TrainConfig(seed=0),
        "segments": SegmentConfig(threshold=6.0), "data_source": "other", "data_fingerprint": "abd",
        "options": (("depth", 2),), "teacher": base_cell(method="tiny-teacher"),
    }
    changed_train = {"epochs": 4, "batch_size": 9, "lr": 1e-2, "weight_decay": 0.0, "patience": 3,
                     "seed": None, "device": "auto", "eval_batch_size": 64, "progress": True,
                     "max_batches": 3, "standardise": "global", "select": "loss"}
    changed_segments = {"segment_seconds": 2.0, "baseline_seconds": 2.0, "threshold": 4.5}
    # Adding a field without adding it here fails, so no field escapes the key.
    assert set(changed_cell) == {f.name for f in fields(Cell)}
    assert set(changed_train) == {f.name for f in fields(TrainConfig)}
    assert set(changed_segments) == {f.name for f in fields(SegmentConfig)}

    variants = [replace(base, seed=1, train=replace(TRAIN, seed=1))]
    variants += [replace(base, **{k: v}) for k, v in changed_cell.items() if v is not None]
    variants += [replace(base, train=replace(TRAIN, **{k: v})) for k, v in changed_train.items()
                 if v is not None]
    variants += [replace(base, segments=replace(base.segments, **{k: v})) for k, v in changed_segments.items()]
    keys = [cell_key(base)] + [cell_key(c) for c in variants]
    assert len(set(keys)) == len(keys)
    assert cell_key(replace(base)) == keys[0]  # equal configurations, equal keys

    version, source = runs.package_fingerprint()
    for fake in [(version + ".dev", source), (version, "0" * 64)]:
        monkeypatch.setattr(runs, "package_fingerprint", lambda fake=fake: fake)
        assert cell_key(base) not in keys


def test_cell_validation_and_unserialisable_options():
    with pytest.raises(ValueError, match="train.seed"):
        base_cell(seed=1)
    with pytest.raises(ValueError, match="fold"):
        base_cell(fold=3)
    with pytest.raises(ValueError, match="JSON"):
        cell_key(base_cell(options=(("layer", object()),)))


# -- running and caching --------------------------------------------------------------------


def test_cache_hit_on_rerun():
    grid = tiny_grid(folds=(0, 1))
    first = run_grid(grid, DATA, progress=False)
    assert FITS["tiny-eog"] == 2
    FITS.clear()
    second = run_grid(grid, DATA, progress=False)
    assert FITS == Counter()  # nothing trained the second time
    pd.testing.assert_frame_equal(first, second)
    folders = list(results_dir().iterdir())
    assert len(folders) == 2
    for folder in folders:  # resume state removed once complete; weights kept
        assert sorted(p.name for p in folder.iterdir()) == ["predictions.npz", "result.json", "train"]
        assert sorted(p.name for p in (folder / "train").iterdir()) == [
            "best.pt", "best.pt.sha256", "scaler.pt", "scaler.pt.sha256"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    grid = tiny_grid(folds=(0, 1, 2), seeds=(0, 1))  # 6 cells of 3 epochs x 3 steps
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "uninterrupted"))
    expected = run_grid(grid, DATA, progress=False)

    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "interrupted"))
    STEPS["kill_after"] = 2 * 9 + 4  # second epoch of the third cell
    with pytest.raises(Killed):
        run_grid(grid, DATA, progress=False)
    STEPS["kill_after"] = None
    folders = list(results_dir().iterdir())
    complete = [f for f in folders if (f / "result.json").is_file()]
    assert len(folders) == 3 and len(complete) == 2
    killed = next(f for f in folders if f not in complete)
    # No partial or temporary file anywhere: only the epoch-1 checkpoints of the killed cell.
    assert sorted(p.name for p in killed.rglob("*")) == [
        "best.pt", "best.pt.sha256", "last.pt", "last.pt.sha256", "train"]
    assert not [p for p in results_dir().rglob("*") if ".tmp" in p.name]
    assert torch.load(killed / "train" / "last.pt", weights_only=True)["epoch"] == 1

    FITS.clear()
    resumed = run_grid(grid, DATA, progress=False)
    assert FITS["tiny-eog"] == 4  # the killed cell and the three after it
    pd.testing.assert_frame_equal(resumed, expected)


def test_incomplete_cell_is_recomputed():
    grid = tiny_grid(folds=(0, 1))
    expected = run_grid(grid, DATA, progress=False)
    victim = sorted(results_dir().iterdir())[0]
    (victim / "result.json").unlink()  # as if killed between the two writes
    FITS.clear()
    pd.testing.assert_frame_equal(run_grid(grid, DATA, progress=False), expected)
    assert FITS["tiny-eog"] == 1


def test_shared_teacher_trained_once_and_copied_per_student():
    table = run_grid(tiny_grid(("kd-a", "kd-b"), folds=(0,)), DATA, progress=False)
    assert FITS == Counter({"tiny-teacher": 1, "kd-a": 1, "kd-b": 1})
    assert set(table["method"]) == {"kd-a", "kd-b"}

    grid = tiny_grid(("kd-a",), folds=(0,))
    cell = next(grid.cells(DATA))
    teacher = run_cell(cell.teacher, DATA)
    best = torch.load(teacher.folder / "train" / "best.pt", weights_only=True)["model"]
    for name in ("kd-a", "kd-b"):
        got = RECEIVED[name]
        assert got["trainer"].model.name == "tiny-teacher"
        for key, value in best.items():  # kd-a zeroed its copy; kd-b still got the trained one
            assert torch.equal(got["weights"][key], value)
        np.testing.assert_allclose(got["probabilities"], teacher.segments[["p0", "p1"]].to_numpy(), rtol=1e-6)
    assert RECEIVED["kd-a"]["trainer"] is not RECEIVED["kd-b"]["trainer"]
    assert run_cell(cell, DATA).record["extra"] == {"teacher_name": "tiny-teacher"}

    FITS.clear()  # the teacher as a grid member is the same cached cell
    both = run_grid(tiny_grid(("tiny-teacher", "kd-a"), folds=(0,)), DATA, progress=False)
    assert FITS == Counter()
    assert trained_network(cell.teacher, DATA).model.name == "tiny-teacher"
    pd.testing.assert_frame_equal(both[both["method"] == "kd-a"].reset_index(drop=True),
                                  table[table["method"] == "kd-a"].reset_index(drop=True))


def test_unknown_methods_fail_before_any_work(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['nope', 'fusion\+feedback2'\]"):
        run_grid(tiny_grid(("tiny-eog", "nope", "fusion+feedback2")), DATA, progress=False)
    orphan = Method("orphan", "distillation baseline", lambda *a: None, needs_teacher=True, teacher="missing")
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + (orphan,))
    with pytest.raises(ValueError, match="needs teacher 'missing'"):
        run_grid(tiny_grid(("orphan",)), DATA, progress=False)
    with pytest.raises(ValueError, match="role must be one of"):
        Method("toy", "winner", lambda *a: None)
    assert FITS == Counter() and not results_dir().exists()


# -- the table ------------------------------------------------------------------------------


def test_table_has_one_row_per_cell_and_test_subject():
    grid = tiny_grid(("tiny-eog", "tiny-teacher"), targets=("valence", "arousal"), folds=(0, 2))
    table = run_grid(grid, DATA, progress=False)
    assert tuple(table.columns) == TABLE_COLUMNS
    assert len(table) == 2 * 2 * 2 * len(DATA.subjects)
    assert not table.duplicated(["method", "target", "fold", "seed", "subject"]).any()
    for fold in (0, 2):
        split = make_split(DATA, "trial", fold=fold, n_folds=3, seed=0)
        rows = table[(table["fold"] == fold) & (table["method"] == "tiny-eog") & (table["target"] == "arousal")]
        assert rows["n_segments"].sum() == len(split.test)
        assert (rows["n_trials"] == 3).all()  # 9 trials per subject, 3 folds
        cell = grid.cell("tiny-eog", "arousal", fold, 0, data=DATA)
        segments = run_cell(cell, DATA).segments
        np.testing.assert_array_equal(segments["segment"], split.test)
        np.testing.assert_array_equal(segments["label"], DATA.labels("arousal")[split.test])
        correct = (segments["label"] == segments["prediction"]).groupby(segments["subject"]).mean()
        np.testing.assert_allclose(rows["accuracy"], correct.to_numpy())

    summary = summarise(table)
    assert list(summary.columns) == ["method", "target", "accuracy_mean", "accuracy_sd", "majority_rate_mean",
                                     "balanced_accuracy_mean", "balanced_accuracy_sd", "auc_mean", "auc_sd",
                                     "f1_mean", "f1_sd", "n_cells"]
    assert len(summary) == 4 and (summary["n_cells"] == 2).all()
    one = table[(table["method"] == "tiny-eog") & (table["target"] == "valence")]
    per_cell = one.groupby("fold")["accuracy"].mean()
    row = summary[(summary["method"] == "tiny-eog") & (summary["target"] == "valence")].iloc[0]
    assert row["accuracy_mean"] == pytest.approx(per_cell.mean())
    assert row["accuracy_sd"] == pytest.approx(per_cell.std())


def test_plain_networks_run_and_load_back():
    small = {"d_model": 8, "n_heads": 2, "ff_width": 8, "depth": 1}
    grid = tiny_grid(("eog",), folds=(0,), train=replace(TRAIN, epochs=1), options={"eog": small})
    table = run_grid(grid, DATA, progress=False)
    assert len(table) == len(DATA.subjects)
    cell = grid.cell("eog", "valence", 0, 0, data=DATA)
    assert cell.settings == small
    assert type(trained_network(cell, DATA).model).__name__ == "EOGOnlyNet"


# -- named grids and the command line -------------------------------------------------------


def test_named_grids():
    profile = PROFILES["default"]
    baselines, ablation, paper = (make_grid(name, profile) for name in ("baselines", "ablation", "paper"))
    assert baselines.methods == method_names("reference") + method_names("student baseline")
    # V1, V2, V3's first-order control (the teacher fine-tuned by its own CE) and V3.
    assert ablation.methods == ("hinton", "fusion", "fusion+finetune", "fusion+feedback")
    assert set(paper.methods) >= set(baselines.methods) | set(ablation.methods) | {"cgan", "emotionkd"}
    assert paper.n_folds == 10 and paper.fold_list == tuple(range(10))
    assert paper.targets == ("valence", "arousal")
    assert baselines.n_folds == profile.n_folds and baselines.train.epochs == profile.epochs
    with pytest.raises(ValueError, match="grid must be one of"):
        make_grid("everything", profile)


def test_experiment_command(deap_dir, tmp_path, monkeypatch):
    grid = Grid(("tiny-eog",), targets=("valence",), train=replace(TRAIN, batch_size=64))
    monkeypatch.setitem(grids.GRIDS, "tiny", lambda profile: grid)
    out = tmp_path / "out"
    assert main(["experiment", str(deap_dir), "--grid", "tiny", "--folds", "3", "--seeds", "1",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    table = pd.read_csv(out / "results.csv")
    assert tuple(table.columns) == TABLE_COLUMNS
    assert len(table) == 3 * 2 and set(table["subject"]) == {1, 2}  # 3 folds x 2 subjects
    summary = pd.read_csv(out / "summary.csv")
    assert summary["n_cells"].tolist() == [3]
    assert FITS["tiny-eog"] == 3


def test_a_teacher_whose_weights_are_damaged_is_trained_again():
    run_grid(tiny_grid(("kd-a",), folds=(0,)), DATA, progress=False)
    cell = tiny_grid(("kd-a",), folds=(0,)).cell("tiny-teacher", "valence", 0, 0, data=DATA)
    folder = results_dir() / cell_key(cell)
    for damaged in ("best.pt", "scaler.pt"):
        (folder / "train" / damaged).write_bytes(b"not a checkpoint")
        FITS.clear()
        with pytest.warns(UserWarning, match="cannot be loaded.*training it again"):
            trainer = trained_network(cell, DATA)
        assert FITS == Counter({"tiny-teacher": 1}) and trainer.model.name == "tiny-teacher"
    (folder / "train" / "scaler.pt").unlink()
    with pytest.warns(UserWarning, match="cannot be loaded"):
        trained_network(cell, DATA)


def test_a_result_record_of_the_wrong_shape_is_recomputed():
    grid = tiny_grid(folds=(0,))
    expected = run_grid(grid, DATA, progress=False)
    victim = next(results_dir().iterdir())
    (victim / "result.json").write_text("[1, 2, 3]")
    FITS.clear()
    with pytest.warns(UserWarning, match="unreadable"):
        pd.testing.assert_frame_equal(run_grid(grid, DATA, progress=False), expected)
    assert FITS["tiny-eog"] == 1
