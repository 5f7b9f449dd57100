"""The command line: commands work, and bad input ends in one line and exit status 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mkdbook.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdbook.cli", *args], capture_output=True, text=True)


def test_prepare_summarises_a_folder(deap_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    assert main(["prepare", str(deap_dir), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "subjects: 2 (s01, s02)" in out and "segments: 1200" in out


def test_prepare_names_the_bad_file(deap_dir, tmp_path):
    (deap_dir / "s02.dat").write_bytes(b"not a pickle")
    result = run("prepare", str(deap_dir), "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "s02.dat" in lines[0] and lines[0].startswith("mkdbook prepare: error:")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ("prepare", "{tmp}/nowhere"),
    ("train", "{tmp}", "--model", "nope", "--target", "valence", "--out", "x"),
    ("train", "{tmp}", "--model", "eog", "--target", "dominance", "--out", "x"),
    ("train", "{tmp}", "--model", "eog", "--target", "valence", "--out", "x"),
    ("simulate", "{tmp}/x", "--variant", "happy"),
    ("simulate", "{tmp}/x", "--subjects", "40"),
])
def test_missing_folder_and_wrong_arguments_are_one_line(tmp_path, capsys, args):
    args = [a.format(tmp=tmp_path) for a in args]
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err


def test_simulate_then_train_writes_metrics(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    cohort = tmp_path / "cohort"
    assert main(["simulate", str(cohort), "--subjects", "1", "--quiet"]) == 0
    assert sorted(p.name for p in cohort.glob("s*.dat")) == ["s01.dat"]
    out = tmp_path / "run"
    assert main(["train", str(cohort), "--model", "eog", "--target", "valence", "--epochs", "1",
                 "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"test_accuracy", "test_f1", "n_test_segments", "split", "config"} <= set(metrics)
    assert metrics["split"]["kind"] == "trial" and metrics["split"]["shared_trials"] == 0
    assert metrics["n_test_segments"] % 15 == 0 and 3 <= metrics["n_test_segments"] // 15 <= 5
    assert "simulated" in metrics["config"]["data"]
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    assert "test accuracy" in capsys.readouterr().out


#: Slow to import, and needed by neither ``--help`` nor ``prepare``.
HEAVY = ("torch", "sklearn", "scipy", "pandas")


@pytest.mark.parametrize("args", [["--help"], ["prepare", "DEAP_DIR", "--quiet"]], ids=["help", "prepare"])
def test_commands_import_only_what_they_use(deap_dir, tmp_path, args):
    args = [str(deap_dir) if arg == "DEAP_DIR" else arg for arg in args]
    code = ("import sys\nfrom mkdbook.cli import main\ntry:\n    main(%r)\nexcept SystemExit:\n    pass\n"
            "print(sorted({name.partition('.')[0] for name in sys.modules} & set(%r)))" % (args, HEAVY))
    env = {**os.environ, "MKDBOOK_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_version():
    result = run("--version")
    assert result.returncode == 0 and "mkdbook" in result.stdout


def test_distill_runs_every_variant(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    cohort = tmp_path / "cohort"
    assert main(["simulate", str(cohort), "--subjects", "1", "--quiet"]) == 0
    for variant in ("hinton", "fusion", "fusion+feedback"):
        out = tmp_path / variant
        every = ["--every", "2"] if variant == "fusion+feedback" else []
        assert main(["distill", str(cohort), "--target", "valence", "--variant", variant,
                     "--epochs", "1", *every, "--out", str(out), "--quiet",
                     "--device", "cpu"]) == 0, variant
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["split"]["shared_trials"] == 0 and 0 <= metrics["test_accuracy"] <= 1
        assert metrics["config"]["method"] == variant
        # The audit trail: a quiz set only where the teacher is fed back, disjoint from the rest.
        trials = {part: set(names) for part, names in metrics["trials"].items()}
        assert set(trials) == ({"train", "quiz", "val", "test"} if variant == "fusion+feedback"
                               else {"train", "val", "test"})
        assert all(not trials[a] & trials[b] for a in trials for b in trials if a < b)
    assert trials["quiz"] and metrics["feedback"]["feedback_on"] == "quiz"
    assert metrics["feedback_rows_in_validation"] == metrics["feedback_rows_in_test"] == 0
    assert metrics["feedback_rows_outside_source"] == 0
    assert {"accuracy", "auc"} <= set(metrics["teacher_after_test"])
    phases = metrics["feedback_log"]
    assert phases and all(p["grad_norm_via_student"] > 0 for p in phases)
    assert capsys.readouterr().out.count("student test accuracy") == 3
