"""The segment cache heals: damaged manifests and files, races, leftovers, stale sources, bad paths."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from mkdbook.data import DeapFormatError, describe_source, load_segments
from mkdbook.data import cache as cache_module
from mkdbook.data import install as install_module
from mkdbook.data.readers import DeapReader
from conftest import deap_dict, write_pickle

# One subject keeps every build here to half the size of the other cache tests'.
SUBJECTS = [1]
ROW = 100  # trial 6, segment 10 of subject 1


@pytest.fixture(scope="module")
def built(deap_template, tmp_path_factory):
    """A valid cache of subject 1, built once per module."""
    # Copies of it are valid for ``deap_dir``, whose files keep the template's sizes and times.
    folder = tmp_path_factory.mktemp("built") / "cache"
    load_segments(deap_template, subjects=SUBJECTS, cache_dir=folder, progress=False)
    return folder


@pytest.fixture
def cache_dir(tmp_path, built):
    folder = tmp_path / "cache"
    shutil.copytree(built, folder)
    return folder


def expected_row() -> np.ndarray:
    start = 3 * 128 + 10 * 512
    return deap_dict(1)["data"][6, :, start:start + 512]


def load(deap_dir, cache_dir, **kwargs):
    return load_segments(deap_dir, subjects=SUBJECTS, cache_dir=cache_dir, progress=False, **kwargs)


def load_quietly(deap_dir, cache_dir, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load(deap_dir, cache_dir, **kwargs)


def leftovers(cache_dir) -> list[str]:
    return sorted(p.name for p in cache_dir.parent.iterdir() if p.name.startswith(f"{cache_dir.name}."))


def edit_manifest(change):
    def damage(path):
        manifest = json.loads(path.read_text())
        change(manifest)
        path.write_text(json.dumps(manifest))
    return damage


def write(raw: bytes):
    return lambda path: path.write_bytes(raw)


MANIFEST_DAMAGE = {
    "not UTF-8": write(b'{"format": 2, "source": "\xff\xfe"}'),
    "cut short": lambda path: path.write_bytes(path.read_bytes()[:100]),
    "nested too deep": write(b"[" * 100_000),
    "a list": write(b"[]"),
    "a string": write(b'"manifest"'),
    "null": write(b"null"),
    "no source": edit_manifest(lambda m: m.pop("source")),
    "renamed sources": edit_manifest(lambda m: m.update(source_files=m.pop("sources"))),
    "format as text": edit_manifest(lambda m: m.update(format="2")),
    "format as true": edit_manifest(lambda m: m.update(format=True)),
    "sources a string": edit_manifest(lambda m: m.update(sources="s01.dat")),
    "source as a list": edit_manifest(lambda m: m.update(sources=[list(s.values()) for s in m["sources"]])),
    "checksum as text": edit_manifest(lambda m: m["sources"][0].update(crc32="0")),
    "checksums a list": edit_manifest(lambda m: m.update(checksums=[])),
    "checksum missing": edit_manifest(lambda m: m["checksums"].pop("index.npz")),
    "shape a string": edit_manifest(lambda m: m.update(shape="big")),
    "shape wrong": edit_manifest(lambda m: m.update(shape=[1, 40, 512])),
    "config a list": edit_manifest(lambda m: m.update(config=[])),
}


@pytest.mark.parametrize("damage", MANIFEST_DAMAGE.values(), ids=MANIFEST_DAMAGE.keys())
def test_damaged_manifest_heals_with_a_warning(deap_dir, cache_dir, damage):
    damage(cache_dir / "manifest.json")
    with pytest.warns(UserWarning, match="corrupt"):
        data = load(deap_dir, cache_dir, verify=False)
    np.testing.assert_array_equal(data.signals[ROW], expected_row())
    assert load_quietly(deap_dir, cache_dir).source == "DEAP (data_preprocessed_python)"
    assert leftovers(cache_dir) == []


def test_manifest_of_an_older_format_is_stale(deap_dir, cache_dir):
    edit_manifest(lambda m: m.update(format=1))(cache_dir / "manifest.json")
    with pytest.warns(UserWarning, match="stale"):
        load(deap_dir, cache_dir)
    load_quietly(deap_dir, cache_dir)


def rewrite_index(path, **columns):
    with np.load(path) as index:
        arrays = {name: index[name] for name in index.files}
    arrays.update(columns)
    np.savez(path, **{name: value for name, value in arrays.items() if value is not None})


FILE_DAMAGE = {
    "index garbage": lambda folder: (folder / "index.npz").write_bytes(b"PK\x03\x04garbage"),
    "index missing": lambda folder: (folder / "index.npz").unlink(),
    "index lacks ratings": lambda folder: rewrite_index(folder / "index.npz", ratings=None),
    "index too short": lambda folder: rewrite_index(folder / "index.npz", subject=np.ones(3, np.int16)),
    "index of text": lambda folder: rewrite_index(folder / "index.npz", trial=np.array(["a"] * 600)),
    "signals header": lambda folder: (folder / "signals.npy").write_bytes(b"\x93NUMPY garbage" * 4),
    "signals missing": lambda folder: (folder / "signals.npy").unlink(),
    "signals an npz": lambda folder: shutil.copy(folder / "index.npz", folder / "signals.npy"),
}


@pytest.mark.parametrize("damage", FILE_DAMAGE.values(), ids=FILE_DAMAGE.keys())
def test_damaged_files_heal_even_unverified(deap_dir, cache_dir, damage):
    # verify=False skips the checksums: opening the files must still not fail.
    damage(cache_dir)
    with pytest.warns(UserWarning, match="corrupt"):
        data = load(deap_dir, cache_dir, verify=False)
    np.testing.assert_array_equal(data.signals[ROW], expected_row())
    load_quietly(deap_dir, cache_dir)


def install_copy(built, folder):
    """Do what a concurrent build does when it installs: rename a complete cache into place."""
    fresh = folder.with_name("other-process-build")
    shutil.copytree(built, fresh)
    old = folder.with_name("other-process-old")
    if folder.exists():
        os.rename(folder, old)
    os.rename(fresh, folder)
    shutil.rmtree(old, ignore_errors=True)
    return install_module.identity(folder)


@pytest.mark.parametrize("before", ["missing", "corrupt"])
def test_a_concurrent_build_that_installs_first_wins(deap_dir, cache_dir, built, monkeypatch, before):
    if before == "missing":
        shutil.rmtree(cache_dir)
    else:
        (cache_dir / "manifest.json").write_text("{not json")
    write_cache = cache_module._write_cache
    winner = {}

    def and_meanwhile(*args):
        write_cache(*args)
        winner["identity"] = install_copy(built, cache_dir)

    monkeypatch.setattr(cache_module, "_write_cache", and_meanwhile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load(deap_dir, cache_dir)
    assert [str(w.message) for w in caught] == ([] if before == "missing" else [
        f"segment cache {cache_dir} is corrupt (unreadable manifest); rebuilding it"])
    assert install_module.identity(cache_dir) == winner["identity"]
    np.testing.assert_array_equal(data.signals[ROW], expected_row())
    assert leftovers(cache_dir) == []


def test_a_cache_installed_after_the_judgement_is_put_back(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    theirs = install_module.identity(folder)
    aside = tmp_path / "cache.old-x"
    install_module._set_aside(folder, aside, judged=(-1, -1))
    assert install_module.identity(folder) == theirs and not aside.exists()


def test_a_reader_starts_over_when_the_cache_is_replaced_under_it(deap_dir, cache_dir, built, monkeypatch):
    open_once = cache_module._open_once
    calls = []

    def replaced_meanwhile(*args):
        calls.append(args)
        opened = open_once(*args)
        if len(calls) == 1:
            install_copy(built, cache_dir)
        return opened

    monkeypatch.setattr(cache_module, "_open_once", replaced_meanwhile)
    data = load_quietly(deap_dir, cache_dir)
    assert len(calls) == 2
    np.testing.assert_array_equal(data.signals[ROW], expected_row())


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", ""])
    process.wait()
    return process.pid


def test_folders_of_killed_builds_are_removed_not_running_ones(deap_dir, cache_dir):
    host, dead, name = install_module._host(), dead_pid(), cache_dir.name
    removed = [f"{name}.tmp-{dead}", f"{name}.tmp-{host}-{dead}-0123abcd", f"{name}.old-{host}-{dead}-0123abcd",
               f"{name}.tmp-elsewhere-{dead}-89abcdef"]
    kept = [f"{name}.tmp-{os.getpid()}", f"{name}.tmp-{host}-{os.getpid()}-0123abcd",
            f"{name}.tmp-elsewhere-{dead}-0123abcd", f"other.tmp-{dead}"]
    for folder in removed + kept:
        (cache_dir.parent / folder).mkdir()
        (cache_dir.parent / folder / "signals.npy").write_bytes(b"partial")
    # Another host's PIDs mean nothing here: only its age shows that it was abandoned.
    two_days_ago = time.time() - 2 * 24 * 3600
    for path in (cache_dir.parent / removed[-1], cache_dir.parent / removed[-1] / "signals.npy"):
        os.utime(path, (two_days_ago, two_days_ago))
    load_quietly(deap_dir, cache_dir)
    assert sorted(p.name for p in cache_dir.parent.iterdir() if p != deap_dir) == sorted(kept + [name])


def test_same_size_same_time_change_is_caught_by_verify_sources(deap_dir, cache_dir, monkeypatch):
    path = deap_dir / "s01.dat"
    before = path.stat()
    changed = deap_dict(1)
    changed["data"] = changed["data"][::-1].copy()  # the same bytes in another order
    write_pickle(path, changed)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    # Size and time match: without verify_sources the stale cache is served.
    np.testing.assert_array_equal(load_quietly(deap_dir, cache_dir).signals[ROW], expected_row())
    with pytest.warns(UserWarning, match=r"stale \(s01\.dat changed"):
        data = load(deap_dir, cache_dir, verify_sources=True)
    np.testing.assert_array_equal(data.signals[0, :, :512], changed["data"][0, :, 384:896])
    load_quietly(deap_dir, cache_dir, verify_sources=True)


def test_verify_sources_keeps_a_fresh_cache(deap_dir, cache_dir, monkeypatch):
    def fail(*_, **__):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(DeapReader, "read", fail)  # the only way a build reads DEAP files
    assert len(load_quietly(deap_dir, cache_dir, verify_sources=True)) == 600


SIMULATION_DAMAGE = {
    "not JSON": b"{not json",
    "not UTF-8": b'{"variant": "\xff"}',
    "a list": b"[]",
    "no seed": b'{"variant": "default", "n_subjects": 2}',
    "variant a number": b'{"variant": 1, "n_subjects": 2, "seed": 0}',
}


@pytest.mark.parametrize("raw", SIMULATION_DAMAGE.values(), ids=SIMULATION_DAMAGE.keys())
def test_bad_simulation_manifest_is_named(tmp_path, raw):
    manifest = tmp_path / cache_module.SIMULATION_MANIFEST
    manifest.write_bytes(raw)
    with pytest.raises(DeapFormatError, match=re.escape(str(manifest)) + ".*expected") as error:
        describe_source(tmp_path)
    assert "\n" not in str(error.value)


def test_simulation_manifest_is_described(tmp_path):
    (tmp_path / cache_module.SIMULATION_MANIFEST).write_text(
        '{"variant": "null", "n_subjects": 3, "seed": 7, "subjects": {}}')
    assert describe_source(tmp_path) == "simulated cohort (variant 'null', 3 subjects, seed 7), not DEAP"


def test_home_that_is_a_file_is_named(deap_dir, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("MKDBOOK_HOME", str(home))
    with pytest.raises(OSError, match=re.escape(f"{home} is a file, not a folder")):
        load_segments(deap_dir, subjects=SUBJECTS, progress=False)
    assert home.read_text() == "not a folder"


def test_cache_dir_that_is_a_file_is_named_and_kept(deap_dir, tmp_path):
    target = tmp_path / "cache"
    target.write_text("mine")
    with pytest.raises(NotADirectoryError, match=re.escape(f"{target} is a file")):
        load(deap_dir, target)
    assert target.read_text() == "mine" and leftovers(target) == []


def test_unwritable_cache_folder_is_named(deap_dir, tmp_path, monkeypatch):
    target = tmp_path / "cache"

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(cache_module.Path, "mkdir", refuse)
    with pytest.raises(PermissionError, match=re.escape(f"cannot write the segment cache {target}")):
        load(deap_dir, target)
    assert list(tmp_path.iterdir()) == [deap_dir]


def test_install_that_fails_names_the_folder_and_leaves_nothing(deap_dir, cache_dir, monkeypatch):
    shutil.rmtree(cache_dir)
    rename = os.rename

    def refuse(src, dst):
        if ".tmp-" in str(src):
            raise PermissionError(13, "Permission denied", str(src))
        rename(src, dst)

    monkeypatch.setattr(install_module.os, "rename", refuse)
    with pytest.raises(PermissionError, match=re.escape(f"cannot write the segment cache {cache_dir}")):
        load(deap_dir, cache_dir)
    assert leftovers(cache_dir) == [] and not cache_dir.exists()
