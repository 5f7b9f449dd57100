"""BIDS: a simulated cohort written as BIDS reads back into the very segments, and trains into the very
numbers, of its DEAP copy; bad BIDS input is one line naming the file."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mkdbook.cli import main
from mkdbook.data import DEAP, BidsFormatError, SegmentConfig, describe_source, load_segments, read_subject_file
from mkdbook.data.mne_bridge import trial_to_raw
from mkdbook.data.readers import BidsReader, infer_format, read_recordings, reader_for
from mkdbook.data.simulate import simulate_cohort

CHANNELS_TSV = "sub-01/eeg/sub-01_task-emotion_channels.tsv"
EVENTS_TSV = "sub-01/eeg/sub-01_task-emotion_events.tsv"


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One simulated cohort of two subjects, written once in each format."""
    root = tmp_path_factory.mktemp("copies")
    for written in ("deap", "bids"):
        simulate_cohort(root / written, n_subjects=2, seed=3, progress=False, format=written)
    return {"deap": root / "deap", "bids": root / "bids"}


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def editable_copy(bids: Path, to: Path) -> Path:
    """A copy of a BIDS folder whose sidecars may be edited; the large .eeg files are links."""
    def link_or_copy(source: str, target: str) -> None:
        if source.endswith(".eeg"):
            os.symlink(source, target)
        else:
            shutil.copy2(source, target)

    shutil.copytree(bids, to, copy_function=link_or_copy)
    return to


def rewrite_tsv(path: Path, change) -> None:
    """Apply ``change(rows)`` to a TSV's rows (dicts) and write it back."""
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream, delimiter="\t")
        rows, columns = list(reader), list(reader.fieldnames)
    rows = change(rows) or rows
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[c for c in columns if c in rows[0]], delimiter="\t",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(text.getvalue(), encoding="utf-8")


def one_line_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    try:
        status = main(args)
    except SystemExit as exit_:
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_the_simulator_writes_samples_float32_holds(copies):
    # What makes a float32 BrainVision copy exact: sNN.dat's float64 samples are float32 values.
    recording = read_subject_file(copies["deap"] / "s01.dat")
    assert recording.data.dtype == np.float64
    assert np.array_equal(recording.data, recording.data.astype(np.float32))


def test_bids_copy_gives_bit_identical_segments(copies, tmp_path):
    deap = load_segments(copies["deap"], cache_dir=tmp_path / "deap", progress=False)
    bids = load_segments(copies["bids"], cache_dir=tmp_path / "bids", progress=False)
    assert np.array_equal(bids.signals, deap.signals) and bids.signals.dtype == np.float32
    for column in ("subject", "trial", "position", "ratings"):
        assert np.array_equal(getattr(bids, column), getattr(deap, column)), column
    for column in ("trial_id", "mean", "std"):
        assert np.array_equal(getattr(bids.baseline, column), getattr(deap.baseline, column)), column
    # Its layout, read from channels.tsv and events.tsv, is DEAP's but for the name.
    assert dataclasses.replace(bids.layout, name=DEAP.name) == DEAP
    assert bids.layout.name == "mkdbook simulated cohort (default, seed 3)"
    assert bids.source == "simulated cohort (variant 'default', 2 subjects, seed 3, in BIDS), not DEAP"
    assert describe_source(copies["bids"]) == bids.source and "simulated" in bids.source


def test_bids_recordings_are_the_deap_recordings(copies):
    for deap, bids in zip(read_recordings(copies["deap"]), read_recordings(copies["bids"], reader="bids")):
        assert bids.subject == deap.subject and bids.path.suffix == ".vhdr"
        assert np.array_equal(bids.data, deap.data) and np.array_equal(bids.labels, deap.labels)
    # The MNE bridge takes a recording of any format, by its own layout.
    raw = trial_to_raw(bids, trial=2, modalities=("eog",))
    assert raw.ch_names == ["hEOG", "vEOG"] and raw.info["sfreq"] == 128.0
    np.testing.assert_allclose(raw.get_data(), deap.data[2, 32:34] * 1e-6)


