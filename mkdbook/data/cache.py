"""A float32 memory-mapped segment cache, built once per data folder.

Unpickling 32 DEAP files and cutting them into segments takes a while; the
models then read random batches of segments thousands of times. So the
segments are written once to a flat float32 file that later loads map
straight into memory (:func:`numpy.memmap`), at close to disk speed.

A cache records the size and modification time of every source file and a
CRC-32 checksum of its own bytes. On load, a cache whose sources changed
(stale) or whose bytes no longer match (corrupt, truncated) is rebuilt,
never used. A build writes into a temporary folder that replaces the old
cache only when complete, so an interrupted build leaves the previous state.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mkdbook import __version__
from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.reader import find_subject_files, read_subject_file
from mkdbook.data.segments import SegmentConfig, SegmentSet, segment_trials
from mkdbook.paths import home

#: Bumped whenever the cache layout changes, so old caches are rebuilt.
CACHE_FORMAT = 1
SIMULATION_MANIFEST = "mkdbook-simulated.json"
_CHUNK = 1 << 26


def describe_source(deap_dir: Path | str) -> str:
    """Say in a few words what a data folder holds, for figure captions.

    A folder written by :func:`mkdbook.data.simulate.simulate_cohort` carries
    a manifest and is described as simulated; any other folder is taken to be
    the real DEAP release.
    """
    manifest = Path(deap_dir) / SIMULATION_MANIFEST
    if manifest.is_file():
        meta = json.loads(manifest.read_text())
        return (f"simulated cohort (variant {meta['variant']!r}, {meta['n_subjects']} subjects, "
                f"seed {meta['seed']}), not DEAP")
    return f"DEAP ({Path(deap_dir).name})"


def _fingerprint(files: list[Path]) -> list[list]:
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def _checksum(path: Path) -> int:
    crc = 0
    with path.open("rb") as stream:
        while block := stream.read(_CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def cache_folder(deap_dir: Path | str, subjects: list[int], config: SegmentConfig,
                 cache_dir: Path | str | None = None) -> Path:
    """Return the folder that caches these subjects of ``deap_dir`` cut by ``config``."""
    key = json.dumps([str(Path(deap_dir).resolve()), subjects, asdict(config), CACHE_FORMAT])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir) if cache_dir is not None else home() / "segments" / digest


def _layout_record(layout: Layout) -> dict:
    # Through JSON so that a manifest read back compares equal (tuples become lists).
    return json.loads(json.dumps(asdict(layout)))


def _build(files: list[Path], folder: Path, config: SegmentConfig, layout: Layout, source: str,
           progress: bool) -> None:
    tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_cache(files, tmp, config, layout, source, progress)
    except BaseException:
        # A failed or interrupted build leaves the previous cache as it was.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def _write_cache(files: list[Path], tmp: Path, config: SegmentConfig, layout: Layout, source: str,
                 progress: bool) -> None:
    per_trial = config.segments_per_trial(layout)
    rows = layout.n_trials * per_trial
    shape = (len(files) * rows, len(layout.channels), config.segment_samples(layout))
    signals = np.lib.format.open_memmap(tmp / "signals.npy", mode="w+", dtype=np.float32, shape=shape)
    subject = np.empty(shape[0], np.int16)
    ratings = np.empty((shape[0], len(layout.rating_scales)), np.float32)
    for i, path in enumerate(tqdm(files, desc="preparing segments", unit="subject", disable=not progress)):
        recording = read_subject_file(path)
        block = slice(i * rows, (i + 1) * rows)
        signals[block] = segment_trials(recording.data, config, layout).reshape(rows, *shape[1:])
        subject[block] = recording.subject
        ratings[block] = np.repeat(recording.labels, per_trial, axis=0)
    signals.flush()
    del signals
    trial = np.tile(np.repeat(np.arange(layout.n_trials, dtype=np.int16), per_trial), len(files))
    position = np.tile(np.arange(per_trial, dtype=np.int16), len(files) * layout.n_trials)
    np.savez(tmp / "index.npz", subject=subject, trial=trial, position=position, ratings=ratings)
    manifest = {
        "format": CACHE_FORMAT,
        "package_version": __version__,
        "source": source,
        "sources": _fingerprint(files),
        "config": asdict(config),
        "layout": _layout_record(layout),
        "shape": list(shape),
        "checksums": {name: _checksum(tmp / name) for name in ("signals.npy", "index.npz")},
    }
    # The manifest is written last: a folder without one is never trusted.
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _problem_with(folder: Path, files: list[Path], config: SegmentConfig, layout: Layout,
                  verify: bool) -> str | None:
    """Why the cache in ``folder`` cannot be used, or ``None`` if it can."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except FileNotFoundError:
        return "missing"
    except (OSError, json.JSONDecodeError):
        return "corrupt (unreadable manifest)"
    if (manifest.get("format") != CACHE_FORMAT or manifest.get("config") != asdict(config)
            or manifest.get("layout") != _layout_record(layout)):
        return "stale (built by another version, configuration or layout)"
    if manifest.get("sources") != _fingerprint(files):
        return "stale (the source files changed)"
    expected = np.prod(manifest["shape"]) * 4
    signals = folder / "signals.npy"
    if not signals.is_file() or signals.stat().st_size < expected:
        return "corrupt (signals file truncated)"
    if verify:
        for name, crc in manifest["checksums"].items():
            if not (folder / name).is_file() or _checksum(folder / name) != crc:
                return f"corrupt ({name} does not match its checksum)"
    return None


