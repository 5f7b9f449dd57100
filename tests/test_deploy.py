"""The student on a device: exported models answer as PyTorch does, and the stream as the batch model."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

onnxruntime = pytest.importorskip("onnxruntime")  # the deploy extra; tools/run-tests installs it

from mkdbook.cli import main  # noqa: E402
from mkdbook.data import load_segments  # noqa: E402
from mkdbook.deploy.export import (  # noqa: E402
    OPSET,
    StandardisedStudent,
    export_onnx,
    export_torchscript,
    load_student,
    window_statistics,
    with_statistics,
)
from mkdbook.deploy.quantise import quantise_int8  # noqa: E402
from mkdbook.deploy.runtime import check_onnx, onnx_probabilities, onnx_session  # noqa: E402
from mkdbook.deploy.streaming import StreamingClassifier, StreamingConfig, continuous_recording  # noqa: E402
from mkdbook.splits import make_split  # noqa: E402
from mkdbook.training.metrics import predict  # noqa: E402


def _train(cohort: Path, out: Path, model: str) -> None:
    assert main(["train", str(cohort), "--model", model, "--target", "valence", "--epochs", "1",
                 "--device", "cpu", "--quiet", "--out", str(out)]) == 0


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("home")
        patch.setenv("MKDBOOK_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def run_dir(cohort, home, tmp_path_factory) -> Path:
    """A student trained for one epoch by ``mkdbook train`` on the one-subject cohort."""
    out = tmp_path_factory.mktemp("student")
    _train(cohort, out, "student")
    return out


@pytest.fixture(scope="module")
def test_part(cohort, home):
    """The segments and the fold-0 test segments the command tested on (its default split)."""
    data = load_segments(cohort, progress=False)
    return data, make_split(data, "trial", fold=0, n_folds=10, seed=0)


@pytest.fixture(scope="module")
def deployed(run_dir) -> StandardisedStudent:
    student, scaler = load_student(run_dir)
    return StandardisedStudent(student, *window_statistics(scaler, subject=1))


def _torch_probabilities(model: torch.nn.Module, windows: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(windows)).numpy()


def test_the_folded_standardisation_is_the_training_pipelines(run_dir, deployed, test_part):
    data, split = test_part
    student, scaler = load_student(run_dir)
    expected, _ = predict(student, scaler, data, split.test, "valence")
    windows = data.modality("eog", split.test)
    assert np.abs(_torch_probabilities(deployed, windows) - expected).max() <= 1e-5


def test_onnx_runtime_matches_pytorch_on_the_test_segments(deployed, test_part, tmp_path):
    data, split = test_part
    path = tmp_path / "student.onnx"
    export_onnx(deployed, path)
    check_onnx(path)
    import onnx

    assert [entry.version for entry in onnx.load(str(path)).opset_import if entry.domain == ""] == [OPSET]
    windows = data.modality("eog", split.test)
    ours = onnx_probabilities(onnx_session(path), windows)
    assert ours.dtype == np.float32 and ours.shape == (len(split.test), 2)
    assert np.abs(ours - _torch_probabilities(deployed, windows)).max() <= 1e-5
    # One window at a time, as a stream asks, gives the same answers.
    assert np.abs(onnx_probabilities(onnx_session(path), windows[:1]) - ours[:1]).max() <= 1e-5


def test_torchscript_matches_pytorch(deployed, test_part, tmp_path):
    data, split = test_part
    export_torchscript(deployed, tmp_path / "student.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # PyTorch 2.13 deprecates TorchScript
        loaded = torch.jit.load(str(tmp_path / "student.pt"))
    windows = data.modality("eog", split.test)  # another batch size than the trace's
    assert np.abs(_torch_probabilities(loaded, windows) - _torch_probabilities(deployed, windows)).max() <= 1e-5


def test_int8_model_is_smaller_and_close(deployed, test_part, tmp_path):
    data, split = test_part
    export_onnx(deployed, tmp_path / "float32.onnx")
    quantise_int8(tmp_path / "float32.onnx", tmp_path / "int8.onnx")
    check_onnx(tmp_path / "int8.onnx")
    assert (tmp_path / "int8.onnx").stat().st_size < 0.4 * (tmp_path / "float32.onnx").stat().st_size
    windows = data.modality("eog", split.test)
    int8 = onnx_probabilities(onnx_session(tmp_path / "int8.onnx"), windows)
    float32 = onnx_probabilities(onnx_session(tmp_path / "float32.onnx"), windows)
    assert np.allclose(int8.sum(1), 1, atol=1e-5)
    assert 0 < np.abs(int8 - float32).max() < 0.05


def test_subject_statistics_must_be_known(run_dir):
    _, scaler = load_student(run_dir)
    mean, std = window_statistics(scaler)
    assert mean.shape == std.shape == (2, 1)
    with pytest.raises(ValueError, match="subject 7: the student keeps no statistics of it"):
        window_statistics(scaler, subject=7)


@pytest.mark.parametrize("chunk_s", [0.25, 0.3, 1.7])
def test_stream_decides_as_the_batch_model_on_aligned_windows(deployed, test_part, chunk_s):
    data, split = test_part
    trials = np.unique(data.trial_id[split.test])[:2]
    recording = continuous_recording(data, trials, "valence")
    config = StreamingConfig(window_s=4.0, hop_s=0.5, smoothing_s=0.0)
    stream = StreamingClassifier(lambda w: _torch_probabilities(deployed, w), 2, data.sfreq, config)
    decisions = stream.run(recording.signal, chunk_s=chunk_s)
    n_samples = recording.signal.shape[1]
    assert len(decisions) == (n_samples - 512) // 64 + 1
    times = np.array([d.time_s for d in decisions])
    assert np.allclose(np.diff(times), 0.5) and times[0] == 4.0
    # The windows that end on a segment boundary are the segments, trial after trial, in order.
    rows = np.concatenate([np.flatnonzero(data.trial_id == t)[np.argsort(data.position[data.trial_id == t])]
                           for t in trials])
    batch = _torch_probabilities(deployed, data.modality("eog", rows))[:, 1]
    aligned = np.array([d.probability for d in decisions if d.time_s % 4.0 == 0])
    assert len(aligned) == len(rows)
    assert np.abs(aligned - batch).max() <= 1e-6
    assert all(d.smoothed == d.probability for d in decisions)  # smoothing off
    assert recording.starts_s.tolist() == [0.0, 60.0]
    labels = [data.labels("valence")[data.trial_id == t][0] for t in trials]
    assert recording.truth(np.array([0.0, 59.9, 60.0, 119.9])).tolist() == [labels[0], labels[0], labels[1], labels[1]]


def test_smoothing_is_a_causal_moving_average():
    stream = StreamingClassifier(lambda w: np.stack([1 - w[:, 0, 0], w[:, 0, 0]], axis=1), 1, 4.0,
                                 StreamingConfig(window_s=1.0, hop_s=0.5, smoothing_s=1.0))
    signal = np.r_[np.zeros(4), np.ones(8)][None].astype(np.float32)
    decisions = stream.run(signal, chunk_s=0.75)
    assert [d.probability for d in decisions] == [0.0, 0.0, 1.0, 1.0, 1.0]
    weight = 1 - np.exp(-0.5)
    expected = np.array([0, 0, weight, 1 - (1 - weight) ** 2, 1 - (1 - weight) ** 3])
    assert np.allclose([d.smoothed for d in decisions], expected)


@pytest.mark.parametrize("changes, match", [
    ({"hop_s": 0.0}, "hop_s must be a finite number > 0"),
    ({"hop_s": 5.0}, "hop_s must be at most window_s"),
    ({"smoothing_s": -1.0}, "smoothing_s must be a finite number >= 0"),
])
def test_streaming_config_is_validated(changes, match):
    with pytest.raises(ValueError, match=match):
        StreamingConfig(**changes)


def test_a_hop_must_be_whole_samples():
    with pytest.raises(ValueError, match="hop_s=0.3 s is not a whole number of samples at 128.0 Hz"):
        StreamingClassifier(lambda w: w, 2, 128.0, StreamingConfig(hop_s=0.3))


def _one_line(args: list[str], capsys) -> str:
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_export_command_writes_each_format(run_dir, tmp_path, capsys):
    for fmt, name in (("onnx", "s.onnx"), ("onnx-int8", "s8.onnx"), ("torchscript", "s.pt")):
        assert main(["export", str(run_dir), "--format", fmt, "--subject", "1", "--out", str(tmp_path / name)]) == 0
        assert f"wrote {tmp_path / name} ({fmt}" in capsys.readouterr().out
    check_onnx(tmp_path / "s8.onnx")
    assert (tmp_path / "s8.onnx").stat().st_size < (tmp_path / "s.onnx").stat().st_size
    kept = (tmp_path / "s.onnx").read_bytes()
    err = _one_line(["export", str(run_dir), "--out", str(tmp_path / "s.onnx")], capsys)
    assert err == f"mkdbook export: error: {tmp_path / 's.onnx'}: exists; choose another name (nothing was overwritten)"
    assert (tmp_path / "s.onnx").read_bytes() == kept


def test_export_command_refuses_bad_input(run_dir, cohort, home, tmp_path, capsys):
    out = ["--out", str(tmp_path / "x.onnx")]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "empty: holds no finished student (no metrics.json)" in _one_line(["export", str(empty), *out], capsys)
    teacher = tmp_path / "teacher"
    _train(cohort, teacher, "teacher")
    assert "teacher: holds a Teacher network, not a student" in _one_line(["export", str(teacher), *out], capsys)
    assert "invalid choice: 'tflite'" in _one_line(["export", str(run_dir), "--format", "tflite", *out], capsys)
    assert "subject 3: the student keeps no statistics" in _one_line(
        ["export", str(run_dir), "--subject", "3", *out], capsys)
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in ("metrics.json", "best.pt", "best.pt.sha256", "scaler.pt", "scaler.pt.sha256"):
        (damaged / name).write_bytes((run_dir / name).read_bytes())
    (damaged / "best.pt").write_bytes((run_dir / "best.pt").read_bytes()[:-10])
    assert "best.pt: its SHA-256 does not match" in _one_line(["export", str(damaged), *out], capsys)
    assert not (tmp_path / "x.onnx").exists()


def test_new_statistics_replace_two_constants(deployed, run_dir, test_part, tmp_path):
    data, split = test_part
    export_onnx(deployed, tmp_path / "subject.onnx")
    _, scaler = load_student(run_dir)
    pooled = window_statistics(scaler)
    with_statistics(tmp_path / "subject.onnx", tmp_path / "pooled.onnx", *pooled)
    windows = data.modality("eog", split.test)
    expected = _torch_probabilities(StandardisedStudent(deployed.student, *pooled), windows)
    assert np.abs(onnx_probabilities(onnx_session(tmp_path / "pooled.onnx"), windows) - expected).max() <= 1e-5
    with pytest.raises(ValueError, match="holds no 'mean' constant of shape"):
        with_statistics(tmp_path / "subject.onnx", tmp_path / "x.onnx", torch.zeros(3, 1), torch.ones(3, 1))
