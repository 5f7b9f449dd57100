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
   :data:`MAX_OPCODES` opcodes, containers nested deeper than
   :data:`MAX_DEPTH`, and structures that memo reuse would expand to more than
   :data:`MAX_EXPANDED` items (a small file can describe a tuple with 2**64
   leaves).
2. **Building** runs the vetted opcodes with small proxies in place of the
   admitted globals. The proxies accept only the state numpy writes for plain
   float and integer arrays and build each array with ``np.frombuffer`` over
   the file's own bytes.

Every allocation is bounded by the file's size, so any file loads or is
refused within about a second.
"""

from __future__ import annotations

import math
import pickletools
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple, Protocol

import numpy as np

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


class _Op(NamedTuple):
    """One opcode: its name, its argument and where it starts in the file.

    Byte strings keep ``(offset, length)`` instead of a copy, so array data
    are read straight from the file's buffer.
    """

    name: str
    arg: object
    pos: int


# Opcode byte -> (name, how its argument is stored). Everything else (INST,
# OBJ, NEWOBJ, PERSID, EXT*, out-of-band buffers, protocol-0 text opcodes...)
# is refused: numpy arrays and the containers around them never need it.
_OPCODES: dict[int, tuple[str, str]] = {
    0x80: ("PROTO", "u1"), 0x95: ("FRAME", "u8"), ord("."): ("STOP", ""),
    ord("("): ("MARK", ""), ord("N"): ("NONE", ""), 0x88: ("NEWTRUE", ""), 0x89: ("NEWFALSE", ""),
    ord("K"): ("BININT1", "u1"), ord("M"): ("BININT2", "u2"), ord("J"): ("BININT", "i4"),
    0x8A: ("LONG1", "long1"), ord("G"): ("BINFLOAT", "f8"),
    ord("U"): ("SHORT_BINSTRING", "blob1"), ord("T"): ("BINSTRING", "blob4"),
    ord("C"): ("SHORT_BINBYTES", "blob1"), ord("B"): ("BINBYTES", "blob4"),
    0x8E: ("BINBYTES8", "blob8"), 0x96: ("BYTEARRAY8", "blob8"),
    0x8C: ("SHORT_BINUNICODE", "text1"), ord("X"): ("BINUNICODE", "text4"),
    0x8D: ("BINUNICODE8", "text8"),
    ord("c"): ("GLOBAL", "lines"), 0x93: ("STACK_GLOBAL", ""),
    ord("}"): ("EMPTY_DICT", ""), ord("]"): ("EMPTY_LIST", ""), ord(")"): ("EMPTY_TUPLE", ""),
    0x85: ("TUPLE1", ""), 0x86: ("TUPLE2", ""), 0x87: ("TUPLE3", ""), ord("t"): ("TUPLE", ""),
    ord("l"): ("LIST", ""), ord("d"): ("DICT", ""),
    ord("a"): ("APPEND", ""), ord("e"): ("APPENDS", ""),
    ord("s"): ("SETITEM", ""), ord("u"): ("SETITEMS", ""),
    ord("q"): ("BINPUT", "u1"), ord("r"): ("LONG_BINPUT", "u4"), 0x94: ("MEMOIZE", ""),
    ord("h"): ("BINGET", "u1"), ord("j"): ("LONG_BINGET", "u4"),
    ord("R"): ("REDUCE", ""), ord("b"): ("BUILD", ""),
}
_FIXED = {
    "u1": struct.Struct("<B"), "u2": struct.Struct("<H"), "i4": struct.Struct("<i"),
    "u4": struct.Struct("<I"), "u8": struct.Struct("<Q"), "f8": struct.Struct(">d"),
}
_LENGTH = {"long1": "u1", "blob1": "u1", "blob4": "u4", "blob8": "u8",
           "text1": "u1", "text4": "u4", "text8": "u8"}
# Python 2 ``str`` (read as latin-1 text, as pickle does with encoding="latin1"),
# Python 3 ``bytes`` and protocol 5's in-band ``bytearray``.
_BLOB_KIND = {"SHORT_BINSTRING": "str", "BINSTRING": "str", "SHORT_BINBYTES": "bytes",
              "BINBYTES": "bytes", "BINBYTES8": "bytes", "BYTEARRAY8": "bytearray"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}
_LEAVES = {"BININT1", "BININT2", "BININT", "LONG1", "BINFLOAT", "SHORT_BINUNICODE",
           "BINUNICODE", "BINUNICODE8", *_BLOB_KIND, *_CONSTANTS}
_EMPTY = {"EMPTY_TUPLE": "tuple", "EMPTY_LIST": "list", "EMPTY_DICT": "dict"}
_TUPLE_N = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}
_MARKED = {"TUPLE": "tuple", "LIST": "list", "DICT": "dict"}
# Integers wider than this are never a shape, a count or a flag.
_MAX_LONG_BYTES = 16


def loads(data: bytes) -> object:
    """Load a pickle of plain containers and numpy arrays without running it.

    Parameters
    ----------
    data : bytes
        The whole file. Arrays large enough to be most of it are read-only
        views of these bytes; smaller or misaligned ones are read-only copies.

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
    return _execute(ops, _Builder(data))


