"""A cohort on disk: ``sNN.dat`` files in DEAP's format (or a BIDS data set), and the manifest marking it simulated."""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from tqdm import tqdm

from mkdbook import __version__
from mkdbook.core.atomic import write_atomically
from mkdbook.core.checks import check_int
from mkdbook.core.checks import check_option
from mkdbook.data.cache import SIMULATION_MANIFEST
from mkdbook.data.export import write_bids_description, write_bids_recording
from mkdbook.data.layout import DEAP
from mkdbook.data.readers.base import SubjectRecording
from mkdbook.data.simulate.config import SimulationConfig, _check_config
from mkdbook.data.simulate.latents import SubjectLatents
from mkdbook.data.simulate.streams import MAX_SUBJECTS, _subject_model
from mkdbook.data.simulate.subject import _simulate_signals
from mkdbook.data.simulate.truth import Latent, _latent_arrays, latent_path
from mkdbook.data.simulate.variants import variant_settings

#: Written before the first subject file and removed after the manifest, so a
#: crashed run can be recognised (and resumed) rather than taken for real DEAP.
PENDING_NAME = ".mkdbook-simulated.pending"
#: The formats a cohort can be written in: DEAP's ``sNN.dat`` files, or a BIDS data set.
COHORT_FORMATS: tuple[str, ...] = ("deap", "bids")
#: The BIDS task label of a simulated cohort's recordings.
BIDS_TASK = "emotion"
_BIDS_SUBJECT = re.compile(r"^sub-(\d+)$")


def _identity(variant: str, seed: int, config: SimulationConfig, written: str = "deap") -> dict:
    """What makes two cohorts the same cohort (the number of subjects aside)."""
    described = {"variant": variant, "seed": seed, "config": asdict(config), "package_version": __version__}
    if written != "deap":  # a DEAP cohort's manifest has always gone without
        described["format"] = written
    # Through JSON so a manifest read back compares equal (tuples become lists).
    return json.loads(json.dumps(described))


def _write_json(path: Path, content: dict) -> None:
    write_atomically(path, lambda stream: stream.write(json.dumps(content, indent=1).encode()))


def _write_subject_file(path: Path, recording: dict[str, np.ndarray]) -> None:
    # Protocol 2 is what DEAP's Python-2 pickles use; they load with encoding="latin1".
    write_atomically(path, lambda stream: pickle.dump(recording, stream, protocol=2))


def _read_marker(path: Path) -> dict:
    try:
        content = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable simulation marker ({type(err).__name__}); "
                         "delete it or choose another folder") from None
    if not isinstance(content, dict):
        raise ValueError(f"{path}: not a simulation marker (a JSON object was expected)")
    return content


def _file_stamps(folder: Path, paths: list[Path]) -> dict[str, list[int]]:
    """Size and modification time of each file this simulation wrote (by path below ``folder``), to know them again."""
    return {p.relative_to(folder).as_posix(): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths}


def _subject_files(folder: Path) -> dict[int, list[Path]]:
    """Subject number -> its files in ``folder``, in either format: ``sNN.dat``, or every file in ``sub-NN/``."""
    found: dict[int, list[Path]] = {}
    for path in folder.glob("s[0-9][0-9].dat"):
        found.setdefault(int(path.name[1:3]), []).append(path)
    for path in folder.glob("sub-*"):
        match = _BIDS_SUBJECT.match(path.name)
        if match and path.is_dir():
            found.setdefault(int(match.group(1)), []).extend(p for p in path.rglob("*") if p.is_file())
    return found


