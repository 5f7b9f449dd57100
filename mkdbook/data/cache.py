"""A float32 memory-mapped segment cache, built once per data folder, whatever its format.

The files are read by a reader (:class:`~mkdbook.data.readers.Reader`):
DEAP's, BIDS's or any registered one, inferred from the folder or named.
Unpickling 32 DEAP files and cutting them into segments takes a while; the
models then read random batches of segments thousands of times. So the
segments are written once to a flat float32 file that later loads map
straight into memory (:func:`numpy.memmap`), at close to disk speed. A build
reads each source file once, through a memory map, casts its segments to
float32 in one pass into a reused buffer, and computes the checksums below
as it reads and writes, never by reading a file back.

A cache records the format and options of its reader, the size,
modification time and CRC-32 checksum of every source file (all the files a
subject is read from) and a CRC-32 checksum of its own bytes. On load, a cache whose
sources changed (stale) or whose files are unreadable, ill-formed or no
longer match their checksums (corrupt) is rebuilt with a warning, never used.
A build writes into a temporary folder that replaces the old cache only when
complete, so an interrupted build leaves the previous state; a build that
finds a cache installed meanwhile by another process keeps that one. The
temporary folders of killed builds are removed by later loads
(:mod:`mkdbook.data.install` does both).
"""

from __future__ import annotations

import io
import json
import shutil
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
from tqdm.auto import tqdm

from mkdbook import __version__
from mkdbook.core.keys import json_key
from mkdbook.core.paths import home
from mkdbook.data.install import Identity, cannot_write, identity, install, remove_abandoned, sibling
from mkdbook.data.layout import Layout
from mkdbook.data.readers import Reader, SubjectSource, check_recording, reader_for
from mkdbook.data.readers.deap import DeapFormatError
from mkdbook.data.segments import SegmentConfig, SegmentSet, TrialBaseline, baseline_statistics, segment_trials

#: Bumped whenever the cache layout changes, so old caches are rebuilt.
CACHE_FORMAT = 5
#: File that marks a folder as a simulated cohort and says how it was made.
SIMULATION_MANIFEST = "mkdbook-simulated.json"
_CHUNK = 1 << 26
#: How often a load starts over when another process replaces the cache under it.
_OPEN_ATTEMPTS = 3
_INDEX_COLUMNS = ("subject", "trial", "position", "ratings")
_MANIFEST_FIELDS = {
    "format": int, "package_version": str, "source": str, "reader": dict, "config": dict, "layout": dict,
    "shape": list, "sources": list, "checksums": dict,
}
_SOURCE_FIELDS = {"name": str, "size": int, "mtime_ns": int, "crc32": int}
_SIMULATION_FIELDS = {"variant": str, "n_subjects": int, "seed": int}


class _Unusable(NamedTuple):
    """Why a cache folder cannot be used, and which folder was judged.

    Only the very folder judged (its device and inode, ``None`` when absent)
    is ever replaced, never a cache that another process installed since.
    """

    reason: str
    judged: Identity | None


class _Inputs(NamedTuple):
    """What a cache is built from: a reader, the folder it reads, and the subjects it found there."""

    reader: Reader
    root: Path
    sources: list[SubjectSource]

    @property
    def files(self) -> list[Path]:
        """Every file of every subject, in subject order."""
        return [path for source in self.sources for path in source.files]

    def name(self, path: Path) -> str:
        """How the manifest names a file: its path below the data folder (``s01.dat``, ``sub-01/eeg/...``)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def key(self) -> dict:
        """The reader's format and options, as a manifest read back holds them."""
        return json.loads(json.dumps(self.reader.key()))


def _read_json(path: Path) -> object:
    # Decoded explicitly: the locale's encoding is not the writer's, and
    # json.loads would guess UTF-16 or UTF-32 from bytes.
    return json.loads(path.read_bytes().decode("utf-8"))


def _has_types(value: object, fields: dict[str, type]) -> bool:
    return isinstance(value, dict) and all(_is(value.get(key), kind) for key, kind in fields.items())


def _is(value: object, kind: type) -> bool:
    # JSON true and false load as bool, an int subclass, yet are never a count.
    return isinstance(value, kind) and not isinstance(value, bool)