def _collect(opcodes: Iterator[_Op], into: list[_Op]) -> Iterator[_Op]:
    """Pass opcodes on as they are read, keeping them, so vetting stops a bad file at once."""
    for op in opcodes:
        if len(into) == MAX_OPCODES:
            raise UnsafePickleError(f"more than {MAX_OPCODES} opcodes")
        into.append(op)
        yield op


# --- reading the opcode stream -------------------------------------------------

def _opcodes(data: bytes) -> Iterator[_Op]:
    """Yield the opcodes of ``data`` up to STOP, checking every length against the file."""
    pos = 0
    while True:
        if pos >= len(data):
            raise UnsafePickleError(f"truncated: the file ends at byte {len(data)} before STOP")
        code = data[pos]
        if code not in _OPCODES:
            known = pickletools.code2op.get(chr(code))
            raise UnsafePickleError(f"opcode {known.name if known else hex(code)} at byte {pos} is not allowed")
        name, kind = _OPCODES[code]
        arg, end = _read_arg(kind, data, pos + 1)
        yield _Op(name, arg, pos)
        if name == "STOP":
            return  # like pickle, whatever follows STOP is not read
        pos = end


def _read_arg(kind: str, data: bytes, pos: int) -> tuple[object, int]:
    if not kind:
        return None, pos
    if kind in _FIXED:
        fmt = _FIXED[kind]
        end = _take(data, pos, fmt.size)
        return fmt.unpack_from(data, pos)[0], end
    if kind == "lines":
        return _read_global(data, pos)
    size, pos = _read_arg(_LENGTH[kind], data, pos)
    end = _take(data, pos, size)
    if kind == "long1":
        if size > _MAX_LONG_BYTES:
            raise UnsafePickleError(f"integer of {size} bytes at byte {pos}")
        return int.from_bytes(data[pos:end], "little", signed=True), end
    if kind.startswith("text"):
        try:
            return data[pos:end].decode("utf-8", "surrogatepass"), end
        except UnicodeDecodeError:
            raise UnsafePickleError(f"text at byte {pos} is not UTF-8") from None
    return (pos, size), end


def _take(data: bytes, pos: int, size: int) -> int:
    """Return ``pos + size`` if the file holds that many bytes from ``pos``."""
    if size > len(data) - pos:
        raise UnsafePickleError(
            f"truncated: {size} bytes expected at byte {pos}, the file ends at byte {len(data)}"
        )
    return pos + size