def _check_folder(folder: Path, identity: dict, n_subjects: int) -> None:
    """Refuse to write into a folder that holds another cohort or data we did not write."""
    by_subject = _subject_files(folder)
    present = sorted(path for paths in by_subject.values() for path in paths)
    for marker in (SIMULATION_MANIFEST, PENDING_NAME):
        path = folder / marker
        if path.is_file():
            existing = _read_marker(path)
            wanted = {"format": "deap", **identity}
            found = {key: existing.get(key, "deap" if key == "format" else None) for key in wanted}
            if found != wanted:
                differing = sorted(key for key in wanted if found[key] != wanted[key])
                raise ValueError(
                    f"{folder} holds a simulated cohort with a different {' and '.join(differing)}; "
                    "refusing to mix cohorts: choose another folder or delete it")
            # Files this simulation wrote are recorded; anything else in the
            # folder (real DEAP copied over a half-written cohort, say) is
            # never overwritten. Manifests of earlier versions record none.
            stamps = existing.get("files", None if marker == SIMULATION_MANIFEST else {})
            if isinstance(stamps, dict):
                ours = _file_stamps(folder, present)
                foreign = [name for name, stamp in ours.items() if stamps.get(name) != stamp]
                if foreign:
                    raise ValueError(f"{folder} holds {', '.join(foreign)}, which no simulation of this "
                                     "cohort wrote; refusing to overwrite them: choose another folder")
            break
    else:
        if present:
            raise ValueError(f"{folder} holds subject files ({present[0].relative_to(folder).as_posix()}) but no "
                             f"{SIMULATION_MANIFEST} (real data?); refusing to overwrite them: choose another folder")
    beyond = sorted(p.relative_to(folder).parts[0] for n, paths in by_subject.items() if n > n_subjects
                    for p in paths[:1])
    if beyond:
        raise ValueError(f"{folder} already holds {', '.join(beyond)}, beyond n_subjects={n_subjects}; "
                         "a folder must hold one cohort: choose another folder or delete it")


def _latents_record(latents: SubjectLatents) -> dict:
    return {
        "signal_valence": latents.signal_valence.tolist(),
        "signal_arousal": latents.signal_arousal.tolist(),
        "rated_valence": latents.rated_valence.tolist(),
        "rated_arousal": latents.rated_arousal.tolist(),
        "iaf_hz": latents.traits.iaf_hz,
    }


def _latent_of(latents: SubjectLatents, config: SimulationConfig) -> Latent:
    columns = [DEAP.rating_column(scale) for scale in ("valence", "arousal")]
    return Latent(subject=latents.subject,
                  trial=np.stack([latents.rated_valence, latents.rated_arousal], axis=1),
                  per_second=latents.signal_per_second,
                  signal_trial=np.stack([latents.signal_valence, latents.signal_arousal], axis=1),
                  rating_scale=config.rating_scale, rating_bias=latents.traits.rating_bias[columns],
                  rating_noise_sd=latents.traits.rating_noise_sd)


def _write_latent(path: Path, latent: Latent) -> None:
    path.parent.mkdir(exist_ok=True)
    write_atomically(path, lambda stream: np.savez(stream, **_latent_arrays(latent)))


def _simulated_subject(subject: int, variant: str, seed: int,
                       config: SimulationConfig) -> tuple[dict[str, np.ndarray], Latent, dict]:
    """One subject's recording, latent state and manifest record (in a worker process when asked)."""
    model = _subject_model(subject, variant, seed, config)
    recording = {"data": _simulate_signals(model), "labels": model.latents.labels}
    return recording, _latent_of(model.latents, config), _latents_record(model.latents)


def _write_subject(folder: Path, subject: int, recording: dict[str, np.ndarray], written: str) -> list[Path]:
    """Write one subject in format ``written``; return its files, the main one first."""
    if written == "bids":
        files = write_bids_recording(folder, SubjectRecording(subject, recording["data"], recording["labels"],
                                                              folder), task=BIDS_TASK)
        return sorted(files, key=lambda path: path.suffix != ".vhdr")
    path = folder / f"s{subject:02d}.dat"
    # Arrays back from a worker carry their own copy of the dtype, which pickle would
    # write out again; a view with NumPy's shared dtype gives the serial run's bytes.
    _write_subject_file(path, {name: array.view(array.dtype.type) for name, array in recording.items()})
    return [path]


