"""Crafted DEAP files: the reader loads what numpy and DEAP write and refuses the rest in one line.

Every hostile file is built here, opcode by opcode, and each is refused
through the reader's real entry point with :class:`DeapFormatError` naming the
file, within :data:`QUICK` seconds. Valid pickles of small arrays go through
:func:`mkdbook.data.readers.safe_pickle.loads`; a full-size Python-2 style file and a
protocol-5 file go through :func:`read_subject_file`.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import deap_dict
from mkdbook.data import DeapFormatError, find_subject_files, read_subject_file
from mkdbook.data.readers.safe_pickle import MAX_DEPTH, MAX_OPCODES, loads

#: Seconds within which any file must be refused. The attacks hang, crash or run
#: for hours; a refusal takes well under a second, and the margin is for shared,
#: loaded machines, where a timing test must not fail by chance.
QUICK = 30.0
DEAP_SHAPE = (40, 40, 8064)

# --- writing pickles opcode by opcode -----------------------------------------------

PROTO2 = b"\x80\x02"
DTYPE_STATE_TAIL = b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"  # None, None, None, -1, -1, 0)


def py2_str(text: str | bytes) -> bytes:
    """A Python 2 ``str``: SHORT_BINSTRING or BINSTRING, as cPickle writes it."""
    raw = text.encode("latin-1") if isinstance(text, str) else text
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw
    return b"T" + struct.pack("<I", len(raw)) + raw


def py_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    if -(2**31) <= value < 2**31:
        return b"J" + struct.pack("<i", value)
    return long1(value)


def long1(value: int) -> bytes:
    """A Python 2 ``long``."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def int_tuple(values: tuple[int, ...]) -> bytes:
    return b"(" + b"".join(py_int(v) for v in values) + b"t"


def dtype_call(code: str) -> bytes:
    """``numpy.dtype(code, 0, 1)``, as Python 2's numpy wrote it."""
    return glob("numpy", "dtype") + py2_str(code) + b"K\x00K\x01\x87R"


def dtype_part(code: str, state: bytes | None = None, endian: str = "<") -> bytes:
    """:func:`dtype_call` and BUILD with ``state`` (written as opcodes) or numpy's own."""
    state = state if state is not None else b"(K\x03" + py2_str(endian) + DTYPE_STATE_TAIL
    return dtype_call(code) + state + b"b"


def array_part(shape: tuple[int, ...], dtype: bytes, raw: bytes, fortran: bool = False) -> bytes:
    """``_reconstruct(ndarray, (0,), 'b')`` and BUILD ``(1, shape, dtype, fortran, raw)``, memoized like cPickle."""
    return (glob("numpy.core.multiarray", "_reconstruct") + b"q\x01" + glob("numpy", "ndarray")
            + b"K\x00\x85" + py2_str("b") + b"\x87R" + b"q\x02"
            + b"(K\x01" + int_tuple(shape) + dtype + (b"\x88" if fortran else b"\x89") + py2_str(raw) + b"tb")


def py2_array(array: np.ndarray) -> bytes:
    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    code = array.dtype.str
    return array_part(array.shape, dtype_part(code[1:], endian=code[0]), array.tobytes(order="A"), fortran)


def py2_dict(items: dict[str, bytes]) -> bytes:
    """A protocol-2 pickle of a dict whose values are already written as opcodes."""
    return PROTO2 + b"}q\x00(" + b"".join(py2_str(k) + v for k, v in items.items()) + b"u."


def deap_py2_pickle(content: dict[str, np.ndarray]) -> bytes:
    """A subject file as DEAP's Python 2 wrote it."""
    return py2_dict({key: py2_array(value) for key, value in content.items()})


# --- checking a refusal ----------------------------------------------------------------

def refused(tmp_path: Path, payload: bytes, match: str, name: str = "s01.dat") -> DeapFormatError:
    """Write ``payload`` as a subject file and check the reader refuses it quickly, in one line naming it."""
    path = tmp_path / name
    path.write_bytes(payload)
    start = time.perf_counter()
    with pytest.raises(DeapFormatError, match=match) as caught:
        read_subject_file(path)
    assert time.perf_counter() - start < QUICK
    assert_one_line_naming(caught.value, path)
    return caught.value


def assert_one_line_naming(error: Exception, path: Path) -> None:
    message = str(error)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message and len(message) < 400


# --- files that must load ----------------------------------------------------------------

SMALL_ARRAYS = {
    "f8": np.arange(6, dtype=np.float64).reshape(2, 3) / 7,
    "f4_fortran": np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
    "big_endian": np.arange(10, dtype=">f8") - 4.5,
    "int": np.arange(-3, 3, dtype=np.int16).reshape(3, 2),
    "transposed": np.arange(24.0).reshape(2, 3, 4).transpose(1, 0, 2),
    "strided": np.arange(24.0).reshape(2, 3, 4)[:, ::2],
    "empty": np.zeros((0, 3)),
}


