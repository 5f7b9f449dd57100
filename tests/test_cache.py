"""The segment cache: correct segments, reuse, and no use of stale or corrupt caches."""

from __future__ import annotations

import json
import os
import zlib

import numpy as np
import pytest

from mkdbook.data import DEAP, DeapFormatError, SegmentConfig, load_segments, segment_trials
from mkdbook.data import cache as cache_module
from mkdbook.data.readers import DeapReader
from conftest import deap_dict, write_pickle


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def test_segments_hold_the_right_samples(deap_dir, cache_dir):
    data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert data.signals.shape == (2 * 40 * 15, 40, 512)
    assert data.signals.dtype == np.float32
    assert isinstance(data.signals, np.memmap)
    assert np.all(np.bincount(data.position) == 80)
    row = np.flatnonzero((data.subject == 2) & (data.trial == 7) & (data.position == 3))[0]
    original = deap_dict(2)["data"]
    start = 3 * 128 + 3 * 512  # after the 3-s baseline, the fourth segment
    np.testing.assert_array_equal(data.signals[row], original[7, :, start:start + 512])
    np.testing.assert_allclose(data.ratings[row], deap_dict(2)["labels"][7], rtol=1e-6)


def test_labels_follow_the_threshold(deap_dir, cache_dir):
    data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    np.testing.assert_array_equal(data.labels("valence"), (data.ratings[:, 0] > 5).astype(int))
    assert data.labels("arousal", threshold=1.0).all()
    with pytest.raises(ValueError, match="rating scale of DEAP must be one of .*got 'happiness'"):
        data.labels("happiness")


def test_modalities_are_picked_by_name(deap_dir, cache_dir):
    data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    batch = data.batch(np.array([5, 0]), ("eeg", "eog"))
    assert batch["eeg"].shape == (2, 32, 512) and batch["eog"].shape == (2, 2, 512)
    start = 3 * 128 + 5 * 512  # segment 5 of trial 0 of subject 1
    np.testing.assert_array_equal(batch["eog"][0], deap_dict(1)["data"][0, 32:34, start:start + 512])
    np.testing.assert_array_equal(data.modality("eog", np.array([5, 0])), batch["eog"])


def test_second_load_reuses_the_cache(deap_dir, cache_dir, monkeypatch):
    load_segments(deap_dir, cache_dir=cache_dir, progress=False)

    def fail(*_, **__):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(DeapReader, "read", fail)  # the only way a build reads DEAP files
    data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert len(data) == 1200


def test_changed_source_makes_the_cache_stale(deap_dir, cache_dir):
    load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    changed = deap_dict(1)
    changed["data"] += 0.5
    write_pickle(deap_dir / "s01.dat", changed)
    with pytest.warns(UserWarning, match="stale"):
        data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert data.signals[0, 0, 0] == pytest.approx(changed["data"][0, 0, 384])


def test_cache_records_its_layout(deap_dir, cache_dir):
    data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert data.layout == DEAP
    assert data.model_inputs() == {"n_channels": DEAP.channel_counts(), "n_times": 512, "sfreq": 128.0}
    manifest_path = cache_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["layout"]["name"] == "DEAP" and len(manifest["layout"]["channels"]) == 40
    manifest["layout"]["sfreq"] = 256.0
    manifest_path.write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="stale"):
        load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert json.loads(manifest_path.read_text())["layout"]["sfreq"] == 128.0


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest"])
def test_corrupt_cache_is_rebuilt_not_used(deap_dir, cache_dir, damage):
    good = np.array(load_segments(deap_dir, cache_dir=cache_dir, progress=False).signals[100])
    target = cache_dir / "signals.npy"
    if damage == "flip":
        with target.open("r+b") as stream:
            stream.seek(200 * 40 * 512 * 4 // 2)
            byte = stream.read(1)
            stream.seek(-1, os.SEEK_CUR)
            stream.write(bytes([byte[0] ^ 0xFF]))
    elif damage == "truncate":
        os.truncate(target, target.stat().st_size // 2)
    else:
        (cache_dir / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="corrupt"):
        data = load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    np.testing.assert_array_equal(data.signals[100], good)


def test_failed_build_keeps_the_previous_cache(deap_dir, cache_dir):
    load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    before = json.loads((cache_dir / "manifest.json").read_text())
    (deap_dir / "s02.dat").write_bytes(b"\x80\x02garbage")
    with pytest.warns(UserWarning, match="stale"), pytest.raises(DeapFormatError, match=r"s02\.dat"):
        load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    assert json.loads((cache_dir / "manifest.json").read_text()) == before
    assert not [p.name for p in cache_dir.parent.iterdir() if ".tmp-" in p.name]


def test_segment_config_is_validated():
    assert SegmentConfig().segments_per_trial(DEAP) == 15
    assert SegmentConfig(segment_seconds=2).segment_samples(DEAP) == 256
    with pytest.raises(ValueError, match="threshold"):
        SegmentConfig(threshold=9.5)
    with pytest.raises(ValueError, match="does not fit in one DEAP trial"):
        SegmentConfig(segment_seconds=61).segments_per_trial(DEAP)


def test_checksums_are_those_of_the_files(deap_dir, cache_dir):
    # Computed while reading and writing, never by reading a file back.
    load_segments(deap_dir, cache_dir=cache_dir, progress=False)
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    for name, crc in manifest["checksums"].items():
        assert crc == zlib.crc32((cache_dir / name).read_bytes()), name
    for entry in manifest["sources"]:
        assert entry["crc32"] == zlib.crc32((deap_dir / entry["name"]).read_bytes())


def test_segment_trials_into_a_buffer_equals_a_new_array():
    data = deap_dict(3, dtype=np.float64)["data"]
    config = SegmentConfig()
    expected = segment_trials(data, config)
    out = np.full(expected.shape, np.nan, np.float32)
    assert segment_trials(data, config, out=out) is out
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(ValueError, match="out must be a float32 array of shape"):
        segment_trials(data, config, out=out[:-1])
