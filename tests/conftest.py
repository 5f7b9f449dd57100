"""Shared fixtures: small DEAP-format folders written on the fly."""

from __future__ import annotations

import os

# Under pytest-xdist every worker gets one thread (and so does every process
# it starts): workers with a thread pool per core each would start more
# threads than there are cores, and those threads wait on each other.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from mkdbook.data.layout import DEAP


def deap_dict(subject: int, *, dtype=np.float32) -> dict[str, np.ndarray]:
    """A valid DEAP subject dict whose samples encode where they come from.

    Sample values are ``subject * 1000 + trial + channel / 100``, plus the
    time index scaled to stay small, so tests can check that segmenting and
    caching put every sample in its place.
    """
    rng = np.random.default_rng(subject)
    trial = np.arange(DEAP.n_trials)[:, None, None]
    channel = np.arange(len(DEAP.channels))[None, :, None]
    time = np.arange(DEAP.n_samples)[None, None, :]
    data = (subject * 1000 + trial + channel / 100 + time * 1e-5).astype(dtype)
    labels = rng.uniform(1, 9, size=(DEAP.n_trials, len(DEAP.rating_scales)))
    return {"data": data, "labels": labels}


def write_pickle(path: Path, obj: object) -> Path:
    with path.open("wb") as stream:
        pickle.dump(obj, stream, protocol=2)
    return path


@pytest.fixture(scope="session")
def deap_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two valid subject files, written once per session (pickling them is slow)."""
    folder = tmp_path_factory.mktemp("template")
    for subject in (1, 2):
        write_pickle(folder / f"s{subject:02d}.dat", deap_dict(subject))
    return folder


@pytest.fixture
def deap_dir(tmp_path: Path, deap_template: Path) -> Path:
    """A fresh folder with two valid subject files, s01.dat and s02.dat, safe to damage."""
    folder = tmp_path / "data_preprocessed_python"
    shutil.copytree(deap_template, folder)
    return folder