def _read_global(data: bytes, pos: int) -> tuple[tuple[str, str], int]:
    """Read GLOBAL's ``module\\nname\\n``; real names are short, so a line ends within 256 bytes."""
    parts = []
    for _ in range(2):
        end = data.find(b"\n", pos, pos + 256)
        if end < 0:
            raise UnsafePickleError(f"GLOBAL at byte {pos - 1} has no module and name lines")
        parts.append(data[pos:end].decode("ascii", "replace"))
        pos = end + 1
    return (parts[0], parts[1]), pos


# --- the stack machine shared by both passes ---------------------------------------

class _Semantics(Protocol):
    """What a value is, for one pass: a bound (:class:`_Bounds`) or an object (:class:`_Builder`)."""

    def leaf(self, op: _Op) -> object: ...
    def text(self, value: object) -> str | None: ...
    def global_(self, module: str, name: str) -> object: ...
    def container(self, kind: str, items: list) -> object: ...
    def extend(self, target: object, kind: str, items: list) -> None: ...
    def reduce(self, func: object, args: object) -> object: ...
    def build(self, target: object, state: object) -> object: ...
    def result(self, value: object) -> object: ...


def _execute(ops: Iterable[_Op], sem: _Semantics) -> object:
    """Run ``ops`` (which end with STOP) on a pickle stack machine whose values ``sem`` defines."""
    stack: list = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    for op in ops:
        try:
            if op.name == "STOP":
                if marks or len(stack) != 1:
                    raise UnsafePickleError(f"expected one value on the stack, found {len(stack)}")
                return sem.result(stack[0])
            _step(op, sem, stack, marks, memo)
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{op.name} at byte {op.pos}: {err}") from None
    raise UnsafePickleError("truncated: no STOP opcode")


def _step(op: _Op, sem: _Semantics, stack: list, marks: list[int], memo: dict[int, object]) -> None:
    name, arg = op.name, op.arg
    if name == "PROTO":
        if op.pos != 0 or not 2 <= arg <= 5:
            raise UnsafePickleError("expected protocol 2 to 5, once, at the start")
    elif name == "MARK":
        if len(marks) == MAX_DEPTH:
            raise UnsafePickleError(f"MARKs nested deeper than {MAX_DEPTH}")
        marks.append(len(stack))
    elif name in _LEAVES:
        stack.append(sem.leaf(op))
    elif name == "GLOBAL":
        stack.append(sem.global_(*arg))
    elif name == "STACK_GLOBAL":
        module, qualname = (sem.text(v) for v in _pop(stack, marks, 2))
        if module is None or qualname is None:
            raise UnsafePickleError("expected a module name and a name, as text")
        stack.append(sem.global_(module, qualname))
    elif name in _EMPTY:
        stack.append(sem.container(_EMPTY[name], []))
    elif name in _TUPLE_N:
        stack.append(sem.container("tuple", _pop(stack, marks, _TUPLE_N[name])))
    elif name in _MARKED:
        stack.append(sem.container(_MARKED[name], _pairs(name, _pop_mark(stack, marks))))
    elif name in ("APPEND", "APPENDS"):
        items = _pop(stack, marks, 1) if name == "APPEND" else _pop_mark(stack, marks)
        sem.extend(_top(stack, marks), "list", items)
    elif name in ("SETITEM", "SETITEMS"):
        items = _pop(stack, marks, 2) if name == "SETITEM" else _pop_mark(stack, marks)
        sem.extend(_top(stack, marks), "dict", _pairs(name, items))
    elif name in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
        memo[len(memo) if name == "MEMOIZE" else arg] = _top(stack, marks)
    elif name in ("BINGET", "LONG_BINGET"):
        if arg not in memo:
            raise UnsafePickleError(f"memo entry {arg} was never stored")
        stack.append(memo[arg])
    elif name == "REDUCE":
        func, args = _pop(stack, marks, 2)
        stack.append(sem.reduce(func, args))
    elif name == "BUILD":
        (state,) = _pop(stack, marks, 1)
        stack[-1] = sem.build(_top(stack, marks), state)
    # FRAME only groups opcodes for buffered reading; the whole file is in memory.


