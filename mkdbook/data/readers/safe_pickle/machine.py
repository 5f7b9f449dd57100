"""The pickle stack machine shared by both passes; a :class:`_Semantics` says what its values are."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from mkdbook.data.readers.safe_pickle.limits import MAX_DEPTH, UnsafePickleError
from mkdbook.data.readers.safe_pickle.opcodes import _EMPTY, _LEAVES, _MARKED, _TUPLE_N, _Op


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
