"""The command line under careless use: re-used output folders, bad arguments, unusable paths.

Every case ends in one line on standard error and exit status 2 (or, where it
should, in success), within seconds, with nothing already saved lost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from mkdbook.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def status_and_error(args: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str]:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    return status, err


def one_line_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    status, err = status_and_error(args, capsys)
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def train(cohort: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(cohort), "--model", "eog", "--target", "valence", "--epochs", "1",
            "--device", "cpu", "--quiet", "--out", str(out), *extra]


def test_a_reused_out_folder_is_refused_and_kept(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train(cohort, out)) == 0
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    other_target = train(cohort, out)
    other_target[other_target.index("valence")] = "arousal"
    assert "target differ" in one_line_error(other_target, capsys)
    assert "split differ" in one_line_error(train(cohort, out, "--fold", "1"), capsys)
    assert "train differ" in one_line_error(train(cohort, out, "--lr", "0.01"), capsys)
    # Another data folder: its content, not its name, tells.
    other = tmp_path / "other-cohort"
    assert main(["simulate", str(other), "--subjects", "1", "--seed", "1", "--quiet"]) == 0
    assert "data differ" in one_line_error(train(other, out), capsys)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == saved


def test_a_finished_result_without_checkpoints_is_never_overwritten(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(train(cohort, out)) == 0
    for checkpoint in ("last.pt", "best.pt"):
        (out / checkpoint).unlink()
    metrics = (out / "metrics.json").read_bytes()
    arousal = train(cohort, out)
    arousal[arousal.index("valence")] = "arousal"
    assert "metrics.json: holds the result of another run (target differ)" in one_line_error(arousal, capsys)
    assert (out / "metrics.json").read_bytes() == metrics


def test_quiet_is_a_display_flag_not_part_of_the_run(cohort, tmp_path):
    out = tmp_path / "run"
    assert main(train(cohort, out)) == 0
    args = train(cohort, out)
    args.remove("--quiet")
    assert main(args) == 0


@pytest.mark.parametrize(("flag", "value", "says"), [
    ("--epochs", "0", "argument --epochs: must be an integer >= 1, got 0"),
    ("--epochs", "-1", "argument --epochs"),
    ("--patience", "0", "argument --patience"),
    ("--batch-size", "0", "argument --batch-size"),
    ("--batch-size", "-5", "argument --batch-size"),
    ("--lr", "inf", "argument --lr: must be a finite number > 0"),
    ("--lr", "nan", "argument --lr"),
    ("--lr", "0", "argument --lr"),
    ("--seed", "-1", "argument --seed: must be an integer in [0, 4294967295]"),
    ("--seed", str(2**40), "argument --seed"),
    ("--seed", "x", "argument --seed: expected a number"),
    ("--device", "foo", "argument --device: invalid choice"),
    ("--fold", "-1", "argument --fold"),
])
def test_bad_training_arguments_name_the_argument(cohort, tmp_path, capsys, flag, value, says):
    out = tmp_path / "run"
    assert says in one_line_error(train(cohort, out, flag, value), capsys)
    assert not out.exists()  # refused before any work


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")
def test_cuda_without_cuda_is_one_line(cohort, tmp_path, capsys):
    args = train(cohort, tmp_path / "run")
    args[args.index("cpu")] = "cuda"
    assert "no CUDA device" in one_line_error(args, capsys)


def test_bad_experiment_and_simulate_arguments(cohort, tmp_path, capsys):
    out = tmp_path / "grid"
    assert "argument --epochs" in one_line_error(["experiment", str(cohort), "--grid", "ablation",
                                                  "--epochs", "-1", "--out", str(out)], capsys)
    assert "argument --subjects" in one_line_error(["simulate", str(tmp_path / "x"), "--subjects", "0"], capsys)
    assert "argument --seed" in one_line_error(["simulate", str(tmp_path / "x"), "--seed", "-3"], capsys)
    assert "argument --workers" in one_line_error(["simulate", str(tmp_path / "x"), "--workers", "0"], capsys)


def test_output_paths_that_are_files(cohort, tmp_path, capsys, home):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    began = time.perf_counter()
    err = one_line_error(["experiment", str(cohort), "--grid", "ablation", "--out", str(a_file)], capsys)
    assert f"{a_file}: exists and is not a folder" in err
    assert time.perf_counter() - began < 10 and not (home / "results").exists()  # before the grid
    assert str(a_file) in one_line_error(train(cohort, a_file), capsys)
    assert str(a_file) in one_line_error(["simulate", str(a_file), "--subjects", "1", "--quiet"], capsys)
    assert a_file.read_text() == "keep me"


def test_mkdbook_home_that_is_a_file(cohort, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "home-file"
    a_file.write_text("keep me")
    monkeypatch.setenv("MKDBOOK_HOME", str(a_file))
    assert str(a_file) in one_line_error(["prepare", str(cohort), "--quiet"], capsys)
    assert a_file.read_text() == "keep me"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_out_folder_not_writable(cohort, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert str(locked) in one_line_error(train(cohort, locked / "run"), capsys)


def test_strange_subject_files(tmp_path, capsys):
    folder = tmp_path / "data"
    (folder / "s01.dat").mkdir(parents=True)
    assert "s01.dat" in one_line_error(["prepare", str(folder), "--quiet"], capsys)
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    os.mkfifo(fifo / "s01.dat")
    began = time.perf_counter()
    assert "s01.dat" in one_line_error(["prepare", str(fifo), "--quiet"], capsys)
    assert time.perf_counter() - began < 10
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "s01.dat").symlink_to(loop / "s01.dat")
    assert "s01.dat" in one_line_error(["prepare", str(loop), "--quiet"], capsys)


def test_simulate_never_overwrites_files_it_did_not_write(tmp_path, capsys):
    folder = tmp_path / "cohort"
    assert main(["simulate", str(folder), "--subjects", "1", "--quiet"]) == 0
    # A killed simulation left its pending marker; then someone copied real data in.
    (folder / "mkdbook-simulated.json").rename(folder / ".mkdbook-simulated.pending")
    (folder / "s01.dat").write_bytes(b"someone's real recording")
    err = one_line_error(["simulate", str(folder), "--subjects", "1", "--quiet"], capsys)
    assert "s01.dat, which no simulation of this cohort wrote" in err
    assert (folder / "s01.dat").read_bytes() == b"someone's real recording"


def test_train_with_the_video_split(cohort, tmp_path):
    import json

    out = tmp_path / "run"
    assert main(train(cohort, out, "--split", "video")) == 0
    split = json.loads((out / "metrics.json").read_text())["split"]
    assert split["kind"] == "video" and split["shared_trials"] == 0


def test_metrics_list_the_trials_of_each_part(cohort, tmp_path):
    import json

    out = tmp_path / "run"
    assert main(train(cohort, out)) == 0
    trials = json.loads((out / "metrics.json").read_text())["trials"]
    assert set(trials) == {"train", "val", "test"} and all(t.startswith("s01:") for t in trials["test"])
    assert not set(trials["train"]) & set(trials["test"]) and not set(trials["val"]) & set(trials["test"])
    assert len(trials["train"]) + len(trials["val"]) + len(trials["test"]) == 40


def test_feedback_options_are_refused_where_nothing_is_fed_back(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    distill = ["distill", str(cohort), "--target", "valence", "--out", str(out), "--quiet", "--device", "cpu"]
    says = one_line_error([*distill, "--variant", "fusion", "--feedback-on", "validation"], capsys)
    assert "--feedback-on apply to --variant fusion+finetune or fusion+feedback, not to 'fusion'" in says
    assert "argument --feedback-on: invalid choice" in one_line_error([*distill, "--feedback-on", "test"], capsys)
    assert not out.exists()


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime", "onnxscript"])
def test_export_without_the_deploy_extra_is_one_line(tmp_path, capsys, monkeypatch, missing):
    import sys

    monkeypatch.setitem(sys.modules, missing, None)  # what an environment without the extra gives
    out = tmp_path / "student.onnx"
    assert main(["export", str(tmp_path), "--format", "onnx", "--out", str(out)]) == 2
    says = capsys.readouterr().err.strip()
    assert len(says.splitlines()) == 1 and says.startswith("mkdbook export: error: ")
    assert "needs the deploy extra: pip install mkdbook[deploy]" in says and not out.exists()