def _pop(stack: list, marks: list[int], count: int) -> list:
    if len(stack) - (marks[-1] if marks else 0) < count:
        raise UnsafePickleError(f"expected {count} values on the stack")
    items = stack[len(stack) - count:]
    del stack[len(stack) - count:]
    return items


def _pop_mark(stack: list, marks: list[int]) -> list:
    if not marks:
        raise UnsafePickleError("no MARK to collect values from")
    start = marks.pop()
    items = stack[start:]
    del stack[start:]
    return items


def _top(stack: list, marks: list[int]) -> object:
    if len(stack) <= (marks[-1] if marks else 0):
        raise UnsafePickleError("the stack is empty")
    return stack[-1]


def _pairs(name: str, items: list) -> list:
    if name in ("DICT", "SETITEM", "SETITEMS") and len(items) % 2:
        raise UnsafePickleError("expected keys and values in pairs")
    return items


# --- pass 1: vetting, on sizes instead of values ---------------------------------------

class _Node:
    """What vetting knows of a value: its size with every memo reference expanded, its depth, its text."""

    __slots__ = ("size", "depth", "text")

    def __init__(self, size: int, depth: int, text: str | None = None) -> None:
        self.size, self.depth, self.text = size, depth, text


class _Bounds:
    """Vetting semantics: every value is a :class:`_Node`; nothing is built or called."""

    def __init__(self) -> None:
        self.expanded = 0

    def leaf(self, op: _Op) -> _Node:
        return _Node(1, 0, op.arg if isinstance(op.arg, str) else None)

    def text(self, value: _Node) -> str | None:
        return value.text

    def global_(self, module: str, name: str) -> _Node:
        if (module, name) not in _GLOBALS:
            raise UnsafePickleError(
                f"refused global {module + '.' + name!r}: only numpy's array constructors are allowed"
            )
        return _Node(1, 0)

    def container(self, kind: str, items: list[_Node]) -> _Node:
        node = _Node(1, 1)
        self.extend(node, kind, items)
        return node

    def extend(self, target: _Node, kind: str, items: list[_Node]) -> None:
        # Summing expanded sizes into one total bounds the building pass: it
        # copies a tuple's items (resolving them) only when they enter a list,
        # a dict or the result, and each such copy was counted here.
        self._count(items)
        target.size += sum(item.size for item in items)
        target.depth = max([target.depth, *(item.depth + 1 for item in items)])
        if target.depth > MAX_DEPTH:
            raise UnsafePickleError(f"containers nested deeper than {MAX_DEPTH} levels")

    def reduce(self, func: _Node, args: _Node) -> _Node:
        return _Node(1, 0)

    def build(self, target: _Node, state: _Node) -> _Node:
        return target

    def result(self, value: _Node) -> _Node:
        self._count([value])
        return value

    def _count(self, items: list[_Node]) -> None:
        self.expanded += sum(item.size for item in items)
        if self.expanded > MAX_EXPANDED:
            raise UnsafePickleError(f"containers expand to more than {MAX_EXPANDED} items (memo reuse)")


# --- pass 2: building, with proxies for numpy's constructors ---------------------------

class _Blob:
    """A byte string of the file, as a zero-copy view, and the Python type pickle would make of it."""

    __slots__ = ("view", "kind")

    def __init__(self, view: memoryview, kind: str) -> None:
        self.view, self.kind = view, kind

    def value(self) -> str | bytes | bytearray:
        if self.kind == "str":
            return str(self.view, "latin-1")
        return bytes(self.view) if self.kind == "bytes" else bytearray(self.view)


class _Pending:
    """A numpy array or dtype that BUILD has still to complete; ``value`` is None until then."""

    __slots__ = ("what", "finish", "value")

    def __init__(self, what: str, finish: Callable[[object], object]) -> None:
        self.what, self.finish, self.value = what, finish, None


