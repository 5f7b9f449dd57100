"""What used to hang or fail late now fails at once, with one line and exit status 2.

A scheduler file that does not exist or does not parse, a scheduler that does
not answer, a batch system without its submit command, ``--status`` with
``--out``, a ``distill --out`` of another run, a lease file left empty, a full
disk under the segment cache or under a BIDS cohort.
"""

from __future__ import annotations

import errno
import functools
import os
import socket
import time
from pathlib import Path

import pytest

from mkdbook.cli import main
from mkdbook.core.atomic import FAULT_VARIABLE, LOG_VARIABLE
from mkdbook.experiments.leases import LeaseConfig, acquire, read_lease

pytest.importorskip("distributed")

#: Every case must end well within this (the issue's limit is 60 s).
LIMIT = 45


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MKDBOOK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MKDBOOK_PROFILE", "fast")
    return tmp_path / "home"


def one_line_error(args: list[str], capsys: pytest.CaptureFixture) -> str:
    """Run the command; check it ends within :data:`LIMIT` s with status 2 and one line; return the line."""
    began = time.perf_counter()
    try:
        status = main(args)
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert time.perf_counter() - began < LIMIT
    return err


def experiment(cohort: Path, out: Path, *extra: str) -> list[str]:
    return ["experiment", str(cohort), "--grid", "baselines", "--quiet", "--out", str(out), "--executor", "dask",
            *extra]


# -- Dask and batch clusters ------------------------------------------------------------------


def test_a_scheduler_file_that_does_not_exist(cohort, tmp_path, capsys):
    missing = tmp_path / "scheduler.json"
    err = one_line_error(experiment(cohort, tmp_path / "out", "--scheduler", str(missing)), capsys)
    assert err == (f"mkdbook experiment: error: {missing}: no such scheduler file (the scheduler writes it "
                   f"when started with --scheduler-file)")


@pytest.mark.parametrize(("content", "why"), [("{not json", "not JSON"), ('{"id": 1}', "no address in it"),
                                              ("[1, 2]", "no address in it"), ('{"address": 7}', "its address is 7")])
def test_a_scheduler_file_that_does_not_parse(cohort, tmp_path, capsys, content, why):
    broken = tmp_path / "scheduler.json"
    broken.write_text(content)
    err = one_line_error(experiment(cohort, tmp_path / "out", "--scheduler", str(broken)), capsys)
    assert err == f"mkdbook experiment: error: {broken}: not a Dask scheduler file ({why})"


def test_a_scheduler_that_does_not_answer(cohort, tmp_path, capsys):
    import dask

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        err = one_line_error(experiment(cohort, tmp_path / "out", "--scheduler", address), capsys)
    assert err == (f"mkdbook experiment: error: {address}: no Dask scheduler answered within 3 s "
                   f"(distributed.comm.timeouts.connect)")


@pytest.mark.parametrize(("system", "command"), [("slurm", "sbatch"), ("pbs", "qsub"), ("sge", "qsub"),
                                                 ("lsf", "bsub")])
def test_a_cluster_without_its_submit_command(cohort, tmp_path, capsys, monkeypatch, system, command):
    pytest.importorskip("dask_jobqueue")
    monkeypatch.setenv("PATH", str(tmp_path))  # no batch system here
    err = one_line_error(experiment(cohort, tmp_path / "out", "--cluster", system), capsys)
    assert err == (f"mkdbook experiment: error: {command}: command not found; --cluster {system} submits its "
                   f"workers with it (run on a login node of the cluster)")


def test_status_and_out_exclude_each_other(cohort, tmp_path, capsys):
    err = one_line_error(["experiment", str(cohort), "--grid", "baselines", "--status", "--out", str(tmp_path)],
                         capsys)
    assert "argument --out: not allowed with argument --status" in err or \
        "argument --status: not allowed with argument --out" in err


# -- distill --------------------------------------------------------------------------------


def test_distill_refuses_another_runs_out_before_training(cohort, tmp_path, capsys, home):
    out = tmp_path / "run"
    assert main(["train", str(cohort), "--model", "eog", "--target", "valence", "--epochs", "1", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    saved = {p.name: p.read_bytes() for p in out.iterdir()}
    distill = ["distill", str(cohort), "--target", "valence", "--variant", "hinton", "--epochs", "1", "--device",
               "cpu", "--quiet", "--out", str(out)]
    err = one_line_error(distill, capsys)
    assert f"{out / 'metrics.json'}: holds the result of another run (method, model, teacher_cell differ)" in err
    # A checkpoint of another target, without a result beside it.
    (out / "metrics.json").unlink()
    del saved["metrics.json"]
    arousal = [*distill]
    arousal[arousal.index("valence")] = "arousal"
    err = one_line_error(arousal, capsys)
    assert f"{out / 'last.pt'}: written by another run (target differ)" in err
    assert not (home / "results").exists()  # no teacher was trained
    assert {p.name: p.read_bytes() for p in out.iterdir()} == saved


# -- leases ---------------------------------------------------------------------------------


def test_an_empty_or_unreadable_lease_is_stale_at_once(tmp_path):
    config = LeaseConfig(stale_after=300, poll=0.05)
    for content in (b"", b'{"host": "elsewhere", "pid'):
        path = tmp_path / "cell.lease"
        path.write_bytes(content)  # just now: only its content makes it stale
        messages: list[str] = []
        began = time.perf_counter()
        token = acquire(path, config=config, what="cell", message=messages.append)
        assert time.perf_counter() - began < 5
        assert messages == ["took over the stale lease of cell (an empty or unreadable lease file)"]
        assert read_lease(path).token == token
        path.unlink()


def test_a_full_disk_leaves_no_lease_behind(tmp_path, monkeypatch):
    path = tmp_path / "cell.lease"
    monkeypatch.setenv(LOG_VARIABLE, str(tmp_path / "writes.log"))
    monkeypatch.setenv(FAULT_VARIABLE, "1:ENOSPC")
    with pytest.raises(OSError) as raised:
        acquire(path, config=LeaseConfig(poll=0.05))
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["writes.log"]


# -- full disks under what the package writes without write_atomically ----------------------------


def test_a_full_disk_under_the_segment_cache_names_it(cohort, capsys, monkeypatch, home):
    from mkdbook.data import cache

    def full(stream, block, crc):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(cache, "_write", full)
    err = one_line_error(["prepare", str(cohort), "--quiet"], capsys)
    folder = next((home / "segments").iterdir(), None)
    assert folder is None  # nothing half-built is left
    assert err.startswith(f"mkdbook prepare: error: cannot write the segment cache {home / 'segments'}/")
    assert err.endswith(f": No space left on device ({home / 'segments'})")


def test_a_full_disk_under_a_bids_cohort_names_it(tmp_path, capsys, monkeypatch):
    from mkdbook.data import simulate

    @functools.wraps(simulate.simulate_cohort)  # the command reads its defaults from the signature
    def full(*args, **kwargs):  # what numpy's tofile raises, without an error number (pybv writes with it)
        raise OSError("Not enough free space to write 51609600 bytes after offset 0")

    monkeypatch.setattr(simulate, "simulate_cohort", full)
    folder = tmp_path / "cohort"
    err = one_line_error(["simulate", str(folder), "--format", "bids", "--quiet"], capsys)
    assert err == f"mkdbook simulate: error: {folder}: Not enough free space to write 51609600 bytes after offset 0"