def load_segments(
    deap_dir: Path | str,
    *,
    subjects: Iterable[int] | None = None,
    config: SegmentConfig = SegmentConfig(),
    cache_dir: Path | str | None = None,
    verify: bool = True,
    progress: bool = True,
    layout: Layout = DEAP,
) -> SegmentSet:
    """Load the segments of a DEAP folder, preparing the cache on first use.

    Parameters
    ----------
    deap_dir : path-like
        DEAP's ``data_preprocessed_python/`` or a simulated cohort in its format.
    subjects : iterable of int, optional
        Subject numbers to load; every ``sNN.dat`` present by default.
    config : SegmentConfig
        Segment length, baseline and class threshold.
    cache_dir : path-like, optional
        Where the cache lives; by default a folder under ``$MKDBOOK_HOME/segments``
        named by a hash of the data folder, the subjects and ``config``.
    verify : bool
        Check the cache's checksums before using it (reads every byte once).
        The size and source checks always run.
    progress : bool
        Show a progress bar while preparing.
    layout : Layout
        The layout of the files; :data:`~mkdbook.data.layout.DEAP` by default,
        the only one the reader reads today.

    Returns
    -------
    SegmentSet
        Signals as a read-only memory map.

    Raises
    ------
    DeapFormatError
        If a source file is malformed (the message names the file).
    FileNotFoundError
        If the folder or a requested subject file is missing.
    """
    files = find_subject_files(deap_dir, subjects)
    numbers = [int(p.stem[1:]) for p in files]
    folder = cache_folder(deap_dir, numbers, config, cache_dir)
    problem = _problem_with(folder, files, config, layout, verify)
    if problem is not None:
        if problem != "missing":
            warnings.warn(f"segment cache {folder} is {problem}; rebuilding it", stacklevel=2)
        _build(files, folder, config, layout, describe_source(deap_dir), progress)
    manifest = json.loads((folder / "manifest.json").read_text())
    index = np.load(folder / "index.npz")
    return SegmentSet(
        signals=np.load(folder / "signals.npy", mmap_mode="r"),
        subject=index["subject"].astype(np.int64),
        trial=index["trial"].astype(np.int64),
        position=index["position"].astype(np.int64),
        ratings=index["ratings"],
        config=config,
        source=manifest["source"],
        layout=layout,
    )
