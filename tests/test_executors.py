"""Executors and leases: the same table serially and on Dask, a killed worker, two drivers on one cache."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from mkdbook.cli import main
from mkdbook.core.paths import results_dir
from mkdbook.core.profiles import PROFILES
from mkdbook.experiments import methods
from mkdbook.experiments.executors import ClusterConfig, DaskConfig, DaskExecutor
from mkdbook.experiments.grids import run_grid
from mkdbook.experiments.leases import LeaseConfig, acquire, held, read_lease, release
from mkdbook.experiments.progress import format_status, status_table
from mkdbook.experiments.results import lease_path
from mkdbook.training.runs import cell_key

from cluster_methods import TINY_METHODS, TRAIN, epochs_logged, tiny_grid, tiny_segments

pytest.importorskip("distributed")

TESTS = Path(__file__).resolve().parent
DATA = tiny_segments()


@pytest.fixture(autouse=True)
def tiny_methods(monkeypatch):
    monkeypatch.setattr(methods, "METHODS", methods.METHODS + TINY_METHODS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _serial_table(home: Path, grid, monkeypatch) -> pd.DataFrame:
    monkeypatch.setenv("MKDBOOK_HOME", str(home))
    home.mkdir(parents=True)
    (home / "killed").touch()  # the serial reference must not kill the test process
    return run_grid(grid, DATA, progress=False)


# -- leases -----------------------------------------------------------------------------------


def test_a_lease_is_exclusive_and_waiters_get_it_after_release(tmp_path):
    path = tmp_path / "cell.lease"
    config = LeaseConfig(stale_after=30, poll=0.05)
    token = acquire(path, config=config)
    info = read_lease(path)
    assert (info.host, info.pid, info.token) == (socket.gethostname(), os.getpid(), token)
    messages, got = [], []
    waiter = threading.Thread(target=lambda: got.append(acquire(path, config=config, what="cell",
                                                                message=messages.append)))
    waiter.start()
    time.sleep(0.3)
    assert got == [] and messages and "waiting for cell" in messages[0]
    assert release(path, token)
    waiter.join(5)
    assert got and got[0] != token and read_lease(path).token == got[0]
    assert not release(path, token)  # no longer ours


def test_stale_leases_are_taken_over(tmp_path):
    config = LeaseConfig(stale_after=30, poll=0.05)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    path = tmp_path / "dead.lease"
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "started": 0,
                                "token": "old"}))
    messages = []
    assert acquire(path, config=config, message=messages.append) != "old"
    assert "took over the stale lease" in messages[0]
    quiet = tmp_path / "elsewhere.lease"  # another host's lease, not touched for a minute
    quiet.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0, "token": "old"}))
    os.utime(quiet, (time.time() - 60, time.time() - 60))
    assert acquire(quiet, config=config, message=messages.append) != "old"
    fresh = tmp_path / "fresh.lease"
    fresh.write_text(json.dumps({"host": "elsewhere", "pid": 1, "started": 0, "token": "live"}))
    assert not read_lease(fresh).is_stale(config)


def test_the_heartbeat_keeps_a_lease_alive(tmp_path):
    path = tmp_path / "cell.lease"
    config = LeaseConfig(stale_after=0.6, poll=0.05)
    with held(path, config=config):
        time.sleep(1.0)
        assert not read_lease(path).is_stale(config)
    assert not path.exists()


# -- Dask -------------------------------------------------------------------------------------


def test_a_killed_worker_is_replaced_and_the_table_is_the_serial_one(tmp_path, monkeypatch):
    """Two local workers; one is killed in the middle of a cell; the table equals the serial one."""
    grid = tiny_grid(("tiny-teacher", "tiny-kd", "tiny-killer"), folds=(0, 1))
    expected = _serial_table(tmp_path / "serial", grid, monkeypatch)
    home = tmp_path / "dask"
    monkeypatch.setenv("MKDBOOK_HOME", str(home))  # before the workers start: they inherit it
    executor = DaskExecutor(DaskConfig(workers=2, preload=("cluster_methods",)), poll=0.2)
    table = run_grid(grid, DATA, progress=False, executor=executor)
    pd.testing.assert_frame_equal(table, expected)
    assert (home / "killed").exists()
    epochs = Counter(line.rsplit(" pid ", 1)[0] for line in epochs_logged())
    # Every epoch of every cell ran once: the killed cell resumed from its
    # epoch-1 checkpoint instead of starting again, and nothing was trained twice.
    assert set(epochs.values()) == {1} and len(epochs) == 6 * 3
    assert not list((home / "results").glob("*.lease"))


def test_a_chapter_trains_ahead_on_workers_only_when_asked(tmp_path, monkeypatch):
    """``book.train_ahead``: nothing with one worker; with two, every cell and its teacher, on the workers.

    It waits for them, or with ``wait=False`` returns while they train: the future's result waits.
    """
    import dask

    from mkdbook import book
    from mkdbook.book import chapter

    grid = tiny_grid(("tiny-kd",), folds=(0, 1))
    expected = _serial_table(tmp_path / "serial", grid, monkeypatch)
    home = tmp_path / "ahead"
    home.mkdir()
    monkeypatch.setenv("MKDBOOK_HOME", str(home))
    # The workers get the segments themselves.
    monkeypatch.setattr(chapter, "book_cohort", lambda variant, *, profile: DATA)
    students = [grid.cell("tiny-kd", "valence", fold, 0, data=DATA) for fold in (0, 1)]
    monkeypatch.delenv("MKDBOOK_WORKERS", raising=False)
    assert book.train_ahead(students).done() and book.train_ahead(students, wait=False).done()
    assert epochs_logged() == []
    with dask.config.set({"distributed.worker.preload": ["cluster_methods"]}):
        # Two workers as a chapter asks for them, through its profile (book.start's) ...
        assert book.train_ahead(iter(students[:1]), profile=replace(PROFILES["fast"], workers=2)).done()
        assert len({line.rsplit(" epoch ", 1)[0] for line in epochs_logged()}) == 2  # a student and its teacher
        # ... or, by default, the active profile's, from MKDBOOK_WORKERS.
        monkeypatch.setenv("MKDBOOK_WORKERS", "2")
        training = book.train_ahead(iter(students), wait=False)  # only the second pair is left to train
        assert training.result() is None
    trained = {line.rsplit(" epoch ", 1)[0] for line in epochs_logged()}
    assert len(trained) == 4  # two students and their two teachers
    assert str(os.getpid()) not in {line.rsplit(" pid ", 1)[1] for line in epochs_logged()}
    # The chapter's own call now reads the cache: the same table, nothing trained again.
    logged = len(epochs_logged())
    pd.testing.assert_frame_equal(run_grid(grid, DATA, progress=False), expected)
    assert len(epochs_logged()) == logged
    monkeypatch.setenv("MKDBOOK_WORKERS", "two")
    with pytest.raises(ValueError, match="MKDBOOK_WORKERS='two' is not a number of processes"):
        book.train_ahead(students)


def test_workers_must_share_the_results_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "workers"))
    executor = DaskExecutor(DaskConfig(workers=1))
    with executor._client() as client:
        executor._check_workers(client)
        monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "driver"))
        with pytest.raises(ValueError, match="give every process the same MKDBOOK_HOME"):
            executor._check_workers(client)


def _malloc_trim_threshold() -> str | None:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def test_local_workers_keep_glibcs_adaptive_malloc(tmp_path, monkeypatch):
    # Dask's nanny sets the variable, which turns glibc's adaptive mmap threshold off (executors.py).
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path))
    with DaskExecutor(DaskConfig(workers=1))._client() as client:
        assert list(client.run(_malloc_trim_threshold).values()) == [None]


def test_two_drivers_share_one_cache_and_train_each_cell_once(tmp_path):
    home = tmp_path / "shared"
    env = {**os.environ, "MKDBOOK_HOME": str(home), "TINY_EPOCH_SECONDS": "0.3",
           "MKDBOOK_LEASE_TIMEOUT": "3",
           "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent), os.environ.get("PYTHONPATH", "")])}
    drivers = [subprocess.Popen([sys.executable, str(TESTS / "cluster_methods.py"), str(tmp_path / f"{k}.csv"), "2"],
                                env=env, stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    errors = [driver.communicate(timeout=300)[1] for driver in drivers]
    assert [driver.returncode for driver in drivers] == [0, 0], errors
    first, second = (pd.read_csv(tmp_path / f"{k}.csv") for k in (1, 2))
    pd.testing.assert_frame_equal(first, second)
    lines = (home / "epochs.log").read_text().splitlines()
    epochs = Counter(line.rsplit(" pid ", 1)[0] for line in lines)
    assert set(epochs.values()) == {1} and len(epochs) == 6 * 3  # 6 cells x 3 epochs, each once
    # Both drivers trained: they split the grid instead of queueing behind each other.
    assert {line.rsplit(" pid ", 1)[1] for line in lines} == {str(driver.pid) for driver in drivers}


# -- status and the command line --------------------------------------------------------------


def test_the_command_line_gives_the_same_table_serially_and_on_dask(deap_dir, tmp_path, monkeypatch, capsys):
    import dask

    from mkdbook.experiments import grids

    grid = tiny_grid(("tiny-teacher", "tiny-kd"), train=replace(TRAIN, max_batches=4))
    monkeypatch.setitem(grids.GRIDS, "tiny", lambda profile: grid)
    tables = {}
    for executor in ("serial", "dask"):
        home = tmp_path / executor
        home.mkdir()
        monkeypatch.setenv("MKDBOOK_HOME", str(home))
        argv = ["experiment", str(deap_dir), "--grid", "tiny", "--folds", "1", "--quiet"]
        extra = ["--executor", "dask", "--workers", "2"] if executor == "dask" else []
        # Dask's own setting reaches the workers the command line starts.
        with dask.config.set({"distributed.worker.preload": ["cluster_methods"]}):
            assert main([*argv, "--out", str(tmp_path / executor / "out"), *extra]) == 0
        tables[executor] = pd.read_csv(tmp_path / executor / "out" / "results.csv")
    pd.testing.assert_frame_equal(tables["serial"], tables["dask"])
    assert set(tables["dask"]["fold"]) == {0} and len(tables["dask"]) == 2 * 2  # 2 methods x 2 subjects
    capsys.readouterr()
    assert main([*argv, "--status"]) == 0
    assert "2 cells: 2 done, 0 running, 0 pending; time left on 1 worker(s): 0s" in capsys.readouterr().out


def test_status_counts_cells_and_estimates_the_time_left(tmp_path, monkeypatch):
    grid = tiny_grid(("tiny-teacher", "tiny-kd"))
    _serial_table(tmp_path / "home", tiny_grid(("tiny-teacher",), folds=(0,)), monkeypatch)
    table = status_table(grid.work_cells(DATA))
    assert table[["method", "cells", "done", "running", "pending"]].values.tolist() == [
        ["tiny-teacher", 3, 1, 0, 2], ["tiny-kd", 3, 0, 0, 3]]
    assert table.loc[0, "seconds_per_cell"] > 0
    text = format_status(table, workers=2)
    assert "6 cells: 1 done, 0 running, 5 pending; time left on 2 worker(s):" in text
    # A live lease (this process's own) marks its cell running.
    cell = grid.work_cells(DATA)[1]
    folder = results_dir() / cell_key(cell)
    acquire(lease_path(folder), config=LeaseConfig(poll=0.05))
    assert status_table(grid.work_cells(DATA))["running"].tolist() == [1, 0]


@pytest.mark.parametrize("argv, message", [
    (["--workers", "2"], "--workers needs --executor dask"),
    (["--executor", "dask", "--jobs", "2"], "--jobs needs --cluster"),
    (["--folds", "4"], "--folds must be at most 3"),
    (["--executor", "dask", "--workers", "2", "--scheduler", "tcp://x:1"], "give only one of --workers"),
    ([], "--out is required"),
])
def test_experiment_options_are_checked(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("MKDBOOK_PROFILE", "fast")
    assert main(["experiment", str(tmp_path), "--grid", "ablation", *argv]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def test_batch_jobs_ask_for_gpus_and_declare_them(monkeypatch):
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    config = ClusterConfig("slurm", jobs=2, gpus_per_job=2, cores_per_worker=4, walltime="01:00:00",
                           queue="gpu", prologue=("module load cuda",))
    with SLURMCluster(**config.cluster_kwargs(), scheduler_options={"dashboard_address": None}) as cluster:
        script = cluster.job_script()
    for line in ("#SBATCH --gres=gpu:2", "#SBATCH --cpus-per-task=8", "#SBATCH -p gpu",
                 "#SBATCH -t 01:00:00", "module load cuda", "--resources GPU=1", "--nworkers 2"):
        assert line in script, line
    assert DaskExecutor(DaskConfig(cluster=config)).workers == 4
    assert DaskConfig(cluster=config).uses_gpu()


def _probabilities(grid, data) -> list:
    import numpy as np

    return [np.load(results_dir() / cell_key(cell) / "predictions.npz")["probabilities"]
            for cell in grid.work_cells(data)]


def test_serial_and_dask_give_the_same_bits_whatever_threads_the_driver_has(tmp_path, monkeypatch):
    """A cell computes on MKDBOOK_CELL_THREADS threads (1) everywhere; the driver's own count does not leak in.

    The EOG network's probabilities differ in their last bits between one and
    two threads (checked below where there are two cores), so a serial run on
    the driver's two threads would not give the workers' numbers.
    """
    import numpy as np

    from conftest import make_segments
    from mkdbook.experiments.grids import Grid
    from mkdbook.training.trainer import TrainConfig

    data = make_segments(2, 9, 4, 512, shift={18: 1.0, 33: 1.0})
    grid = Grid(("eog",), targets=("valence",), n_folds=3, folds=(0, 1),
                train=TrainConfig(epochs=2, batch_size=16, max_batches=3, progress=False, device="cpu"))
    monkeypatch.delenv("MKDBOOK_CELL_THREADS", raising=False)
    torch.set_num_threads(2)  # the driver's own threads (the fixture restores them)
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "serial"))
    serial = run_grid(grid, data, progress=False)
    assert torch.get_num_threads() == 2  # restored after each cell
    expected = _probabilities(grid, data)
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "dask"))
    table = run_grid(grid, data, progress=False, executor=DaskExecutor(DaskConfig(workers=2), poll=0.2))
    pd.testing.assert_frame_equal(table, serial)
    assert all(np.array_equal(a, b) for a, b in zip(_probabilities(grid, data), expected, strict=True))
    if (os.cpu_count() or 1) >= 2:  # the grid is one where the thread count shows
        monkeypatch.setenv("MKDBOOK_CELL_THREADS", "2")
        monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "two-threads"))
        run_grid(grid, data, progress=False)
        assert not all(np.array_equal(a, b) for a, b in zip(_probabilities(grid, data), expected, strict=True))


def test_a_full_disk_on_a_worker_is_one_line_and_a_rerun_gives_the_serial_table(deap_dir, tmp_path, monkeypatch,
                                                                                  capfd):
    import dask

    from mkdbook.core.atomic import FAULT_VARIABLE, LOG_VARIABLE
    from mkdbook.experiments import grids

    grid = tiny_grid(("tiny-teacher", "tiny-kd"), folds=(0,), train=replace(TRAIN, max_batches=4))
    monkeypatch.setitem(grids.GRIDS, "tiny", lambda profile: grid)
    argv = ["experiment", str(deap_dir), "--grid", "tiny", "--quiet"]
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "serial"))
    assert main([*argv, "--out", str(tmp_path / "serial")]) == 0
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "dask"))  # the workers inherit it, and the hook
    monkeypatch.setenv(LOG_VARIABLE, str(tmp_path / "writes.log"))
    monkeypatch.setenv(FAULT_VARIABLE, "6:ENOSPC")
    dask_argv = [*argv, "--out", str(tmp_path / "dask"), "--executor", "dask", "--workers", "2"]
    capfd.readouterr()
    with dask.config.set({"distributed.worker.preload": ["cluster_methods"]}):
        assert main(dask_argv) == 2
        err = capfd.readouterr().err.strip()
        failed = [line.split(" ", 2)[2] for line in (tmp_path / "writes.log").read_text().splitlines()
                  if line.startswith("begin ")][5]
        assert err == f"mkdbook experiment: error: {failed}: No space left on device"
        monkeypatch.delenv(FAULT_VARIABLE)
        assert main(dask_argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "dask" / "results.csv"),
                                  pd.read_csv(tmp_path / "serial" / "results.csv"))