class _Global:
    """An admitted global: its name (for messages) and the proxy that stands in for it."""

    __slots__ = ("name", "call")

    def __init__(self, name: str, call: Callable[[tuple, int], object]) -> None:
        self.name, self.call = name, call


class _Builder:
    """Building semantics: the values of the vetted opcodes, built through the proxies."""

    def __init__(self, data: bytes) -> None:
        self.view = memoryview(data)
        self.limit = len(data)

    def leaf(self, op: _Op) -> object:
        if op.name in _CONSTANTS:
            return _CONSTANTS[op.name]
        if op.name in _BLOB_KIND:
            offset, size = op.arg
            return _Blob(self.view[offset:offset + size], _BLOB_KIND[op.name])
        return op.arg

    def text(self, value: object) -> str | None:
        return value if type(value) is str else None

    def global_(self, module: str, name: str) -> _Global:
        return _GLOBALS[(module, name)]

    def container(self, kind: str, items: list) -> object:
        if kind == "tuple":
            # Tuples stay unresolved: they are the arguments and states that
            # the proxies read, and raw array data must stay a view.
            return tuple(items)
        target: list | dict = [] if kind == "list" else {}
        self.extend(target, kind, items)
        return target

    def extend(self, target: object, kind: str, items: list) -> None:
        if kind == "list":
            if type(target) is not list:
                raise UnsafePickleError("expected a list to append to")
            target.extend(_resolve(item) for item in items)
            return
        if type(target) is not dict:
            raise UnsafePickleError("expected a dict to set items in")
        for key, value in zip(items[::2], items[1::2]):
            target[_key(_resolve(key))] = _resolve(value)

    def reduce(self, func: object, args: object) -> object:
        if type(func) is not _Global:
            raise UnsafePickleError("only numpy's array constructors may be called")
        if type(args) is not tuple:
            raise UnsafePickleError(f"{func.name} needs its arguments as a tuple")
        try:
            return func.call(args, self.limit)
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{func.name}: {err}") from None

    def build(self, target: object, state: object) -> object:
        if type(target) is not _Pending or target.value is not None:
            raise UnsafePickleError("only a new numpy array or dtype takes state")
        try:
            target.value = target.finish(state)
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{target.what} state: {err}") from None
        return target

    def result(self, value: object) -> object:
        return _resolve(value)


def _resolve(value: object) -> object:
    """Turn the building pass's stand-ins into what pickle would have returned."""
    if type(value) is _Blob:
        return value.value()
    if type(value) is _Pending:
        if value.value is None:
            raise UnsafePickleError(f"{value.what} used before BUILD gave it state")
        return value.value
    if type(value) is _Global:
        raise UnsafePickleError(f"{value.name} may only be called, not stored")
    if type(value) is tuple:
        return tuple(_resolve(item) for item in value)  # recursion bounded by MAX_DEPTH
    return value


def _key(key: object) -> object:
    # Scalar keys only: hashing one then costs its length, never a walk of a structure.
    if type(key) not in (str, bytes, int, float, bool, type(None)):
        raise UnsafePickleError(f"dict keys must be strings or numbers, got {type(key).__name__}")
    return key


# --- the proxies and the checks they share ---------------------------------------------

def _refuse_ndarray(args: tuple, limit: int) -> object:
    raise UnsafePickleError("an array made without data is refused; numpy pickles pass it to _reconstruct")


def _empty_bytes(args: tuple, limit: int) -> _Blob:
    """``bytes()``: Python 3 writes empty bytes (an empty array's data) so in protocol 2."""
    if args != ():
        raise UnsafePickleError("only bytes() without arguments is allowed")
    return _Blob(memoryview(b""), "bytes")


