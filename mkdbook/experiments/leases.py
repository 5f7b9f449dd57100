"""Exclusive, expiring leases on files: one process at a time works on a cell.

A lease is a small file that exactly one process creates: its content (the
owner's host, process id, start time and a random token) is written to a
temporary file first, which is then hard-linked to the lease's name, an
operation that fails when the name exists, on a local disk and on the
network file systems clusters share (NFS v3+, Lustre, GPFS, BeeGFS; see
:func:`~mkdbook.core.atomic.write_atomically`). A lease file is therefore
never seen empty or half-written, even when the disk is full. While the owner
works, a heartbeat thread touches the file; a lease whose file has not been
touched for ``stale_after`` seconds, or whose owner is a dead process on this
host, is *stale*, and another process may take it over. A lease file that
cannot be parsed (damaged, or left by an older version that created the file
before writing it) is stale at once.

Taking over goes through a second exclusive file (``<lease>.takeover``), so
that two processes that find the same stale lease cannot both take it. The
staleness of another host's lease is judged by comparing the file's
modification time (set by the file server) with this host's clock, so the
machines' clocks must agree to well within ``stale_after``.

``MKDBOOK_LEASE_TIMEOUT`` (seconds, default 300) sets ``stale_after`` for every
process that inherits the environment, the workers of a cluster included;
the heartbeat runs six times per timeout.
"""

from __future__ import annotations

import errno
import json
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mkdbook.core.atomic import write_atomically
from mkdbook.core.checks import check_number

__all__ = ["LeaseConfig", "LeaseInfo", "acquire", "held", "lease_config", "read_lease", "release"]

#: Environment variable that sets :attr:`LeaseConfig.stale_after` (seconds).
TIMEOUT_VARIABLE = "MKDBOOK_LEASE_TIMEOUT"


@dataclass(frozen=True)
class LeaseConfig:
    """How leases expire and how waiters poll.

    Attributes
    ----------
    stale_after : float, default 300
        Seconds without a heartbeat after which a lease is stale (> 0).
    poll : float, default 2
        Seconds between two looks at a lease held by another process (> 0).
    message_every : float, default 60
        Seconds between two "waiting for" messages of a waiting process (> 0).
    """

    stale_after: float = 300.0
    poll: float = 2.0
    message_every: float = 60.0

    def __post_init__(self) -> None:
        for name in ("stale_after", "poll", "message_every"):
            check_number(name, getattr(self, name), 0.0, strict=True)

    @property
    def heartbeat(self) -> float:
        """Seconds between two touches of a held lease: six per timeout."""
        return self.stale_after / 6