def assert_same_arrays(loaded: dict, original: dict) -> None:
    assert set(loaded) == set(original)
    for key, value in original.items():
        assert loaded[key].dtype == value.dtype, key
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_pickles_of_protocols_2_to_5_load(protocol):
    content = {**SMALL_ARRAYS, "list": [1, 2.5, "x"], "nested": {"t": (1, None, True)}}
    loaded = loads(pickle.dumps(content, protocol=protocol))
    assert_same_arrays({k: loaded[k] for k in SMALL_ARRAYS}, SMALL_ARRAYS)
    assert loaded["list"] == [1, 2.5, "x"] and loaded["nested"] == {"t": (1, None, True)}


def test_python2_style_pickles_of_small_arrays_load():
    assert_same_arrays(loads(deap_py2_pickle(SMALL_ARRAYS)), SMALL_ARRAYS)


def test_misaligned_views_are_copied_unless_asked_for():
    # Keys of 1 to 8 characters shift the array's bytes through every alignment.
    big = np.arange(4096.0)
    alignments = set()
    for length in range(1, 9):
        payload = deap_py2_pickle({"k" * length: big})
        copied, kept = loads(payload)["k" * length], loads(payload, aligned=False)["k" * length]
        assert copied.flags.aligned and not kept.flags.owndata and not kept.flags.writeable
        np.testing.assert_array_equal(kept, big)
        np.testing.assert_array_equal(copied, big)
        alignments.add(kept.flags.aligned)
    assert alignments == {True, False}


def test_reader_loads_a_python2_deap_file(tmp_path):
    original = deap_dict(5, dtype=np.float64)
    path = tmp_path / "s05.dat"
    path.write_bytes(deap_py2_pickle(original))
    recording = read_subject_file(path)
    assert recording.subject == 5
    assert_same_arrays({"data": recording.data, "labels": recording.labels}, original)


def test_reader_loads_a_protocol_5_file(tmp_path):
    original = deap_dict(3)
    path = tmp_path / "s03.dat"
    path.write_bytes(pickle.dumps(original, protocol=5))
    recording = read_subject_file(path)
    assert_same_arrays({"data": recording.data, "labels": recording.labels}, original)


# --- class 1: forged dtype state (memory corruption in numpy) -----------------------------

def _f8() -> bytes:
    return dtype_part("f8")


FORGED_DTYPES = {
    # The refcount flags (0x3f) would make numpy treat 8 bytes of data as a PyObject*.
    "refcount flags": dtype_part("f8", b"(K\x03U\x01<NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t"),
    # (3, '<', None, ('a',), {'a': (dtype, 0)}, 8, 8, flags): a float64 whose one field holds objects.
    "object field in a float64": dtype_part(
        "f8", b"(K\x03U\x01<NU\x01a\x85}(U\x01a(" + dtype_call("O8") + b"K\x00tuK\x08K\x08K?t"),
    "fields": dtype_part("f8", b"(K\x03U\x01<NU\x01a\x85}(U\x01a(" + _f8() + b"K\x00tuK\x08K\x08K\x00t"),
    "subarray": dtype_part("f8", b"(K\x03U\x01<(" + _f8() + b"K\x02\x85tNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"),
    "element size": dtype_part("f8", b"(K\x03U\x01<NNNK\x10J\xff\xff\xff\xffK\x00t"),
    "structured code": dtype_part("V8"),
    "object code": dtype_part("O"),
    "odd byte order": dtype_part("f8", endian="!"),
    "unbuilt": dtype_call("f8"),
}


@pytest.mark.parametrize("forged", FORGED_DTYPES.values(), ids=list(FORGED_DTYPES))
def test_forged_dtype_states_are_refused(tmp_path, forged):
    payload = py2_dict({"data": array_part((1,), forged, b"\x00" * 8)})
    refused(tmp_path, payload, r"not a DEAP pickle \(.*(dtype|expected|BUILD)")


def test_numpys_own_pickle_of_an_object_field_is_refused(tmp_path):
    payload = pickle.dumps({"data": np.zeros(2, dtype=[("a", "O"), ("b", "f8")])}, protocol=2)
    refused(tmp_path, payload, r"numpy\.dtype: expected \(code, False, True\)")


# --- class 2: small files that hang, crash or exhaust memory ---------------------------------

def test_tuple_dag_memo_bomb_is_refused_quickly(tmp_path):
    # A dict key holding a tuple of 2**64 leaves in 332 bytes: hashing it would never end.
    key = b")" + b"q\x01h\x01\x86" * 64
    refused(tmp_path, PROTO2 + b"}(" + key + b"Nu.", r"expand to more than")