def _reconstruct(args: tuple, limit: int) -> _Pending:
    """``_reconstruct(ndarray, (0,), b'b')``: the empty array that BUILD then fills."""
    if not (len(args) == 3 and args[0] is _NDARRAY and _ints(args[1]) == (0,)
            and type(args[2]) is _Blob and args[2].view == b"b"):
        raise UnsafePickleError("expected the arguments (numpy.ndarray, (0,), b'b')")
    return _Pending("numpy array", lambda state: _array_from_state(state, limit))


def _array_from_state(state: object, limit: int) -> np.ndarray:
    """``(1, shape, dtype, is_fortran, data)``, as ``ndarray.__reduce__`` writes it."""
    if type(state) is not tuple or len(state) != 5 or not _same(state[0], 1):
        raise UnsafePickleError("expected (1, shape, dtype, is_fortran, data)")
    _, shape, dtype, fortran, raw = state
    if not any(_same(fortran, flag) for flag in (False, True, 0, 1)):
        raise UnsafePickleError(f"is_fortran must be True or False, got {_show(fortran)}")
    return _array(_raw(raw), _dtype_of(dtype), _shape(shape, limit), "F" if fortran else "C")


def _frombuffer(args: tuple, limit: int) -> np.ndarray:
    """``_frombuffer(data, dtype, shape, order[, axis_order])``, as protocol 5 writes arrays."""
    if len(args) not in (4, 5):
        raise UnsafePickleError("expected (data, dtype, shape, order[, axis_order])")
    raw = _raw(args[0], kinds=("bytes", "bytearray"))
    shape = _shape(args[2], limit)
    order = args[3] if type(args[3]) is str else None
    axes = _ints(args[4]) if len(args) == 5 else None
    if len(args) == 4 and order in ("C", "F"):
        return _array(raw, _dtype_of(args[1]), shape, order)
    # Order "K" stores a transposed array in its memory order, with the axes to restore.
    if order == "K" and axes is not None and sorted(axes) == list(range(len(shape))):
        return _array(raw, _dtype_of(args[1]), shape, "C").transpose(axes)
    raise UnsafePickleError(f"expected order 'C' or 'F', or 'K' with an axis order, got {_show(args[3])}")


def _dtype(args: tuple, limit: int) -> _Pending:
    """``dtype(code, False, True)`` for a plain float or integer code; BUILD sets its byte order."""
    code = _text(args[0]) if len(args) == 3 else None
    if code not in DTYPE_CODES or not (_flag(args[1], False) and _flag(args[2], True)):
        raise UnsafePickleError(
            f"expected (code, False, True) with code one of {sorted(DTYPE_CODES)}, got {_show(args)}"
        )
    return _Pending(f"numpy dtype {code!r}", lambda state: _dtype_from_state(code, state))


def _dtype_from_state(code: str, state: object) -> np.dtype:
    """``(3, byteorder, None, None, None, -1, -1, 0)``: no fields, no subarray, no object flags."""
    plain = (None, None, None, -1, -1, 0)
    if not (type(state) is tuple and len(state) == 8 and _same(state[0], 3)
            and all(_same(got, want) for got, want in zip(state[2:], plain))):
        raise UnsafePickleError(f"expected (3, byteorder, None, None, None, -1, -1, 0), got {_show(state)}")
    order = _text(state[1])
    if order not in ("<", ">", "=", "|"):
        raise UnsafePickleError(f"byte order must be '<', '>', '=' or '|', got {_show(state[1])}")
    return np.dtype(order + code)


def _encode(args: tuple, limit: int) -> _Blob:
    """``_codecs.encode(text, 'latin1')``: how Python 3 writes bytes in protocol 2."""
    if not (len(args) == 2 and type(args[0]) is str and _text(args[1]) in ("latin1", "latin-1")):
        raise UnsafePickleError("only encode(text, 'latin1') is allowed")
    try:
        return _Blob(memoryview(args[0].encode("latin-1")), "bytes")
    except UnicodeEncodeError:
        raise UnsafePickleError("text beyond latin-1") from None