def lease_config() -> LeaseConfig:
    """The :class:`LeaseConfig` of this process, with ``stale_after`` from ``MKDBOOK_LEASE_TIMEOUT``.

    Raises
    ------
    ValueError
        If the variable is not a number > 0.
    """
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return LeaseConfig()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{TIMEOUT_VARIABLE} must be a number of seconds, got {text!r}") from None
    stale = check_number(TIMEOUT_VARIABLE, value, 0.0, strict=True)
    return LeaseConfig(stale_after=stale, poll=min(2.0, stale / 4))


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease file says about its owner.

    Attributes
    ----------
    host : str
    pid : int
    started : float
        Seconds since the epoch when the lease was taken.
    token : str
        Random, unique per lease: tells a lease from a later one at the same path.
    touched : float
        The file's modification time, the owner's last heartbeat.
    """

    host: str
    pid: int
    started: float
    token: str
    touched: float

    @property
    def readable(self) -> bool:
        """Whether the lease file could be parsed (an unreadable one has no owner)."""
        return bool(self.token)

    def describe(self) -> str:
        """``host pid N since HH:MM:SS``, for messages."""
        if not self.readable:
            return "an empty or unreadable lease file"
        return f"{self.host} pid {self.pid} since {time.strftime('%H:%M:%S', time.localtime(self.started))}"

    def is_stale(self, config: LeaseConfig, now: float | None = None) -> bool:
        """Whether another process may take the lease over.

        Stale when not touched for ``config.stale_after`` seconds, or at once
        when its owner is a process of this host that no longer exists (a
        killed worker's cell is then taken over without waiting), or when the
        file names no owner (it could not be parsed).
        """
        if not self.readable:
            return True
        now = time.time() if now is None else now
        if now - self.touched > config.stale_after:
            return True
        return self.host == socket.gethostname() and not _alive(self.pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def read_lease(path: Path) -> LeaseInfo | None:
    """The lease at ``path``, or ``None`` when there is none (or it vanished while being read).

    A lease file that exists but cannot be parsed (damaged, or left empty by
    an older version whose owner was killed between creating and writing it)
    reads as an owner of pid 0 on no host with no token, which
    :meth:`LeaseInfo.is_stale` finds stale at once.
    """
    try:
        touched = path.stat().st_mtime
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        return LeaseInfo(str(record["host"]), int(record["pid"]), float(record["started"]),
                         str(record["token"]), touched)
    except (ValueError, KeyError, TypeError):
        return LeaseInfo("", 0, touched, "", touched)


def _create(path: Path) -> str | None:
    """Create the lease file, complete, if it does not exist; return its token, or ``None`` if it exists."""
    token = uuid.uuid4().hex
    text = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "token": token})
    try:
        write_atomically(path, lambda stream: stream.write(text.encode()), exclusive=True)
    except FileExistsError:
        return None
    return token


def _take_over(path: Path, seen: LeaseInfo, config: LeaseConfig) -> str | None:
    """Replace the stale lease ``seen`` by ours, unless another process got there first."""
    guard = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        # A taker that died between its two steps leaves the guard behind.
        try:
            if time.time() - guard.stat().st_mtime > config.stale_after:
                guard.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return None
    os.close(fd)
    try:
        now = read_lease(path)
        if now is not None:
            if now.token != seen.token or not now.is_stale(config):
                return None  # renewed or replaced since we looked
            path.unlink(missing_ok=True)
        return _create(path)
    finally:
        guard.unlink(missing_ok=True)


class _Heartbeat(threading.Thread):
    """Touches the lease file until stopped; notices when the lease was taken away."""

    def __init__(self, path: Path, token: str, interval: float) -> None:
        super().__init__(name=f"lease {path.name}", daemon=True)
        self.path, self.token, self.interval = path, token, interval
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            current = read_lease(self.path)
            if current is None or current.token != self.token:
                self.lost = True
                return
            try:
                os.utime(self.path)
            except FileNotFoundError:
                self.lost = True
                return


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def acquire(path: Path, *, config: LeaseConfig | None = None, what: str = "",
            message: Callable[[str], None] = _stderr) -> str:
    """Wait until the lease at ``path`` is ours; return its token.

    Parameters
    ----------
    path : Path
        The lease file; its folder must exist.
    config : LeaseConfig, optional
        :func:`lease_config` by default.
    what : str
        What the lease protects, for the waiting message.
    message : callable
        Receives a line when this process starts waiting and then every
        ``config.message_every`` seconds (standard error by default).
    """
    config = config or lease_config()
    said = -math.inf
    while True:
        token = _create(path)
        if token is not None:
            return token
        seen = read_lease(path)
        if seen is None:
            continue  # released between our two looks
        if seen.is_stale(config):
            token = _take_over(path, seen, config)
            if token is not None:
                message(f"took over the stale lease of {what or path.name} ({seen.describe()})")
                return token
            continue
        if time.monotonic() - said >= config.message_every:
            message(f"waiting for {what or path.name}: {seen.describe()} is working on it")
            said = time.monotonic()
        time.sleep(config.poll)


def release(path: Path, token: str) -> bool:
    """Remove the lease if it is still ours; return whether it was."""
    current = read_lease(path)
    if current is None or current.token != token:
        return False
    try:
        path.unlink()
    except OSError as err:
        if err.errno != errno.ENOENT:
            raise
    return True


@contextmanager
def held(path: Path, *, config: LeaseConfig | None = None, what: str = "",
         message: Callable[[str], None] = _stderr) -> Iterator[None]:
    """Hold the lease at ``path`` (waiting for it) for the ``with`` block, with a heartbeat.

    A process killed inside the block leaves the lease behind; it goes stale
    after ``stale_after`` seconds (at once for a dead process of the same
    host) and the next process takes it over. A lease taken over while its
    owner still worked (the owner stalled for longer than ``stale_after``)
    is reported when the block ends, and left to its new owner.
    """
    config = config or lease_config()
    token = acquire(path, config=config, what=what, message=message)
    beat = _Heartbeat(path, token, config.heartbeat)
    beat.start()
    try:
        yield
    finally:
        beat.stopped.set()
        beat.join()
        if not release(path, token) or beat.lost:
            message(f"the lease of {what or path.name} was taken over by another process while "
                    f"this one held it; raise {TIMEOUT_VARIABLE} above the longest pause")