@pytest.mark.parametrize(
    ("nesting", "match"),
    [
        (b")" + b"\x85" * 300_000, rf"deeper than {MAX_DEPTH}"),
        (b"(" * 300_000, rf"deeper than {MAX_DEPTH}"),
        (b"]" * 1000 + b"a" * 999, rf"deeper than {MAX_DEPTH}"),
        # 300,000 lists are opened before the first is nested: the opcode count stops them.
        (b"]" * 300_000 + b"a" * 299_999, rf"more than {MAX_OPCODES} opcodes"),
    ],
    ids=["tuples", "marks", "lists", "300000 lists"],
)
def test_deep_nesting_is_refused(tmp_path, nesting, match):
    refused(tmp_path, PROTO2 + nesting + b".", match)


HUGE = 10**12
HUGE_ALLOCATIONS = {
    "ndarray(shape)": (glob("numpy", "ndarray") + b"(" + long1(HUGE) + b"\x85tR", "made without data"),
    "_reconstruct(huge shape)": (
        glob("numpy.core.multiarray", "_reconstruct") + b"(" + glob("numpy", "ndarray")
        + long1(HUGE) + b"\x85" + py2_str("b") + b"tR", r"expected the arguments \(numpy\.ndarray, \(0,\), b'b'\)"),
    "BUILD(huge shape)": (array_part((HUGE, HUGE), dtype_part("f8"), b""), "shape must be"),
    "BUILD(huge empty shape)": (array_part((0, HUGE, HUGE), dtype_part("f8"), b""), "shape must be"),
    "object array": (array_part((HUGE,), dtype_part("O8"), b""), r"numpy\.dtype: expected \(code"),
    "_frombuffer(huge shape)": (
        glob("numpy._core.numeric", "_frombuffer") + b"(C\x00" + dtype_part("f8")
        + b"(" + long1(HUGE) + b"K\x00tX\x01\x00\x00\x00CtR", "shape must be"),
    "long integer": (b"\x8a\xff" + b"\x01" * 255, "integer of 255 bytes"),
}


@pytest.mark.parametrize(("payload", "match"), HUGE_ALLOCATIONS.values(), ids=list(HUGE_ALLOCATIONS))
def test_huge_shapes_are_refused(tmp_path, payload, match):
    refused(tmp_path, py2_dict({"data": payload}), match)


def test_codecs_encode_chain_is_refused(tmp_path):
    # Each 'hex' doubles the text: 36 of them turn 1 KB into 64 TB.
    chain = glob("_codecs", "encode") + b"q\x01" + b"h\x01" * 35
    chain += b"X" + struct.pack("<I", 1024) + b"a" * 1024
    chain += b"X\x03\x00\x00\x00hex\x86R" * 36
    refused(tmp_path, py2_dict({"data": chain}), r"_codecs\.encode: only encode\(text, 'latin1'\)")


def test_data_free_ndarray_is_refused(tmp_path):
    payload = glob("numpy", "ndarray") + int_tuple(DEAP_SHAPE) + b"\x85R"
    refused(tmp_path, py2_dict({"data": payload}), r"numpy\.ndarray: an array made without data")


@pytest.mark.parametrize("size", [40, 56, 0])
def test_raw_data_of_the_wrong_length_is_refused(tmp_path, size):
    payload = array_part((2, 3), dtype_part("f8"), b"\x01" * size)
    refused(tmp_path, py2_dict({"data": payload}), rf"needs 48 bytes of data, found {size}")


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (PROTO2 + b"T\xff\xff\xff\xff" + b"x" * 10 + b".", r"truncated"),
        (PROTO2 + b"h\x07.", r"memo entry 7 was never stored"),
        (PROTO2 + b"(U\x01xo.", r"opcode OBJ at byte 6 is not allowed"),
        (PROTO2 + b"\x82\x01.", r"opcode EXT1"),
        (PROTO2 + b"P1\n.", r"opcode PERSID"),
        (b"\x80\x05\x97.", r"opcode NEXT_BUFFER"),
        (b"(lp0\n.", r"no PROTO opcode"),
        (PROTO2 + b"\x80\x02N.", r"protocol 2 to 5, once"),
        (PROTO2 + b"NN.", r"expected one value on the stack, found 2"),
        (PROTO2 + b"}K\x01s.", r"SETITEM at byte 5: the stack is empty"),
        (py2_dict({"data": array_part((1,), dtype_part("f8"), b"\x00" * 8) + b"(K\x01" + int_tuple((1,))
                   + dtype_part("f8") + b"\x89" + py2_str(b"\x00" * 8) + b"tb"}), r"only a new numpy array"),
        (py2_dict({"data": b"]" + glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray")
                   + b"K\x00\x85" + py2_str("b") + b"\x87Ra"}), r"numpy array used before BUILD"),
        (py2_dict({"data": glob("numpy", "dtype")}), r"numpy\.dtype may only be called"),
        (PROTO2 + b"}(K\x01\x85Nu.", r"dict keys must be strings or numbers"),
    ],
)
def test_malformed_opcode_streams_are_refused(tmp_path, payload, match):
    refused(tmp_path, payload, match)


