"""Pass 2, building: the vetted opcodes run with proxies for numpy's constructors.

The proxies accept only the state numpy writes for plain float and integer
arrays and build each array with ``np.frombuffer`` over the file's own bytes.
"""

from __future__ import annotations

import math
import mmap
from collections.abc import Callable

import numpy as np

from mkdbook.data.readers.safe_pickle.limits import DTYPE_CODES, MAX_NDIM, UnsafePickleError
from mkdbook.data.readers.safe_pickle.opcodes import _BLOB_KIND, _CONSTANTS, _Op


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

    def __init__(self, data: bytes | mmap.mmap, aligned: bool = True) -> None:
        self.view = memoryview(data)
        self.limit = len(data)
        self.aligned = aligned

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
            return self._settle(func.call(args, self.limit))
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{func.name}: {err}") from None

    def build(self, target: object, state: object) -> object:
        if type(target) is not _Pending or target.value is not None:
            raise UnsafePickleError("only a new numpy array or dtype takes state")
        try:
            target.value = self._settle(target.finish(state))
        except UnsafePickleError as err:
            raise UnsafePickleError(f"{target.what} state: {err}") from None
        return target

    def _settle(self, value: object) -> object:
        """Copy a misaligned view of the file, as numpy's and torch's fast paths need, unless told not to.

        A caller that reads the array once (the segment cache casts it to
        float32) saves the copy: numpy reduces and casts misaligned data
        about as fast.
        """
        if self.aligned and type(value) is np.ndarray and not value.flags.aligned:
            value = np.array(value, order="K")
            value.flags.writeable = False
        return value

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
    # keep one only for an array that is most of the file (DEAP's 'data').
    # (The builder copies a misaligned one, unless told not to.)
    if 2 * len(raw) < len(raw.obj):
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
