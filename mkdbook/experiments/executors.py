"""Who computes a grid's cells: this process, or the workers of a Dask cluster.

Both executors plug into :func:`mkdbook.experiments.grids.run_grid` and give the
same numbers: the cache is the one source of truth. A worker computes a cell
with :func:`~mkdbook.experiments.grids.run_cell` (so under the cell's lease, see
:mod:`mkdbook.experiments.leases`), stores it and returns only its key; the driver reads
every result back from ``$MKDBOOK_HOME/results``. Workers must therefore see
the same ``MKDBOOK_HOME`` (a shared file system on a cluster) and the same
package source (the keys hash it); the driver checks both.

:class:`DaskExecutor` submits the teachers first; a student's task takes its
teacher's future as an argument, so Dask starts it only once the teacher is
stored. A worker killed in the middle of a cell is replaced (by its nanny, or
a new batch job) and the scheduler runs the cell again elsewhere: the new run
takes over the dead worker's lease and resumes from the cell's ``last.pt``.

Every cell is computed on :func:`~mkdbook.core.threads.cell_threads` torch
threads (``MKDBOOK_CELL_THREADS``, default 1) by either executor, so the two
give the same numbers to the last bit (on the same hardware and PyTorch).

A Dask executor fails fast, with one line, where it could otherwise wait for
ever: a scheduler file that does not exist or does not parse, a scheduler that
does not answer within Dask's connect timeout
(``distributed.comm.timeouts.connect``, 30 s by default), a batch system whose
submit command (``sbatch``, ``qsub``, ``bsub``) is not on ``PATH``
(:meth:`DaskExecutor.check`).

Dask is imported only when a :class:`DaskExecutor` runs (``pip install
mkdbook[cluster]``); importing this module does not need it.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mkdbook.core.checks import check_int, check_option
from mkdbook.core.keys import package_fingerprint
from mkdbook.core.paths import results_dir
from mkdbook.core.threads import THREADS_VARIABLE, cell_threads
from mkdbook.data.cache import load_segments
from mkdbook.data.segments import SegmentConfig, SegmentSet
from mkdbook.experiments.grids import complete_cells, run_cell
from mkdbook.experiments.progress import GridProgress
from mkdbook.training.runs import Cell, cell_key

__all__ = ["CLUSTER_SYSTEMS", "SUBMIT_COMMANDS", "ClusterConfig", "DaskConfig", "DaskExecutor", "SerialExecutor",
           "compute_cell", "scheduler_address"]

#: Batch systems :class:`ClusterConfig` accepts (those of dask-jobqueue it knows how to ask for GPUs).
CLUSTER_SYSTEMS: tuple[str, ...] = ("slurm", "pbs", "sge", "lsf")
#: The command each batch system's jobs are submitted with (dask-jobqueue's ``submit_command``).
SUBMIT_COMMANDS: dict[str, str] = {"slurm": "sbatch", "pbs": "qsub", "sge": "qsub", "lsf": "bsub"}


class SerialExecutor:
    """Compute the cells one after the other in this process (what ``run_grid`` does by default)."""

    workers = 1

    def complete(self, cells: Sequence[Cell], data: SegmentSet, source: Path | None,
                 progress: GridProgress) -> None:
        """Compute every cell not yet stored, in order."""
        complete_cells(cells, data, progress)


@dataclass(frozen=True)
class ClusterConfig:
    """Batch jobs that each run Dask workers (dask-jobqueue).

    Attributes
    ----------
    system : {"slurm", "pbs", "sge", "lsf"}
    jobs : int, default 1
        Batch jobs to submit.
    gpus_per_job : int, default 0
        GPUs each job asks for; each job then runs one worker per GPU.
        With 0, each job runs one worker.
    cores_per_worker : int, default 1
        CPU cores each worker asks for (its torch threads).
    memory : str, default "16GB"
        Memory per job.
    walltime : str or None, default None
        Wall-clock limit per job, in the system's format (``"04:00:00"``).
    queue : str or None, default None
        Partition or queue.
    account : str or None, default None
        Account or project charged.
    job_extra : tuple of str, default ()
        Further directives for the job script (``"--constraint=a100"``).
    prologue : tuple of str, default ()
        Shell lines run before the worker starts (``"module load cuda"``,
        activating the environment).
    """

    system: str
    jobs: int = 1
    gpus_per_job: int = 0
    cores_per_worker: int = 1
    memory: str = "16GB"
    walltime: str | None = None
    queue: str | None = None
    account: str | None = None
    job_extra: tuple[str, ...] = ()
    prologue: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_option("cluster", self.system, CLUSTER_SYSTEMS)
        check_int("jobs", self.jobs, 1)
        check_int("gpus_per_job", self.gpus_per_job, 0)
        check_int("cores_per_worker", self.cores_per_worker, 1)

    @property
    def workers_per_job(self) -> int:
        """One worker per GPU, or one per job without GPUs."""
        return max(1, self.gpus_per_job)

    def cluster_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the dask-jobqueue cluster class of :attr:`system`.

        Each worker runs one cell at a time (one Dask thread) and asks the
        batch system for ``cores_per_worker`` cores; a worker of a GPU job
        declares the resource ``GPU=1``, which every task of a CUDA grid needs.
        """
        workers, gpus = self.workers_per_job, self.gpus_per_job
        cpus = workers * self.cores_per_worker
        extra = list(self.job_extra)
        kwargs: dict[str, Any] = {"cores": workers, "processes": workers, "memory": self.memory,
                                  "walltime": self.walltime, "queue": self.queue,
                                  "job_script_prologue": list(self.prologue)}
        if self.system == "slurm":
            kwargs.update(job_cpu=cpus, account=self.account)
            extra += [f"--gres=gpu:{gpus}"] if gpus else []
        elif self.system == "pbs":
            kwargs.update(account=self.account, resource_spec=f"select=1:ncpus={cpus}:mem={self.memory}"
                          + (f":ngpus={gpus}" if gpus else ""))
        elif self.system == "lsf":
            kwargs.update(project=self.account, ncpus=cpus)
            extra += [f'-gpu "num={gpus}"'] if gpus else []
        else:  # sge: GPU requests are site conventions; a common one is -l gpu=N
            kwargs.update(project=self.account)
            extra += [f"-l gpu={gpus}"] if gpus else []
        kwargs["job_extra_directives"] = extra
        if gpus:
            kwargs["worker_extra_args"] = ["--resources", "GPU=1"]
        return {k: v for k, v in kwargs.items() if v is not None}