# --- class 3: values a float32 cache cannot hold, and NaN -------------------------------------

def test_finite_values_beyond_float32_are_refused(tmp_path):
    content = {"data": np.zeros(DEAP_SHAPE), "labels": np.full((40, 4), 5.0)}
    content["data"][7, 3, 100] = -1e39
    refused(tmp_path, pickle.dumps(content, protocol=5), r"'data' holds values up to 1e\+39 in size, beyond float32")


def test_nan_is_refused(tmp_path):
    content = {"data": np.zeros(DEAP_SHAPE, np.float16), "labels": np.full((40, 4), 5.0)}
    content["labels"][2, 1] = np.nan
    refused(tmp_path, pickle.dumps(content, protocol=5), r"'labels' holds 1 NaN or infinite values")


# --- class 4: code named by the file is never run ------------------------------------------------

def test_globals_that_run_code_are_refused_and_never_run(tmp_path):
    marker = tmp_path / "pwned"
    system = glob("os", "system") + b"X" + struct.pack("<I", len(f"touch {marker}")) + f"touch {marker}".encode()
    refused(tmp_path, py2_dict({"data": system + b"\x85R"}), r"refused global 'os\.system'")
    code = f"open({str(marker)!r}, 'w')"
    evaluate = b"\x80\x04\x8c\x08builtins\x8c\x04eval\x93\x8c" + bytes([len(code)]) + code.encode() + b"\x85R."
    refused(tmp_path, evaluate, r"refused global 'builtins\.eval'")
    assert not marker.exists()


# --- class 5: names and paths that are not DEAP subject files ------------------------------------

@pytest.mark.parametrize("name", ["s00.dat", "s33.dat"])
def test_subject_numbers_outside_1_to_32_are_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(deap_py2_pickle({"labels": np.ones((40, 4))}))
    with pytest.raises(DeapFormatError, match="NN from 01 to 32") as caught:
        read_subject_file(path)
    assert_one_line_naming(caught.value, path)
    with pytest.raises(DeapFormatError, match="NN from 01 to 32") as caught:
        find_subject_files(tmp_path)
    assert_one_line_naming(caught.value, path)


def _refused_everywhere(folder: Path, match: str) -> None:
    """Both the file and the folder listing it are refused, quickly, in one line naming the file."""
    path = folder / "s01.dat"
    for attempt in (lambda: read_subject_file(path), lambda: find_subject_files(folder)):
        outcome: list[BaseException] = []
        # A thread, so that a reader that hangs (on a FIFO) fails this test instead of the run.
        worker = threading.Thread(target=lambda: _catch(attempt, outcome), daemon=True)
        worker.start()
        worker.join(QUICK)
        assert not worker.is_alive(), f"{path} made the reader hang"
        assert len(outcome) == 1 and isinstance(outcome[0], DeapFormatError), outcome
        assert_one_line_naming(outcome[0], path)
        assert re.search(match, str(outcome[0])), outcome[0]


def _catch(attempt, outcome: list) -> None:
    try:
        attempt()
    except BaseException as err:  # the test inspects whatever came out
        outcome.append(err)


def test_a_folder_named_like_a_subject_file_is_refused(tmp_path):
    (tmp_path / "s01.dat").mkdir()
    _refused_everywhere(tmp_path, "expected a regular file, found a folder")


def test_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "s01.dat")
    _refused_everywhere(tmp_path, "expected a regular file, found a FIFO")


def test_a_symlink_loop_is_refused(tmp_path):
    os.symlink("s01.dat", tmp_path / "s01.dat")
    _refused_everywhere(tmp_path, r"cannot be read \(Too many levels of symbolic links\)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_an_unreadable_file_is_refused(tmp_path):
    path = tmp_path / "s01.dat"
    path.write_bytes(deap_py2_pickle({"labels": np.ones((40, 4))}))
    path.chmod(0)
    try:
        with pytest.raises(DeapFormatError, match=r"cannot be read \(Permission denied\)") as caught:
            read_subject_file(path)
        assert_one_line_naming(caught.value, path)
    finally:
        path.chmod(0o600)