def describe_source(data_dir: Path | str, reader: Reader | str | None = None) -> str:
    """Say in a few words what a data folder holds, for figure captions.

    A folder written by :func:`mkdbook.data.simulate.simulate_cohort` carries
    a manifest (:data:`SIMULATION_MANIFEST`) and is described as simulated,
    in DEAP's format or in BIDS; any other folder is described by its reader:
    ``"DEAP (data_preprocessed_python)"`` for the real DEAP release, the data
    set's name for BIDS.

    Parameters
    ----------
    data_dir : path-like
        DEAP's ``data_preprocessed_python/``, a BIDS data set, or a simulated
        cohort in either format.
    reader : Reader, str or None
        The folder's reader or format (:func:`~mkdbook.data.readers.reader_for`);
        inferred by default.

    Returns
    -------
    str

    Raises
    ------
    DeapFormatError
        If the simulation manifest is not UTF-8 JSON holding ``variant``,
        ``n_subjects`` and ``seed`` (the message names the file).
    """
    path = Path(data_dir) / SIMULATION_MANIFEST
    if not path.is_file():
        return reader_for(data_dir, reader).describe(Path(data_dir))
    expected = ("expected the JSON object written by mkdbook.data.simulate, with 'variant' (a string), "
                "'n_subjects' and 'seed' (integers)")
    try:
        meta = _read_json(path)
    except (ValueError, RecursionError) as err:
        raise DeapFormatError(path, f"not UTF-8 JSON ({err}); {expected}") from None
    if not _has_types(meta, _SIMULATION_FIELDS):
        raise DeapFormatError(path, expected)
    written = meta.get("format", "deap")
    copy = f", in {written.upper()}" if isinstance(written, str) and written != "deap" else ""
    return (f"simulated cohort (variant {meta['variant']!r}, {meta['n_subjects']} subjects, "
            f"seed {meta['seed']}{copy}), not DEAP")


def _checksum(path: Path) -> int:
    crc = 0
    with path.open("rb") as stream:
        while block := stream.read(_CHUNK):
            crc = zlib.crc32(block, crc)
    return crc


def _write(stream: BinaryIO, block: bytes | np.ndarray, crc: int) -> int:
    """Write ``block`` and return the CRC-32 of the file so far: a checksum without reading the file back."""
    stream.write(block)
    return zlib.crc32(block, crc)


