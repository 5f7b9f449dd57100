"""The bounds every file must keep, and the error for a file that breaks one.

Shared by the modules of :mod:`mkdbook.data.readers.safe_pickle`, which re-exports
all of them.
"""

from __future__ import annotations

#: At most this many opcodes; a DEAP subject file has about a hundred.
MAX_OPCODES: int = 100_000
#: Deepest nesting of containers (and of MARKs); DEAP needs four.
MAX_DEPTH: int = 32
#: Items that containers may hold in all, counted as if every memo reference
#: were a copy: this is what bounds the work of building them and of hashing
#: or printing them afterwards.
MAX_EXPANDED: int = 1_000_000
#: numpy's own limit on array dimensions is 64; DEAP's arrays have 2 or 3.
MAX_NDIM: int = 32

#: Dtype codes numpy writes for plain float and integer arrays.
DTYPE_CODES: frozenset[str] = frozenset(
    {"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8"}
)


class UnsafePickleError(ValueError):
    """The bytes are not a pickle of plain containers and numpy arrays, or break a bound."""
