"""Reading the opcode stream: the admitted opcodes and their arguments.

Every length an opcode gives is checked against the file before it is read.
"""

from __future__ import annotations

import mmap
import pickletools
import struct
from collections.abc import Iterator
from typing import NamedTuple

from mkdbook.data.readers.safe_pickle.limits import UnsafePickleError


# --- reading the opcode stream -------------------------------------------------

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


def _opcodes(data: bytes | mmap.mmap) -> Iterator[_Op]:
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


def _read_arg(kind: str, data: bytes | mmap.mmap, pos: int) -> tuple[object, int]:
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
            # Decoded from a view: slicing a memory map would first copy the text.
            return str(memoryview(data)[pos:end], "utf-8", "surrogatepass"), end
        except UnicodeDecodeError:
            raise UnsafePickleError(f"text at byte {pos} is not UTF-8") from None
    return (pos, size), end


def _take(data: bytes | mmap.mmap, pos: int, size: int) -> int:
    """Return ``pos + size`` if the file holds that many bytes from ``pos``."""
    if size > len(data) - pos:
        raise UnsafePickleError(
            f"truncated: {size} bytes expected at byte {pos}, the file ends at byte {len(data)}"
        )
    return pos + size


def _read_global(data: bytes | mmap.mmap, pos: int) -> tuple[tuple[str, str], int]:
    """Read GLOBAL's ``module\\nname\\n``; real names are short, so a line ends within 256 bytes."""
    parts = []
    for _ in range(2):
        end = data.find(b"\n", pos, pos + 256)
        if end < 0:
            raise UnsafePickleError(f"GLOBAL at byte {pos - 1} has no module and name lines")
        parts.append(data[pos:end].decode("ascii", "replace"))
        pos = end + 1
    return (parts[0], parts[1]), pos
