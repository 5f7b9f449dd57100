"""Loading pickles of plain containers and numpy arrays without running them.

A pickle is a program for a small stack machine: it may name any importable
callable and call it with arguments taken from the file, and numpy's own
``__setstate__`` methods trust the state they are handed (a forged dtype
state makes numpy read eight bytes of the file as an object pointer). Checking
the result afterwards is too late, so :func:`loads` never hands file content
to :mod:`pickle` or to numpy's pickle hooks. It works in two passes over the
same stack machine:

1. **Vetting** reads the opcodes, as the file is parsed, without building
   anything. It refuses opcodes outside a short list, globals other than
   numpy's array constructors, lengths beyond the end of the file, more than
   :data:`~mkdbook.data.readers.safe_pickle.limits.MAX_OPCODES` opcodes, containers nested deeper than
   :data:`~mkdbook.data.readers.safe_pickle.limits.MAX_DEPTH`, and structures that memo reuse would expand to more than
   :data:`~mkdbook.data.readers.safe_pickle.limits.MAX_EXPANDED` items (a small file can describe a tuple with 2**64
   leaves).
2. **Building** runs the vetted opcodes with small proxies in place of the
   admitted globals. The proxies accept only the state numpy writes for plain
   float and integer arrays and build each array with ``np.frombuffer`` over
   the file's own bytes.

Every allocation is bounded by the file's size, so any file loads or is
refused within about a second.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator

from mkdbook.data.readers.safe_pickle.building import _Builder
from mkdbook.data.readers.safe_pickle.limits import (
    DTYPE_CODES, MAX_DEPTH, MAX_EXPANDED, MAX_NDIM, MAX_OPCODES, UnsafePickleError,
)
from mkdbook.data.readers.safe_pickle.machine import _execute
from mkdbook.data.readers.safe_pickle.opcodes import _Op, _opcodes
from mkdbook.data.readers.safe_pickle.vetting import _Bounds

__all__ = ["loads", "UnsafePickleError", "MAX_OPCODES", "MAX_DEPTH", "MAX_EXPANDED", "MAX_NDIM", "DTYPE_CODES"]

# Every module of the package raises it; its public name is the package's.
UnsafePickleError.__module__ = __name__


def loads(data: bytes | mmap.mmap, *, aligned: bool = True) -> object:
    """Load a pickle of plain containers and numpy arrays without running it.

    Parameters
    ----------
    data : bytes or mmap.mmap
        The whole file, read or memory-mapped. Arrays large enough to be most
        of it are read-only views of these bytes; smaller ones are read-only
        copies.
    aligned : bool
        Copy a view that is not aligned for its dtype (the default), as
        numpy's and torch's fast paths need; False keeps it a view, for a
        caller that reads it once.

    Returns
    -------
    object
        What :func:`pickle.loads` (with ``encoding="latin1"``) would return
        for a pickle of dicts, lists, tuples, numbers, strings and numpy
        float or integer arrays, written with protocol 2 to 5 by Python 2 or
        Python 3.

    Raises
    ------
    UnsafePickleError
        If the file is truncated, uses an opcode or global outside that
        list, hands numpy's constructors state other than numpy writes for
        plain arrays, or breaks one of the module's bounds. The message is one
        line.
    """
    if data[:1] != b"\x80":
        raise UnsafePickleError("not a pickle of protocol 2 to 5 (no PROTO opcode at byte 0)")
    ops: list[_Op] = []
    _execute(_collect(_opcodes(data), ops), _Bounds())
    return _execute(ops, _Builder(data, aligned))


def _collect(opcodes: Iterator[_Op], into: list[_Op]) -> Iterator[_Op]:
    """Pass opcodes on as they are read, keeping them, so vetting stops a bad file at once."""
    for op in opcodes:
        if len(into) == MAX_OPCODES:
            raise UnsafePickleError(f"more than {MAX_OPCODES} opcodes")
        into.append(op)
        yield op