def test_bids_copy_trains_into_the_same_numbers(copies, tmp_path):
    from mkdbook.models import build_model
    from mkdbook.splits import make_split
    from mkdbook.training.trainer import TrainConfig, Trainer

    config = TrainConfig(epochs=2, max_batches=3, device="cpu", progress=False, standardise="baseline")
    results = {}
    for written, folder in copies.items():
        data = load_segments(folder, reader=written, progress=False)
        split = make_split(data, "trial", fold=1, n_folds=5, seed=0)
        for model in ("teacher", "eog"):
            network = build_model(model, **data.model_inputs(), seed=0)
            result = Trainer(network, config, tmp_path / written / model).fit(data, split, "valence")
            history = [{k: v for k, v in row.items() if k != "seconds"} for row in result.history]
            scores = [dataclasses.asdict(result.val), dataclasses.asdict(result.test)]
            results[written, model] = {"history": history, "best_epoch": result.best_epoch, "scores": scores}
    for model in ("teacher", "eog"):
        np.testing.assert_equal(results["bids", model], results["deap", model])  # exactly, arrays included
    assert results["deap", "teacher"]["scores"][1]["n"] > 0


def test_the_cache_of_a_bids_folder_records_every_file_and_heals(copies, tmp_path):
    folder = editable_copy(copies["bids"], tmp_path / "bids")
    first = load_segments(folder, subjects=[1], cache_dir=tmp_path / "cache", progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    names = [entry["name"] for entry in manifest["sources"]]
    assert names[0] == "sub-01/eeg/sub-01_task-emotion_eeg.vhdr"
    assert {CHANNELS_TSV, EVENTS_TSV, "sub-01/eeg/sub-01_task-emotion_eeg.eeg"} <= set(names)
    assert manifest["reader"] == {"format": "bids", "options": json.loads(json.dumps(
        dataclasses.asdict(BidsReader())))}

    def rate_first_trial_9(rows):
        rows[0]["valence"] = "9.0"

    rewrite_tsv(folder / EVENTS_TSV, rate_first_trial_9)
    with pytest.warns(UserWarning, match="stale"):
        changed = load_segments(folder, subjects=[1], cache_dir=tmp_path / "cache", progress=False)
    assert changed.ratings[0, 0] == 9.0 and first.ratings[0, 0] != 9.0
    signals = np.array(changed.signals)  # a copy: the memory map sees the damage below
    with open(tmp_path / "cache" / "signals.npy", "r+b") as stream:
        stream.seek(-4, os.SEEK_END)
        stream.write(b"\x00\x00\x80\x7f")
    with pytest.warns(UserWarning, match="corrupt"):
        healed = load_segments(folder, subjects=[1], cache_dir=tmp_path / "cache", progress=False)
    assert np.array_equal(healed.signals, signals)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_segments(folder, subjects=[1], cache_dir=tmp_path / "cache", progress=False, verify_sources=True)


def test_eeg_and_eog_come_from_channel_types_not_names(copies, tmp_path):
    folder = editable_copy(copies["bids"], tmp_path / "bids")

    def fp1_is_an_eog_electrode(rows):
        rows[0]["type"] = "EOG"

    for subject in (1, 2):
        rewrite_tsv(folder / CHANNELS_TSV.replace("01", f"{subject:02d}"), fp1_is_an_eog_electrode)
    reader = reader_for(folder)
    layout = reader.layout(folder, reader.find(folder))
    assert layout.modalities["eog"] == ("Fp1", "hEOG", "vEOG") and "Fp1" not in layout.modalities["eeg"]
    assert layout.channel_type("Fp1") == "eog"


def test_ratings_may_come_from_columns_named_otherwise(copies, tmp_path):
    folder = editable_copy(copies["bids"], tmp_path / "bids")

    for subject in (1, 2):
        path = folder / EVENTS_TSV.replace("01", f"{subject:02d}")
        text = path.read_text().split("\n", 1)
        path.write_text(text[0].replace("valence", "val") + "\n" + text[1])
    reader = BidsReader(rating_scales=("valence", "arousal"), rating_columns=("val", "arousal"))
    data = load_segments(folder, reader=reader, progress=False)
    deap = load_segments(copies["deap"], progress=False)
    assert data.layout.rating_scales == ("valence", "arousal")
    assert np.array_equal(data.ratings, deap.ratings[:, :2]) and np.array_equal(data.signals, deap.signals)
    with pytest.raises(BidsFormatError, match="has no column 'valence'"):
        load_segments(folder, progress=False)


def break_events(folder: Path) -> None:
    (folder / EVENTS_TSV).unlink()


def break_eog(folder: Path) -> None:
    def no_eog(rows):
        for row in rows:
            row["type"] = "EEG" if row["type"] == "EOG" else row["type"]

    rewrite_tsv(folder / CHANNELS_TSV, no_eog)


def break_ratings(folder: Path) -> None:
    def valence_of_ten(rows):
        rows[4]["valence"] = "10"

    rewrite_tsv(folder / EVENTS_TSV, valence_of_ten)


def break_rating_column(folder: Path) -> None:
    def no_liking(rows):
        for row in rows:
            del row["liking"]

    rewrite_tsv(folder / EVENTS_TSV, no_liking)


def break_trial_end(folder: Path) -> None:
    def last_trial_late(rows):
        rows[-1]["onset"] = "2500.0"

    rewrite_tsv(folder / EVENTS_TSV, last_trial_late)


def break_description(folder: Path) -> None:
    (folder / "dataset_description.json").write_text("[]")


@pytest.mark.parametrize("damage, names, says", [
    (break_events, EVENTS_TSV, "missing; expected an events.tsv beside the recording with one row per trial"),
    (break_eog, CHANNELS_TSV, "expected EEG channels and at least one EOG channel (type EOG, HEOG or VEOG), "
                              "found types ['EEG', 'EMG', 'GSR', 'PPG', 'RESP', 'TEMP']"),
    (break_ratings, EVENTS_TSV, "ratings (valence, arousal, dominance, liking) must lie in [1, 9], got ["),
    (break_rating_column, EVENTS_TSV, "has no column 'liking'; expected an events.tsv"),
    (break_trial_end, EVENTS_TSV, "trial 40 spans samples 320000 to 328064; expected it within the "
                                  "recording's 322560 samples"),
    (break_description, "dataset_description.json", "holds a JSON list; expected the BIDS data set's description"),
], ids=["no events.tsv", "no EOG channel", "rating off the scale", "no rating column", "trial past the end",
        "bad description"])
def test_bad_bids_input_is_one_line_naming_the_file(copies, tmp_path, capsys, damage, names, says):
    folder = editable_copy(copies["bids"], tmp_path / "bids")
    damage(folder)
    err = one_line_error(["prepare", str(folder), "--quiet"], capsys)
    assert err.startswith(f"mkdbook prepare: error: {folder / names}: "), err
    assert says in err, err
    with pytest.raises(BidsFormatError):
        load_segments(folder, progress=False)


def test_format_option_of_every_data_command(copies, tmp_path, capsys):
    deap, bids, out = str(copies["deap"]), str(copies["bids"]), str(tmp_path / "out")
    training = ["--target", "valence", "--epochs", "1", "--device", "cpu", "--quiet", "--out", out]
    commands = {
        "prepare": lambda folder, given: ["prepare", folder, "--format", given, "--quiet"],
        "train": lambda folder, given: ["train", folder, "--format", given, "--model", "eog", *training],
        "distill": lambda folder, given: ["distill", folder, "--format", given, "--variant", "hinton",
                                          *training],
        "experiment": lambda folder, given: ["experiment", folder, "--format", given, "--grid", "baselines",
                                             "--out", out],
    }
    for name, args in commands.items():
        err = one_line_error(args(deap, "bids"), capsys)
        assert f"{deap}: format 'bids' was asked for, but the folder holds deap data" in err, (name, err)
        err = one_line_error(args(bids, "deap"), capsys)
        assert f"{bids}: format 'deap' was asked for, but the folder holds bids data" in err, (name, err)
    err = one_line_error(["prepare", deap, "--format", "edf"], capsys)
    assert "--format: invalid choice: 'edf'" in err
    assert main(["prepare", bids, "--format", "bids", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "in BIDS), not DEAP" in out and "segments: 1200 of 40 channels" in out
    assert infer_format(bids) == "bids" and infer_format(deap) == "deap"


def test_simulate_keeps_the_formats_apart(copies, tmp_path, capsys):
    folder = tmp_path / "cohort"
    shutil.copytree(copies["deap"], folder)
    err = one_line_error(["simulate", str(folder), "--subjects", "2", "--seed", "3", "--format", "bids",
                          "--quiet"], capsys)
    assert "holds a simulated cohort with a different format" in err
    err = one_line_error(["simulate", str(copies["bids"]), "--subjects", "2", "--seed", "3", "--quiet"], capsys)
    assert "holds a simulated cohort with a different format" in err


def test_simulate_bids_writes_a_bids_data_set(copies):
    root = copies["bids"]
    assert (root / "dataset_description.json").is_file() and (root / "latent" / "s01.npz").is_file()
    assert (root / "participants.tsv").read_text() == "participant_id\nsub-01\nsub-02\n"
    assert "mkdbook-simulated.json" in (root / ".bidsignore").read_text()
    manifest = json.loads((root / "mkdbook-simulated.json").read_text())
    assert manifest["format"] == "bids" and manifest["n_subjects"] == 2
    assert "sub-01/eeg/sub-01_task-emotion_eeg.eeg" in manifest["files"]
    sidecar = json.loads((root / "sub-01/eeg/sub-01_task-emotion_eeg.json").read_text())
    assert sidecar["SamplingFrequency"] == 128.0
    events = (root / EVENTS_TSV).read_text().splitlines()
    assert events[0].split("\t")[:2] == ["onset", "duration"] and events[0].endswith("valence\tarousal\tdominance"
                                                                                        "\tliking")
    assert len(events) == 1 + DEAP.n_trials and events[2].split("\t")[:2] == ["63.0", "63.0"]
    # Running again regenerates the same cohort, without complaint.
    before = {name: stamp for name, stamp in manifest["files"].items() if name.endswith(".eeg")}
    paths = simulate_cohort(root, n_subjects=2, seed=3, progress=False, format="bids")
    assert [p.name for p in paths] == ["sub-01_task-emotion_eeg.vhdr", "sub-02_task-emotion_eeg.vhdr"]
    after = json.loads((root / "mkdbook-simulated.json").read_text())["files"]
    assert all(after[name][0] == size for name, (size, _) in before.items())


def test_the_chapters_read_a_bids_folder_named_by_mkdbook_deap_dir(copies, monkeypatch):
    from mkdbook.book.chapter import book_cohort

    monkeypatch.setenv("MKDBOOK_DEAP_DIR", str(copies["bids"]))
    data = load_segments(book_cohort(), progress=False)
    assert data.source.endswith("in BIDS), not DEAP") and len(data) == 1200


def test_train_and_experiment_commands_give_the_same_numbers_on_both_copies(copies, tmp_path, monkeypatch):
    """The commands a researcher runs, end to end: the format inferred, the numbers those of the DEAP copy."""
    monkeypatch.setenv("MKDBOOK_PROFILE", "fast")
    metrics, tables = {}, {}
    for written, folder in copies.items():
        out = tmp_path / written
        assert main(["train", str(folder), "--model", "eog", "--target", "valence", "--epochs", "1",
                     "--device", "cpu", "--quiet", "--out", str(out / "train")]) == 0
        metrics[written] = json.loads((out / "train" / "metrics.json").read_text())
        # Each copy in its own cache home, so the second run cannot reuse the first run's cells.
        monkeypatch.setenv("MKDBOOK_HOME", str(out / "home"))
        assert main(["experiment", str(folder), "--grid", "ablation", "--epochs", "1", "--quiet",
                     "--out", str(out / "grid")]) == 0
        tables[written] = pd.read_csv(out / "grid" / "results.csv")
    scores = {written: {k: v for k, v in record.items() if k.startswith(("test_", "val_"))}
              for written, record in metrics.items()}
    assert scores["bids"] == scores["deap"] and scores["deap"]["test_accuracy"] > 0
    pd.testing.assert_frame_equal(tables["bids"], tables["deap"])
    assert len(tables["deap"]) > 0
