"""Writing a file so that it is either whole or absent.

Every file the package writes (simulated subjects, caches, checkpoints,
results, leases) goes through :func:`write_atomically`, so an interrupted run
never leaves half a file for a later run to trust, and a failed write (a full
disk, an I/O error, a read-only or forbidden folder) is one :class:`OSError`
that names the file, with the previous file, if any, left as it was.

Testing hook
------------
Two environment variables, read at every write and meant for the package's
fault-injection tests only (``tests/test_write_faults.py``), count the writes
of a run and make one of them fail, in the manner of SQLite's I/O-error tests:

``MKDBOOK_TEST_WRITE_LOG``
    A file that every write appends to, under a lock (so the processes of one
    run share one count): ``begin N PATH`` before the write and ``done N
    SHA256 PATH`` once the file is in place.
``MKDBOOK_TEST_WRITE_FAULT``
    ``N:KIND``, with ``KIND`` one of :data:`FAULTS`: the N-th write (counted in
    the log, which must be set too) writes half of its first block and then
    fails with that error number, or kills its process with SIGKILL
    (``KILL``). A write of nothing fails where it would have synced.
"""

from __future__ import annotations

import errno
import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from mkdbook.core.keys import bytes_digest

__all__ = ["FAULTS", "FAULT_VARIABLE", "LOG_VARIABLE", "write_atomically"]

#: Environment variable naming the log of writes (testing hook, see the module's docstring).
LOG_VARIABLE = "MKDBOOK_TEST_WRITE_LOG"
#: Environment variable naming the write that fails, ``N:KIND`` (testing hook).
FAULT_VARIABLE = "MKDBOOK_TEST_WRITE_FAULT"
#: The faults the hook injects: an error number's name, or ``KILL``.
FAULTS: tuple[str, ...] = ("ENOSPC", "EIO", "EROFS", "EACCES", "EDQUOT", "KILL")


def write_atomically(path: Path | str, write: Callable[[BinaryIO], object], *, exclusive: bool = False) -> None:
    """Write ``path`` through a temporary sibling that is renamed (or linked) into place.

    Parameters
    ----------
    path : path-like
        The file to (re)write.
    write : callable
        Called with the open binary stream, for example
        ``lambda f: torch.save(state, f)``.
    exclusive : bool, default False
        Create ``path`` only if it does not exist (a hard link of the complete
        temporary file, atomic on local disks and on NFS), raising
        :class:`FileExistsError` otherwise: a file that exactly one process
        creates, and that nobody ever sees empty or half-written.

    Raises
    ------
    OSError
        Naming ``path`` (``err.filename``), when the file cannot be written
        (``ENOSPC``, ``EIO``, ``EROFS``, ``EACCES``...): the previous file, if
        any, is left in place. A write that :func:`torch.save` reports as a
        ``RuntimeError`` (``inline_container.cc ... unexpected pos``) is
        reported as such an ``OSError`` too.
    FileExistsError
        With ``exclusive``, if ``path`` exists.

    Notes
    -----
    A reader sees the old file or the complete new one, never a part. A
    failure removes the temporary file; a hard kill may leave one behind,
    under a hidden name that nothing reads.
    """
    path = Path(path)
    # Opened by hand rather than with tempfile, whose files are private (0600).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    hook = _Hook.start(path)
    try:
        try:
            with temporary.open("xb") as stream:
                write(stream if hook is None else hook.wrap(stream))
                if hook is not None:
                    hook.fire()  # nothing was written (or the error was swallowed): fail at the sync
                stream.flush()
                os.fsync(stream.fileno())
            if exclusive:
                _link(temporary, path)
            else:
                os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except (OSError, RuntimeError) as err:
        named = _naming(err, path)
        if named is None:
            raise
        raise named from err
    if hook is not None:
        hook.done(path)


def _link(temporary: Path, path: Path) -> None:
    """Hard-link ``temporary`` to ``path``, which must not exist (``FileExistsError`` otherwise)."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError:
        # Over NFS a link can succeed and still report an error (a lost reply):
        # the link count of the temporary file tells.
        if os.stat(temporary).st_nlink != 2:
            raise


def _naming(err: BaseException, path: Path) -> OSError | None:
    """The :class:`OSError` naming ``path`` to raise for ``err``, or ``None`` to raise ``err`` itself."""
    cause: BaseException | None = err
    # torch.save reports a failed write as a RuntimeError raised while the
    # OSError was handled: the OSError is in its context.
    while isinstance(cause, RuntimeError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, OSError):
        if cause.errno is None:
            return None
        return OSError(cause.errno, cause.strerror or os.strerror(cause.errno), str(path))
    text = str(err)
    if "unexpected pos" in text or "inline_container" in text:
        return OSError(errno.EIO, "could not be written whole (is the disk full?)", str(path))
    return None


class _Hook:
    """The testing hook's side of one write: its number in the log, and whether to make it fail."""

    def __init__(self, number: int, fault: str | None) -> None:
        self.number, self.fault = number, fault

    @classmethod
    def start(cls, path: Path) -> _Hook | None:
        """Log the write and return its hook; ``None`` without the testing hook."""
        if not os.environ.get(LOG_VARIABLE):
            return None
        number = _append_line(lambda begun: f"begin {begun + 1} {path}")
        spec = os.environ.get(FAULT_VARIABLE, "")
        target, _, kind = spec.partition(":")
        if spec and (not target.isdigit() or kind not in FAULTS):
            raise ValueError(f"{FAULT_VARIABLE} must be N:KIND with KIND one of {FAULTS}, got {spec!r}")
        return cls(number, kind if spec and int(target) == number else None)

    def done(self, path: Path) -> None:
        """Log that the write is complete, with the digest of the file now in place."""
        digest = bytes_digest(path.read_bytes())
        _append_line(lambda begun: f"done {self.number} {digest} {path}")

    def wrap(self, stream: BinaryIO) -> BinaryIO:
        """``stream``, or one whose first write fails when this write is the one to fail."""
        return stream if self.fault is None else _FailingStream(stream, self)  # type: ignore[return-value]

    def fire(self) -> None:
        """Inject the fault, if this write is the one: raise its error, or SIGKILL this process."""
        if self.fault is None:
            return
        if self.fault == "KILL":
            os.kill(os.getpid(), signal.SIGKILL)
        code = getattr(errno, self.fault)
        raise OSError(code, os.strerror(code))


class _FailingStream:
    """A stream whose first write writes half its bytes and then fails (the injected fault)."""

    def __init__(self, stream: BinaryIO, hook: _Hook) -> None:
        self._stream, self._hook = stream, hook

    def write(self, data: Any) -> int:
        try:
            view = memoryview(data).cast("B")
            self._stream.write(view[: len(view) // 2])
            self._stream.flush()
        except TypeError:
            pass
        self._hook.fire()
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _append_line(line: Callable[[int], str]) -> int:
    """Append ``line(begun)`` to the hook's log under a lock, ``begun`` being the writes begun so far; return it + 1."""
    import fcntl

    with open(os.environ[LOG_VARIABLE], "a+", encoding="utf-8") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.seek(0)
        begun = sum(1 for entry in log if entry.startswith("begin "))
        log.write(line(begun) + "\n")
        log.flush()
        return begun + 1