def _array(raw: memoryview, dtype: np.dtype, shape: tuple[int, ...], order: str) -> np.ndarray:
    """An array over ``raw``, which must hold exactly ``shape`` x ``dtype``'s bytes."""
    count = math.prod(shape)
    if count * dtype.itemsize != len(raw):
        raise UnsafePickleError(
            f"shape {shape} of {dtype} needs {count * dtype.itemsize} bytes of data, found {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype, count=count)
    # A view of the file's bytes costs no copy, but keeps all of them alive:
    # keep one only for an array that is most of the file (DEAP's 'data'),
    # and only when aligned, as numpy's fast loops need.
    if not array.flags.aligned or 2 * len(raw) < len(raw.obj):
        array = array.copy()
        array.flags.writeable = False
    return array.reshape(shape, order=order)


def _raw(value: object, kinds: tuple[str, ...] = ("str", "bytes")) -> memoryview:
    if type(value) is not _Blob or value.kind not in kinds:
        raise UnsafePickleError(f"expected array data as a byte string, got {_show(value)}")
    return value.view


def _dtype_of(value: object) -> np.dtype:
    if type(value) is not _Pending or not isinstance(value.value, np.dtype):
        raise UnsafePickleError(f"expected a numpy dtype, got {_show(value)}")
    return value.value


def _shape(value: object, limit: int) -> tuple[int, ...]:
    """A shape whose sizes multiply (zeros left out) to no more than the file's length.

    Leaving zeros out matters: numpy refuses ``(0, 2**62, 2**62)`` too, and
    such a shape asks for no data to match its length against.
    """
    shape = _ints(value)
    if (shape is None or len(shape) > MAX_NDIM or any(n < 0 for n in shape)
            or math.prod(n for n in shape if n) > limit):
        raise UnsafePickleError(
            f"shape must be up to {MAX_NDIM} sizes multiplying to at most {limit} (the file's length), "
            f"got {_show(value)}"
        )
    return shape


def _ints(value: object) -> tuple[int, ...] | None:
    """``value`` if it is a tuple of plain ints, else None."""
    if type(value) is tuple and all(type(n) is int for n in value):
        return value
    return None


def _text(value: object) -> str | None:
    """Short text, whether written as Python 3 ``str`` or as Python 2 ``str`` (latin-1)."""
    if type(value) is str:
        return value
    if type(value) is _Blob and value.kind == "str" and len(value.view) <= 64:
        return value.value()
    return None


def _flag(value: object, expected: bool) -> bool:
    # numpy writes False/True; Python 2's numpy wrote 0/1.
    return _same(value, expected) or _same(value, int(expected))


def _same(value: object, expected: object) -> bool:
    """Equal and of the same type, so a hostile value's ``__eq__`` is never asked."""
    return type(value) is type(expected) and value == expected


def _show(value: object, nested: bool = False) -> str:
    """A short, one-line description of a value for an error message."""
    if type(value) is tuple and not nested:
        return "(" + ", ".join(_show(item, nested=True) for item in value[:8]) + (", ...)" if len(value) > 8 else ")")
    if type(value) in (_Blob, _Pending, _Global):
        return type(value).__name__.lstrip("_").lower()
    if type(value) in (int, float, bool, str, type(None)):
        text = ascii(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


_NDARRAY = _Global("numpy.ndarray", _refuse_ndarray)
_GLOBALS: dict[tuple[str, str], _Global] = {
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Global("numpy.dtype", _dtype),
    ("_codecs", "encode"): _Global("_codecs.encode", _encode),
    **{(module, "bytes"): _Global("bytes", _empty_bytes) for module in ("__builtin__", "builtins")},
    # numpy 2 moved numpy.core to numpy._core; DEAP's files name the old module.
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _Global("numpy.core.multiarray._reconstruct", _reconstruct)
       for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _Global("numpy.core.numeric._frombuffer", _frombuffer)
       for core in ("core", "_core")},
}
