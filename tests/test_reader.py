"""The DEAP reader accepts DEAP's files and refuses everything else clearly."""

from __future__ import annotations

import os
import pickle
import zlib

import numpy as np
import pytest

from mkdbook.data import DeapFormatError, find_subject_files, read_subject_file
from conftest import deap_dict, write_pickle


def test_reads_a_valid_file(deap_dir):
    recording = read_subject_file(deap_dir / "s02.dat")
    assert recording.subject == 2
    assert recording.data.shape == (40, 40, 8064)
    assert recording.labels.shape == (40, 4)
    assert recording.data[3, 5, 0] == pytest.approx(2003.05)


def test_reads_float64_python2_style_pickles(tmp_path):
    # DEAP's own files hold float64 and name numpy.core.multiarray, as here.
    path = write_pickle(tmp_path / "s05.dat", deap_dict(5, dtype=np.float64))
    assert read_subject_file(path).data.dtype == np.float64


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "pwned"
    content = deap_dict(1)
    content["labels"] = Exploit(marker)
    path = write_pickle(tmp_path / "s01.dat", content)
    with pytest.raises(DeapFormatError, match=r"s01\.dat: not a DEAP pickle .*posix\.mkdir"):
        read_subject_file(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("labels"), r"expected keys \['data', 'labels'\]"),
        (lambda d: d.update(extra=1), r"expected keys"),
        (lambda d: d.update(data=d["data"][:, :32]), r"'data' must have shape \(40, 40, 8064\), got \(40, 32, 8064\)"),
        (lambda d: d.update(labels=d["labels"][:39]), r"'labels' must have shape \(40, 4\)"),
        (lambda d: d.update(data=d["data"].astype(np.int32)), r"floating-point numbers, got dtype int32"),
        (lambda d: d["data"].__setitem__((0, 0, 0), np.nan), r"'data' holds 1 NaN or infinite values"),
        (lambda d: d["labels"].__setitem__((0, 0), 10.0), r"'labels' must lie in \[1, 9\]"),
        (lambda d: d.update(data=d["data"].tolist()[0][0][:3]), r"'data' must be a numpy array, got list"),
    ],
)
def test_refuses_malformed_content(tmp_path, mutate, message):
    content = deap_dict(1)
    mutate(content)
    path = write_pickle(tmp_path / "s01.dat", content)
    with pytest.raises(DeapFormatError, match=message) as caught:
        read_subject_file(path)
    assert str(caught.value).startswith(str(path))
    assert "\n" not in str(caught.value)


def test_refuses_a_list_instead_of_a_dict(tmp_path):
    path = write_pickle(tmp_path / "s01.dat", [1, 2, 3])
    with pytest.raises(DeapFormatError, match="expected a dict with 'data' and 'labels', got list"):
        read_subject_file(path)


@pytest.mark.parametrize("keep", [0, 10, 1000, 5_000_000])
def test_refuses_truncated_files(deap_dir, keep):
    path = deap_dir / "s01.dat"
    path.write_bytes(path.read_bytes()[:keep])
    with pytest.raises(DeapFormatError, match=r"s01\.dat: (truncated or corrupt|not a DEAP pickle)"):
        read_subject_file(path)


def test_refuses_a_file_that_is_not_a_pickle(tmp_path):
    path = tmp_path / "s01.dat"
    path.write_text("subject,valence\n1,5\n")
    with pytest.raises(DeapFormatError, match=r"s01\.dat"):
        read_subject_file(path)


def test_file_names_and_subject_selection(deap_dir):
    (deap_dir / "notes.txt").write_text("ignored")
    assert [p.name for p in find_subject_files(deap_dir)] == ["s01.dat", "s02.dat"]
    assert [p.name for p in find_subject_files(deap_dir, [2])] == ["s02.dat"]
    with pytest.raises(FileNotFoundError, match=r"missing s07\.dat"):
        find_subject_files(deap_dir, [1, 7])
    with pytest.raises(FileNotFoundError, match="no sNN.dat files"):
        find_subject_files(deap_dir / "..")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        find_subject_files(deap_dir / "nope")
    with pytest.raises(DeapFormatError, match="sNN.dat"):
        read_subject_file(deap_dir / "notes.txt")


def test_loader_refuses_builtins_even_inside_containers():
    from mkdbook.data.readers.safe_pickle import UnsafePickleError, loads

    payload = pickle.dumps({"data": [eval]}, protocol=2)
    with pytest.raises(UnsafePickleError, match=r"builtin\w*\.eval"):
        loads(payload)


def test_arrays_own_their_memory_unless_mapped_is_asked(tmp_path):
    # A Python 2 file's array can be a view of the file's memory map; by
    # default it is copied, so that a recording never depends on the file.
    from test_hostile import deap_py2_pickle

    original = deap_dict(4, dtype=np.float64)
    path = tmp_path / "s04.dat"
    path.write_bytes(deap_py2_pickle(original))
    owned, mapped = read_subject_file(path), read_subject_file(path, mapped=True)
    assert owned.data.flags.owndata and not mapped.data.flags.owndata
    for recording in (owned, mapped):
        np.testing.assert_array_equal(recording.data, original["data"])
        assert not recording.data.flags.writeable
        assert recording.crc32 == zlib.crc32(path.read_bytes())