def simulate_cohort(out_dir: Path | str, *, n_subjects: int = 32, variant: str = "default",
                    seed: int = 0, config: SimulationConfig | None = None,
                    progress: bool = True, workers: int = 1, format: str = "deap") -> list[Path]:  # noqa: A002
    """Write a simulated cohort as ``s01.dat`` ... ``sNN.dat`` (or a BIDS data set) plus a manifest.

    Every file is written to a temporary name and renamed when complete, so an
    interrupted run never leaves a partial ``sNN.dat``; it leaves a marker
    (:data:`PENDING_NAME`) that lets the same call finish the job later. The
    manifest (:data:`SIMULATION_MANIFEST`) is written last, so it marks a complete
    cohort. Beside the subject files, ``latent/sNN.npz`` holds each subject's
    latent state per trial and per second (read it with
    :func:`~mkdbook.data.simulate.read_latent`). The manifest records the variant, seed,
    number of subjects, every configuration value, the package version and
    each subject's per-trial latent state, so a figure can always say which
    data it used. Running again regenerates the files (identically).

    Parameters
    ----------
    out_dir : path-like
        Folder to write into; created if missing.
    n_subjects : int
        Number of subjects, 1-32 (``s01`` to ``sNN``).
    variant : str
        A key of :data:`VARIANTS`.
    seed : int
        Non-negative cohort seed.
    config : SimulationConfig, optional
        Model parameters; the defaults when omitted.
    progress : bool
        Show a progress bar on standard error.
    workers : int
        Subjects simulated at once, each in a process of its own (joblib).
        Every subject draws from generators seeded by its own number, so the
        files are the same for any number of workers.
    format : {"deap", "bids"}
        ``"deap"`` writes DEAP's ``sNN.dat`` files; ``"bids"`` a BIDS data set
        of the same samples and ratings (``sub-NN/eeg/*_eeg.vhdr`` and its
        sidecars, :mod:`mkdbook.data.export`), with the manifest and
        ``latent/`` at its root. Both read back into identical segments.

    Returns
    -------
    list of Path
        The subject files (``sNN.dat``, or each subject's ``.vhdr``), in subject order.

    Raises
    ------
    ValueError
        If an argument is out of range, or ``out_dir`` already holds a cohort
        made with another variant, seed, configuration or package version,
        subject files beyond ``n_subjects``, subject files without a manifest
        (perhaps real data, which is never overwritten), or a cohort in the
        other format.
    """
    written = check_option("format", format, COHORT_FORMATS)
    settings = variant_settings(variant)
    n_subjects = check_int("n_subjects", n_subjects, 1, MAX_SUBJECTS)
    seed = check_int("seed", seed, 0)
    workers = check_int("workers", workers, 1)
    config = _check_config(config)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    identity = _identity(variant, seed, config, written)
    _check_folder(folder, identity, n_subjects)

    # While the pending marker exists the folder is no complete cohort, so no manifest either.
    _write_json(folder / PENDING_NAME, identity)
    (folder / SIMULATION_MANIFEST).unlink(missing_ok=True)
    paths, files, records = [], [], {}
    subjects = range(1, n_subjects + 1)
    if written == "bids":
        write_bids_description(folder, f"mkdbook simulated cohort ({variant}, seed {seed})", list(subjects))
    # In subject order whatever finishes first, so the pending marker always lists a prefix.
    simulated = Parallel(n_jobs=workers, return_as="generator")(
        delayed(_simulated_subject)(subject, variant, seed, config) for subject in subjects)
    for subject, (recording, latent, record) in tqdm(zip(subjects, simulated), total=n_subjects,
                                                     desc=f"simulating ({variant})", unit="subject",
                                                     disable=not progress):
        subject_files = _write_subject(folder, subject, recording, written)
        # The known truth lives beside the files, never inside them: sNN.dat holds what DEAP holds.
        _write_latent(latent_path(folder, subject), latent)
        paths.append(subject_files[0])
        files += subject_files
        records[f"s{subject:02d}"] = record
        _write_json(folder / PENDING_NAME, {**identity, "files": _file_stamps(folder, files)})

    manifest = {
        # The package, whose public names a reader of the manifest imports.
        "generator": __package__, **identity, "n_subjects": n_subjects,
        "variant_settings": asdict(settings), "subjects": records, "files": _file_stamps(folder, files),
    }
    _write_json(folder / SIMULATION_MANIFEST, manifest)
    (folder / PENDING_NAME).unlink()
    return paths


def load_manifest(folder: Path | str) -> dict | None:
    """Return the manifest of a simulated cohort, or ``None`` for any other folder (real DEAP).

    Parameters
    ----------
    folder : path-like
        A folder written by :func:`simulate_cohort`, or a DEAP folder.

    Returns
    -------
    dict or None
        Keys ``variant``, ``seed``, ``n_subjects``, ``config``,
        ``package_version``, ``variant_settings`` and ``subjects`` (per subject,
        the per-trial ``signal_valence``, ``signal_arousal``, ``rated_valence``
        and ``rated_arousal``).
    """
    path = Path(folder) / SIMULATION_MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None
