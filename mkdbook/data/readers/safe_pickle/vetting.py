"""Pass 1, vetting: the stack machine run on sizes instead of values, so nothing is built or called."""

from __future__ import annotations

from mkdbook.data.readers.safe_pickle.building import _GLOBALS
from mkdbook.data.readers.safe_pickle.limits import MAX_DEPTH, MAX_EXPANDED, UnsafePickleError
from mkdbook.data.readers.safe_pickle.opcodes import _Op


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
