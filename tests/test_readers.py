"""The reader seam: the registry of formats, inference, mismatches, cache keys, and the README's toy reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mkdbook.data import SegmentConfig, load_segments
from mkdbook.data import readers
from mkdbook.data.cache import cache_folder
from mkdbook.data.readers import (
    BidsReader,
    DeapReader,
    Reader,
    infer_format,
    reader_for,
    register_format,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_recipe() -> str:
    """The code block of the README's "A new data set" paragraph."""
    text = README.read_text(encoding="utf-8")
    paragraph = text[text.index("**A new data set**"):]
    return re.search(r"```python\n(.*?)```", paragraph, re.DOTALL).group(1)


@pytest.fixture
def formats(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the registry, so that a test's format leaves with it."""
    copy = dict(readers.FORMATS)
    monkeypatch.setattr(readers, "FORMATS", copy)
    return copy


def write_toy_folder(folder: Path) -> dict[int, dict[str, np.ndarray]]:
    """Two subjects in the README's made-up format: four trials of 11 s at 128 Hz, three channels."""
    folder.mkdir()
    written = {}
    for subject in (1, 2):
        rng = np.random.default_rng(subject)
        arrays = {"signals": rng.normal(size=(4, 3, 11 * 128)).astype(np.float32),
                  "ratings": rng.uniform(1, 9, size=(4, 2))}
        np.savez(folder / f"rec-{subject}.npz", **arrays)
        written[subject] = arrays
    return written


def test_the_readme_recipe_reads_a_made_up_format(formats, tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    written = write_toy_folder(tmp_path / "my_recordings")
    namespace: dict = {}
    exec(compile(readme_recipe(), str(README), "exec"), namespace)  # noqa: S102 - the README's own code

    assert formats["toy"] is namespace["ToyReader"]
    assert infer_format(tmp_path / "my_recordings") == "toy"
    segments = namespace["segments"]
    # 8 s after the 3-s baseline: two 4-s segments per trial, four trials, two subjects.
    assert len(segments) == 2 * 4 * 2 and segments.layout is namespace["TOY"]
    assert segments.model_inputs()["n_channels"] == {"eeg": 2, "eog": 1}
    start = 3 * 128 + 512  # segment 1 of trial 2 of subject 2
    row = np.flatnonzero((segments.subject == 2) & (segments.trial == 2) & (segments.position == 1))[0]
    np.testing.assert_array_equal(segments.signals[row], written[2]["signals"][2, :, start:start + 512])
    np.testing.assert_array_equal(segments.ratings[row], written[2]["ratings"][2].astype(np.float32))
    assert segments.modality("eog", np.array([row])).shape == (1, 1, 512)
    # The cache records the format; a second load reads nothing.
    manifest = json.loads((cache_folder(tmp_path / "my_recordings", [1, 2], SegmentConfig()) /
                           "manifest.json").read_text())
    assert manifest["reader"] == {"format": "toy", "options": {}}
    assert [entry["name"] for entry in manifest["sources"]] == ["rec-1.npz", "rec-2.npz"]
    again = load_segments("my_recordings", reader="toy", progress=False)
    np.testing.assert_array_equal(again.signals, segments.signals)


def test_a_reader_that_breaks_its_layout_is_one_line_naming_the_file(formats, tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    written = write_toy_folder(tmp_path / "my_recordings")
    written[2]["ratings"][0, 0] = 12.0
    np.savez(tmp_path / "my_recordings" / "rec-2.npz", **written[2])
    with pytest.raises(ValueError, match=r"rec-2\.npz: 'labels' must lie in \[1, 9\], got \[.*, 12\]"):
        exec(compile(readme_recipe(), str(README), "exec"), {})  # noqa: S102


def test_registering_checks_the_class(formats):
    with pytest.raises(TypeError, match="subclass of mkdbook.data.readers.Reader"):
        register_format(dict)

    class Nameless(Reader):
        format = ""

    with pytest.raises(ValueError, match="format must be a non-empty string"):
        register_format(Nameless)

    class Impostor(DeapReader):
        pass

    with pytest.raises(ValueError, match="format 'deap' is taken by DeapReader"):
        register_format(Impostor)
    assert register_format(DeapReader) is DeapReader  # registering again changes nothing


def test_the_format_is_inferred_from_the_folder(deap_dir, tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    assert infer_format(deap_dir) == "deap" and isinstance(reader_for(deap_dir), DeapReader)
    assert infer_format(bids) == "bids" and isinstance(reader_for(bids), BidsReader)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no data set that mkdbook can read; expected DEAP"):
        infer_format(empty)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        infer_format(tmp_path / "nowhere")
    (deap_dir / "dataset_description.json").write_text("{}")
    with pytest.raises(ValueError, match="looks like deap and bids data at once; name its format"):
        infer_format(deap_dir)


def test_a_named_format_that_does_not_match_the_folder_is_refused(deap_dir, tmp_path):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text("{}")
    with pytest.raises(ValueError, match="format 'bids' was asked for, but the folder holds deap data"):
        reader_for(deap_dir, "bids")
    with pytest.raises(ValueError, match="format 'deap' was asked for, but the folder holds bids data"):
        reader_for(bids, DeapReader())
    with pytest.raises(ValueError, match=r"format must be one of \('deap', 'bids'\), got 'edf'"):
        reader_for(deap_dir, "edf")
    # An empty folder is left to the reader, whose message says what it expected.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no sNN.dat files"):
        load_segments(empty, reader="deap", progress=False)


def test_the_cache_key_holds_the_format_and_its_options(deap_dir):
    (deap_dir / "dataset_description.json").write_text("{}")  # a folder both formats recognise
    config = SegmentConfig()
    as_deap = cache_folder(deap_dir, [1, 2], config, reader="deap")
    assert as_deap != cache_folder(deap_dir, [1, 2], config, reader="bids")
    assert cache_folder(deap_dir, [1, 2], config, reader=BidsReader()) == cache_folder(
        deap_dir, [1, 2], config, reader="bids")
    assert cache_folder(deap_dir, [1, 2], config, reader=BidsReader(rating_scales=("valence",))) != \
        cache_folder(deap_dir, [1, 2], config, reader="bids")


def test_a_deap_cache_records_its_reader(deap_dir, tmp_path):
    load_segments(deap_dir, subjects=[1], cache_dir=tmp_path / "cache", progress=False)
    manifest = json.loads((tmp_path / "cache" / "manifest.json").read_text())
    assert manifest["reader"] == {"format": "deap", "options": {}}
    assert [entry["name"] for entry in manifest["sources"]] == ["s01.dat"]


@pytest.mark.parametrize("options, says", [
    ({"rating_scales": ()}, "rating_scales must name one or more columns"),
    ({"rating_columns": ("val",)}, r"rating_columns must name one column per rating scale \(4\)"),
    ({"rating_scales": ("valence", "valence")}, "each once"),
    ({"rating_range": (9, 1)}, "low < high"),
    ({"baseline_seconds": -1.0}, "baseline_seconds must be"),
    ({"task": ""}, "task must be None or a non-empty string"),
])
def test_bids_reader_options_are_checked(options, says):
    with pytest.raises(ValueError, match=says):
        BidsReader(**options)