def _npy_header(shape: tuple[int, ...]) -> bytes:
    """The header of a C-ordered float32 ``.npy`` file of ``shape``, as :func:`numpy.save` writes it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return header.getvalue()


def cache_folder(data_dir: Path | str, subjects: list[int], config: SegmentConfig,
                 cache_dir: Path | str | None = None, reader: Reader | str | None = None) -> Path:
    """Return the folder that caches these subjects of ``data_dir``, read by ``reader`` and cut by ``config``.

    Parameters
    ----------
    data_dir : path-like
        The data folder.
    subjects : list of int
        The subjects cached.
    config : SegmentConfig
    cache_dir : path-like, optional
        Returned as it is when given.
    reader : Reader, str or None
        The folder's reader or format (inferred by default): its format and
        options are part of the key, so two readings of one folder never
        share a cache.
    """
    if cache_dir is not None:
        return Path(cache_dir)
    key = reader_for(data_dir, reader).key()
    digest = json_key([str(Path(data_dir).resolve()), subjects, asdict(config), CACHE_FORMAT, key], length=16)
    return home() / "segments" / digest


def _layout_record(layout: Layout) -> dict:
    # Through JSON so that a manifest read back compares equal (tuples become lists).
    return json.loads(json.dumps(asdict(layout)))


def _write_cache(inputs: _Inputs, tmp: Path, config: SegmentConfig, layout: Layout, source: str,
                 progress: bool) -> None:
    per_trial = config.segments_per_trial(layout)
    rows = layout.n_trials * per_trial
    subjects = inputs.sources
    shape = _expected_shape(len(subjects), config, layout)
    # One subject's segments at a time, in a buffer reused for each: the
    # source's bytes are read once (memory-mapped) and cast to float32 once.
    block = np.empty((layout.n_trials, per_trial, *shape[1:]), np.float32)
    subject = np.empty(shape[0], np.int16)
    ratings = np.empty((shape[0], len(layout.rating_scales)), np.float32)
    # Each trial's baseline statistics (the segments drop the baseline itself).
    baseline = np.zeros((len(subjects) * layout.n_trials, 2, shape[1]), np.float32)
    has_baseline = config.baseline_seconds > 0
    sources = []
    with (tmp / "signals.npy").open("xb") as stream:
        crc = _write(stream, _npy_header(shape), 0)
        for i, subject_source in enumerate(tqdm(subjects, desc="preparing segments", unit="subject",
                                                disable=not progress)):
            # Sizes and times are taken before the read, so that a file changed
            # while the build reads it leaves a stale cache, not a silently wrong one.
            stats = [path.stat() for path in subject_source.files]
            recording = check_recording(inputs.reader.read(subject_source, mapped=True), layout)
            for path, stat in zip(subject_source.files, stats):
                known = recording.crc32 is not None and path == recording.path
                sources.append({"name": inputs.name(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                                "crc32": recording.crc32 if known else _checksum(path)})
            segment_trials(recording.data, config, layout, out=block)
            subject[i * rows:(i + 1) * rows] = recording.subject
            ratings[i * rows:(i + 1) * rows] = np.repeat(recording.labels, per_trial, axis=0)
            if has_baseline:
                baseline[i * layout.n_trials:(i + 1) * layout.n_trials] = np.stack(
                    baseline_statistics(recording.data, config, layout), axis=1)
            del recording  # the last view of the file's memory map
            crc = _write(stream, block, crc)
    trial = np.tile(np.repeat(np.arange(layout.n_trials, dtype=np.int16), per_trial), len(subjects))
    position = np.tile(np.arange(per_trial, dtype=np.int16), len(subjects) * layout.n_trials)
    extra = {"baseline": baseline} if has_baseline else {}
    np.savez(tmp / "index.npz", subject=subject, trial=trial, position=position, ratings=ratings, **extra)
    manifest = {
        "format": CACHE_FORMAT,
        "package_version": __version__,
        "source": source,
        "reader": inputs.key(),
        "sources": sources,
        "config": asdict(config),
        "layout": _layout_record(layout),
        "shape": list(shape),
        "checksums": {"signals.npy": crc, "index.npz": _checksum(tmp / "index.npz")},
    }
    # The manifest is written last: a folder without one is never trusted.
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")


def _build(inputs: _Inputs, folder: Path, config: SegmentConfig, layout: Layout, source: str,
           progress: bool, judged: Identity | None) -> None:
    """Write a cache of ``inputs`` beside ``folder`` and install it there."""
    tmp = sibling(folder, "tmp")
    try:
        tmp.mkdir(parents=True)
    except OSError as err:
        raise cannot_write(folder, err) from err
    try:
        try:
            _write_cache(inputs, tmp, config, layout, source, progress)
        except OSError as err:
            # A write into the new cache (a full disk: the stream's error names
            # no file) is the cache's; a source file's error names the source.
            if err.filename is not None and not Path(err.filename).is_relative_to(tmp):
                raise
            raise cannot_write(folder, err) from err
        install(tmp, folder, judged)
    finally:
        # After a failure, an interruption or a concurrent build's win the
        # previous state stays; after an install nothing is left to remove.
        shutil.rmtree(tmp, ignore_errors=True)


def _expected_shape(n_subjects: int, config: SegmentConfig, layout: Layout) -> tuple[int, int, int]:
    return (n_subjects * layout.n_trials * config.segments_per_trial(layout), len(layout.channels),
            config.segment_samples(layout))


def _read_manifest(folder: Path) -> dict | str:
    """The manifest of the cache in ``folder`` with every field of this format, or why not."""
    try:
        manifest = _read_json(folder / "manifest.json")
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except (OSError, ValueError, RecursionError):
        return "corrupt (unreadable manifest)"
    if not isinstance(manifest, dict):
        return f"corrupt (its manifest holds a JSON {type(manifest).__name__}, not an object)"
    if _is(manifest.get("format"), int) and manifest["format"] != CACHE_FORMAT:
        return "stale (built by another version or configuration)"
    wrong = [key for key, kind in _MANIFEST_FIELDS.items() if not _is(manifest.get(key), kind)]
    if wrong:
        return f"corrupt (its manifest lacks or mistypes {', '.join(wrong)})"
    if not all(_has_types(entry, _SOURCE_FIELDS) for entry in manifest["sources"]):
        return "corrupt (its manifest mistypes the source files)"
    checksums = manifest["checksums"]
    if set(checksums) != {"signals.npy", "index.npz"} or not all(_is(c, int) for c in checksums.values()):
        return "corrupt (its manifest mistypes the checksums)"
    return manifest


def _problem_with(folder: Path, manifest: dict, inputs: _Inputs, config: SegmentConfig, layout: Layout,
                  verify: bool, verify_sources: bool) -> str | None:
    """Why the cache described by ``manifest`` cannot be used, or ``None`` if it can."""
    if manifest["config"] != asdict(config) or manifest["layout"] != _layout_record(layout):
        return "stale (built by another version, configuration or layout)"
    if manifest["reader"] != inputs.key():
        return "stale (built by another reader of the folder)"
    files = inputs.files
    recorded = [(s["name"], s["size"], s["mtime_ns"]) for s in manifest["sources"]]
    if recorded != [(inputs.name(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]:
        return "stale (the source files changed)"
    if manifest["shape"] != list(_expected_shape(len(inputs.sources), config, layout)):
        return "corrupt (its manifest records the wrong shape)"
    if verify:
        for name, crc in manifest["checksums"].items():
            if not (folder / name).is_file() or _checksum(folder / name) != crc:
                return f"corrupt ({name} does not match its checksum)"
    if verify_sources:
        for entry, path in zip(manifest["sources"], files):
            if _checksum(path) != entry["crc32"]:
                return f"stale ({inputs.name(path)} changed, though not its size or modification time)"
    return None


def _map(folder: Path, manifest: dict, config: SegmentConfig, layout: Layout) -> SegmentSet | str:
    """The segments of a checked cache, or why its files cannot be read as recorded."""
    shape = tuple(manifest["shape"])
    try:
        signals = np.lib.format.open_memmap(folder / "signals.npy", mode="r")
        with np.load(folder / "index.npz") as index:
            columns = {name: index[name] for name in _INDEX_COLUMNS}
            baseline = index["baseline"] if config.baseline_seconds > 0 else None
    # Damaged bytes can make numpy and zipfile raise nearly anything (BadZipFile,
    # KeyError, struct.error, MemoryError...): whatever it is, the cache is corrupt.
    except Exception as err:
        return f"corrupt (unreadable signals.npy or index.npz: {type(err).__name__})"
    rows = (shape[0],)
    if (signals.shape != shape or signals.dtype != np.float32 or not signals.flags.c_contiguous
            or any(columns[name].shape != rows or columns[name].dtype.kind not in "iu"
                   for name in _INDEX_COLUMNS[:3])
            or columns["ratings"].shape != rows + (len(layout.rating_scales),)
            or columns["ratings"].dtype.kind != "f"):
        return "corrupt (signals.npy or index.npz do not hold the recorded arrays)"
    per_trial = config.segments_per_trial(layout)
    # Baseline rows are in file order, one per trial: the trial of its first segment.
    trial_id = columns["subject"][::per_trial].astype(np.int64) * 1000 + columns["trial"][::per_trial]
    if baseline is not None:
        if baseline.shape != (len(trial_id), 2, shape[1]):
            return "corrupt (index.npz holds baseline statistics of the wrong shape)"
        order = np.argsort(trial_id)
        trial_id, baseline = trial_id[order], baseline[order]
    return SegmentSet(
        signals=signals,
        subject=columns["subject"].astype(np.int64),
        trial=columns["trial"].astype(np.int64),
        position=columns["position"].astype(np.int64),
        ratings=columns["ratings"].astype(np.float32),
        config=config,
        source=manifest["source"],
        layout=layout,
        baseline=None if baseline is None else TrialBaseline(trial_id, baseline[:, 0], baseline[:, 1]),
    )


def _open_once(folder: Path, inputs: _Inputs, config: SegmentConfig, layout: Layout, verify: bool,
               verify_sources: bool) -> SegmentSet | str:
    manifest = _read_manifest(folder)
    if isinstance(manifest, str):
        return manifest
    problem = _problem_with(folder, manifest, inputs, config, layout, verify, verify_sources)
    return problem if problem is not None else _map(folder, manifest, config, layout)


def _open(folder: Path, inputs: _Inputs, config: SegmentConfig, layout: Layout, verify: bool,
          verify_sources: bool) -> SegmentSet | _Unusable:
    """The cache in ``folder``, or why it cannot be used.

    A concurrent build may replace the folder while its files are read; a
    changed identity (device and inode) tells, and the reading starts over,
    so the files of two builds are never mixed.
    """
    for _ in range(_OPEN_ATTEMPTS):
        before = identity(folder)
        opened = _open_once(folder, inputs, config, layout, verify, verify_sources)
        if identity(folder) == before:
            return _Unusable(opened, before) if isinstance(opened, str) else opened
    return _Unusable("changing (other processes keep replacing it)", identity(folder))


def load_segments(
    data_dir: Path | str,
    *,
    reader: Reader | str | None = None,
    subjects: Iterable[int] | None = None,
    config: SegmentConfig = SegmentConfig(),
    cache_dir: Path | str | None = None,
    verify: bool = True,
    verify_sources: bool = False,
    progress: bool = True,
    layout: Layout | None = None,
) -> SegmentSet:
    """Load the segments of a data folder, preparing the cache on first use.

    Parameters
    ----------
    data_dir : path-like
        DEAP's ``data_preprocessed_python/``, a BIDS data set, or a simulated
        cohort in either format.
    reader : Reader, str or None
        Who reads the folder: a :class:`~mkdbook.data.readers.Reader`, or the
        name of a registered format (``"deap"``, ``"bids"``) read with its
        default options. By default the format is inferred from the folder
        (:func:`~mkdbook.data.readers.infer_format`).
    subjects : iterable of int, optional
        Subject numbers to load; every subject present by default.
    config : SegmentConfig
        Segment length, baseline and class threshold.
    cache_dir : path-like, optional
        Where the cache lives; by default a folder under ``$MKDBOOK_HOME/segments``
        named by a hash of the data folder, the subjects, ``config`` and the
        reader's format and options (:func:`cache_folder`).
    verify : bool
        Check the cache's checksums before using it (reads every byte once).
        The size and source checks always run.
    verify_sources : bool
        Also check the CRC-32 of every source file recorded at build time,
        which catches a file rewritten with the same size and modification
        time; a mismatch rebuilds the cache. Off by default because it reads
        every byte of every source file, about as long as a build's reading.
    progress : bool
        Show a progress bar while preparing.
    layout : Layout, optional
        The layout the files must have; by default the one the reader finds
        (:data:`~mkdbook.data.layout.DEAP` for DEAP files).

    Returns
    -------
    SegmentSet
        Signals as a read-only memory map; ``layout`` is the data set's.

    Raises
    ------
    DataFormatError
        If a source file or the simulation manifest is malformed (the
        message names the file): :class:`~mkdbook.data.readers.deap.DeapFormatError`
        for DEAP, :class:`~mkdbook.data.readers.bids.BidsFormatError` for BIDS.
    FileNotFoundError
        If the folder or a requested subject is missing, or no format
        recognises the folder.
    ValueError
        If ``reader`` names an unknown format, or one that does not match
        the folder, or the files' layout is not ``layout``.
    OSError
        If the cache folder cannot be written (for example ``MKDBOOK_HOME``
        is a file or read-only) or is a file; the message names the path.

    Warns
    -----
    UserWarning
        When a stale or corrupt cache is rebuilt.
    """
    chosen = reader_for(data_dir, reader)
    root = Path(data_dir)
    inputs = _Inputs(chosen, root, chosen.find(root, subjects))
    found = chosen.layout(root, inputs.sources)
    if layout is not None and layout != found:
        raise ValueError(f"{root}: holds {chosen.format} data of layout {found.name!r}, not the {layout.name!r} "
                         f"layout asked for")
    layout = found
    folder = cache_folder(data_dir, [s.subject for s in inputs.sources], config, cache_dir, chosen)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file; expected a segment cache folder")
    remove_abandoned(folder)
    opened = _open(folder, inputs, config, layout, verify, verify_sources)
    if isinstance(opened, SegmentSet):
        return opened
    if opened.reason != "missing":
        warnings.warn(f"segment cache {folder} is {opened.reason}; rebuilding it", stacklevel=2)
    _build(inputs, folder, config, layout, describe_source(data_dir, chosen), progress, opened.judged)
    # The installed cache, ours or a concurrent build's, was just written whole.
    opened = _open(folder, inputs, config, layout, verify=False, verify_sources=False)
    if isinstance(opened, _Unusable):
        raise OSError(f"segment cache {folder} is {opened.reason} right after it was built; "
                      f"did {Path(data_dir)} change meanwhile?")
    return opened