@dataclass(frozen=True)
class DaskConfig:
    """Where a :class:`DaskExecutor` finds its workers, and how they compute.

    At most one of ``workers`` (a local cluster), ``scheduler`` (a running
    one) and ``cluster`` (batch jobs) is given; with none, a local cluster of
    one worker per GPU, or per ``threads_per_worker`` CPU cores.

    Attributes
    ----------
    workers : int or None, default None
        Worker processes of a local cluster, each computing one cell at a time.
    scheduler : str or None, default None
        Address of a running scheduler (``tcp://host:8786``) or its
        scheduler file (a path ending in ``.json``, or an existing file).
    cluster : ClusterConfig or None, default None
    threads_per_worker : int or None, default None
        Torch threads each worker computes a cell on; by default
        :func:`~mkdbook.core.threads.cell_threads` of this process (1 unless
        ``MKDBOOK_CELL_THREADS`` says otherwise), the number a serial run
        uses, so that both give the same numbers. One per worker keeps
        workers from fighting over cores.
    gpu : bool or None, default None
        Whether tasks need the resource ``GPU=1`` (local workers then each
        see one GPU of this machine); by default, when this machine has
        CUDA, when ``cluster`` asks for GPUs, or, with ``scheduler``, when
        its workers declare the resource (``dask worker ADDRESS --nthreads 1
        --resources GPU=1``).
    preload : tuple of str, default ()
        Modules each local worker imports at start (Dask's ``preload``).
    """

    workers: int | None = None
    scheduler: str | None = None
    cluster: ClusterConfig | None = None
    threads_per_worker: int | None = None
    gpu: bool | None = None
    preload: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.workers is not None:
            check_int("workers", self.workers, 1)
        if self.threads_per_worker is not None:
            check_int("threads_per_worker", self.threads_per_worker, 1)
        given = [name for name in ("workers", "scheduler", "cluster") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of workers, scheduler and cluster, got {' and '.join(given)}")

    @property
    def threads(self) -> int:
        """Torch threads per cell on a worker: :attr:`threads_per_worker`, or :func:`~mkdbook.core.threads.cell_threads`."""
        return self.threads_per_worker if self.threads_per_worker is not None else cell_threads()

    def uses_gpu(self) -> bool:
        """Whether tasks need a GPU (see :attr:`gpu`)."""
        if self.gpu is not None:
            return self.gpu
        if self.cluster is not None:
            return self.cluster.gpus_per_job > 0
        return torch.cuda.is_available()

    def local_workers(self, gpu: bool | None = None) -> int:
        """Workers of the local cluster: ``workers``, or one per GPU, or per ``threads_per_worker`` cores.

        ``gpu`` overrides :meth:`uses_gpu` (a grid that trains on the CPU needs no GPU).
        """
        if self.workers is not None:
            return self.workers
        if self.uses_gpu() if gpu is None else gpu:
            return max(1, torch.cuda.device_count())
        return max(1, (os.cpu_count() or 1) // self.threads)


# -- what runs on a worker -------------------------------------------------------------------
_LOADED: dict[tuple[str, SegmentConfig], SegmentSet] = {}


def _segments(source: Path | SegmentSet, config: SegmentConfig) -> SegmentSet:
    """The segments of ``source``, loaded once per worker process (memory-mapped from the cache)."""
    if isinstance(source, SegmentSet):
        return source
    key = (str(source), config)
    if key not in _LOADED:
        _LOADED[key] = load_segments(source, config=config, progress=False)
    return _LOADED[key]


def _pin_gpu() -> None:
    """Show this worker one GPU of its machine, chosen by the worker's index, before CUDA starts.

    Workers of one machine (a local cluster, or a batch job with one worker
    per GPU) would otherwise all compute on the first GPU.
    """
    from distributed import get_worker

    if torch.cuda.is_initialized():
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(k) for k in range(torch.cuda.device_count())]
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[_local_index(get_worker().name) % len(gpus)]


class _DriverReports(logging.Filter):
    """Drops a worker's "Compute Failed" report of a cell: the driver reports the error, in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (str(record.msg).startswith("Compute Failed") and record.args
                    and str(record.args[0]).startswith("cell-"))


def compute_cell(cell: Cell, source: Path | SegmentSet, threads: int, gpu: bool, *after: str,
                 quiet: bool = False) -> str:
    """Compute one cell on a worker (from the cache when stored) and return its key.

    Parameters
    ----------
    cell : Cell
    source : Path or SegmentSet
        The data folder, or the segments themselves.
    threads : int
        Torch threads for this cell (the driver's
        :attr:`DaskConfig.threads`): :func:`~mkdbook.experiments.grids.run_cell`
        reads them from ``MKDBOOK_CELL_THREADS``, which this sets for the worker.
    gpu : bool
        Whether the worker computes on a GPU (it then keeps to one of its machine's).
    *after : str
        Keys of cells that had to be stored first (a student's teacher):
        passing the teacher's future here is what makes Dask wait for it.
    quiet : bool, default False
        Leave the report of a failed cell to the driver: the worker does not
        log it (a local worker's log is the driver's standard error, which
        then keeps to one line). Workers of a batch job or a running
        scheduler log it, in their own log.
    """
    if quiet:
        worker_log = logging.getLogger("distributed.worker")
        if not any(isinstance(f, _DriverReports) for f in worker_log.filters):
            worker_log.addFilter(_DriverReports())
    if gpu:
        _pin_gpu()
    os.environ[THREADS_VARIABLE] = str(threads)
    run_cell(cell, _segments(source, cell.segments))
    return cell_key(cell)


def _worker_view() -> tuple[str, tuple[str, str]]:
    """What a worker must share with the driver: the results folder and the package source."""
    return str(results_dir().resolve()), package_fingerprint()


def _worker_environ() -> dict[str, Any]:
    """The variables a local Dask nanny sets for its worker, less ``MALLOC_TRIM_THRESHOLD_``.

    Dask sets that variable so that workers hand freed memory back quickly,
    but setting it at all turns off glibc's adaptive mmap threshold: every
    tensor above 128 KiB is then mapped afresh and page-faulted in, which made
    a worker train 2-3 times slower than the same network in this process.
    """
    import dask

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def _local_index(name: Any) -> int:
    """A worker's index on its machine: its name in a local cluster, the ``-k`` suffix in a batch job."""
    if isinstance(name, int):
        return name
    match = re.search(r"-(\d+)$", str(name))
    return int(match.group(1)) if match else 0


# -- the driver ------------------------------------------------------------------------------
class DaskExecutor:
    """Compute a grid's cells on a Dask cluster (local processes, a running scheduler, or batch jobs).

    Parameters
    ----------
    config : DaskConfig
    poll : float
        Seconds between two redraws of the progress bar.
    """

    def __init__(self, config: DaskConfig = DaskConfig(), poll: float = 2.0) -> None:
        self.config, self.poll = config, poll
        self.workers = self._planned_workers()

    def _planned_workers(self) -> int:
        config = self.config
        if config.cluster is not None:
            return config.cluster.jobs * config.cluster.workers_per_job
        return config.local_workers() if config.scheduler is None else 1

    def _needs_gpu(self, cells: Sequence[Cell]) -> bool:
        """Whether tasks need a GPU: the config says so and some cell does not train on the CPU."""
        return self.config.uses_gpu() and any(cell.train.device != "cpu" for cell in cells)

    def check(self) -> None:
        """Fail now, with one line, where connecting later would wait for ever or for long.

        Raises
        ------
        ValueError
            Dask (or dask-jobqueue, for a batch cluster) is not installed, or
            the scheduler file does not parse.
        FileNotFoundError
            The scheduler file does not exist, or the batch system's submit
            command is not on ``PATH``.
        """
        config = self.config
        _require(cluster=config.cluster is not None)
        if config.scheduler is not None:
            scheduler_address(config.scheduler)
        if config.cluster is not None:
            command = SUBMIT_COMMANDS[config.cluster.system]
            if shutil.which(command) is None:
                raise FileNotFoundError(errno.ENOENT, f"command not found; --cluster {config.cluster.system} "
                                        f"submits its workers with it (run on a login node of the cluster)",
                                        command)

    @contextmanager
    def _client(self, gpu: bool | None = None):
        import dask
        from distributed import Client, LocalCluster

        self.check()
        config = self.config
        if config.scheduler is not None:
            with _connect(scheduler_address(config.scheduler)) as client:
                yield client
            return
        if config.cluster is not None:
            cluster = _jobqueue_cluster(config.cluster)
            # Adaptive with a fixed size: a job that ends (walltime, node failure)
            # is replaced by a new one, as a local nanny restarts a killed worker.
            cluster.adapt(minimum_jobs=config.cluster.jobs, maximum_jobs=config.cluster.jobs)
        else:
            gpu = config.uses_gpu() if gpu is None else gpu
            with dask.config.set({"distributed.nanny.pre-spawn-environ": _worker_environ()}):
                cluster = LocalCluster(n_workers=config.local_workers(gpu), threads_per_worker=1, processes=True,
                                       resources={"GPU": 1} if gpu else None, dashboard_address=None,
                                       preload=list(config.preload) or None)
        with cluster, Client(cluster) as client:
            yield client

    def complete(self, cells: Sequence[Cell], data: SegmentSet, source: Path | None,
                 progress: GridProgress) -> None:
        """Submit every cell not yet stored (teachers first) and wait for all of them.

        Raises
        ------
        ValueError
            If the workers see another results folder or another package source.
        Exception
            The first error a cell raised on a worker.
        """
        from distributed import wait

        todo = [cell for cell in cells if not (results_dir() / cell_key(cell) / "result.json").is_file()]
        if not todo:
            return
        gpu = self._needs_gpu(todo)
        with self._client(gpu) as client:
            self._check_workers(client)
            progress.workers = max(1, len(client.scheduler_info()["workers"]) or self.workers)
            payload = source if source is not None else client.scatter(data, broadcast=True)
            if self.config.scheduler is not None and self.config.gpu is None:
                # Workers started by hand need a GPU only if they declare one; the
                # driver's own machine (a login node, say) does not tell.
                gpu = any(cell.train.device != "cpu" for cell in todo) and any(
                    "GPU" in worker.get("resources", {}) for worker in client.scheduler_info()["workers"].values())
            futures: dict[str, Any] = {}
            local = self.config.scheduler is None and self.config.cluster is None
            for cell in todo:
                key = cell_key(cell)
                teacher = cell_key(cell.teacher) if cell.teacher is not None else None
                after = [futures[teacher]] if teacher in futures else []
                futures[key] = client.submit(compute_cell, cell, payload, self.config.threads, gpu,
                                             *after, quiet=local, key=f"cell-{key}",
                                             resources={"GPU": 1} if gpu else None, pure=False)
            pending = set(futures.values())
            while pending:
                try:
                    done, pending = wait(pending, timeout=self.poll, return_when="FIRST_COMPLETED")
                except TimeoutError:
                    done = set()
                for future in done:
                    if future.status == "error":
                        client.cancel(list(pending))
                        future.result()  # raises the worker's exception here
                progress.update()
            for key, future in futures.items():
                if future.result() != key:
                    raise ValueError(f"a worker stored {future.result()} for cell {key}: its mkdbook "
                                     f"differs from this process's")

    def _check_workers(self, client: Any) -> None:
        here = _worker_view()
        for worker, view in client.run(_worker_view).items():
            if view[0] != here[0]:
                raise ValueError(f"worker {worker} stores results in {view[0]}, this process reads "
                                 f"{here[0]}: give every process the same MKDBOOK_HOME")
            if view[1] != here[1]:
                raise ValueError(f"worker {worker} runs mkdbook {view[1][0]} with other source files "
                                 f"than this process: install the same package everywhere")


def scheduler_address(scheduler: str) -> str:
    """The address of a scheduler given as an address or as a scheduler file (read here).

    A scheduler is a file when its name ends in ``.json`` or names an existing file.

    Raises
    ------
    FileNotFoundError
        Naming the scheduler file, when it does not exist.
    ValueError
        Naming the scheduler file, when it does not hold a scheduler's address.
    """
    if not (scheduler.endswith(".json") or os.path.isfile(scheduler)):
        return scheduler
    try:
        text = Path(scheduler).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "no such scheduler file (the scheduler writes it when started "
                                "with --scheduler-file)", scheduler) from None
    try:
        address = json.loads(text)["address"]
    except (ValueError, KeyError, TypeError) as err:
        why = "no address in it" if isinstance(err, (KeyError, TypeError)) else "not JSON"
        raise ValueError(f"{scheduler}: not a Dask scheduler file ({why})") from None
    if not isinstance(address, str) or not address:
        raise ValueError(f"{scheduler}: not a Dask scheduler file (its address is {address!r})")
    return address


@contextmanager
def _connect(address: str):
    """A client of the scheduler at ``address``, which must answer within Dask's connect timeout."""
    import dask
    from dask.utils import parse_timedelta
    from distributed import Client

    seconds = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), default="seconds")
    try:
        client = Client(address, timeout=seconds)
    except (OSError, TimeoutError) as err:
        raise TimeoutError(errno.ETIMEDOUT, f"no Dask scheduler answered within {seconds:g} s "
                           f"(distributed.comm.timeouts.connect)", address) from err
    with client:
        yield client


def _require(cluster: bool) -> None:
    """Import Dask (and dask-jobqueue for a batch ``cluster``), or fail with one line saying how to install it."""
    try:
        import distributed  # noqa: F401

        if cluster:
            import dask_jobqueue  # noqa: F401
    except ImportError as err:
        raise ValueError(f"--executor dask needs the cluster extra: pip install mkdbook[cluster] ({err})") from None


def _jobqueue_cluster(config: ClusterConfig):
    import dask_jobqueue

    classes = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster,
               "sge": dask_jobqueue.SGECluster, "lsf": dask_jobqueue.LSFCluster}
    return classes[config.system](**config.cluster_kwargs())
