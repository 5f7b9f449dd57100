"""The package's structure: no import cycles, and the layers import only downwards.

Imports are read from the source with :mod:`ast`, at any depth (imports
inside functions included, and modules named by a string in a module that
calls ``importlib.import_module``), so a cycle that is only hidden by a lazy
import still counts: it means two modules each need the other.
"""

from __future__ import annotations

import ast
import io
import tokenize
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import mkdbook

PACKAGE = Path(mkdbook.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_import_module(function: ast.expr) -> bool:
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    return name == "import_module"


@cache
def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its source)."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name if is_package else name.rpartition(".")[0]
        targets: set[str] = set()
        nodes = list(ast.walk(ast.parse(path.read_text(), str(path))))
        if any(isinstance(node, ast.Call) and _is_import_module(node.func) for node in nodes):
            targets.update(node.value for node in nodes
                           if isinstance(node, ast.Constant) and isinstance(node.value, str))
        for node in nodes:
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                    base = f"{anchor}.{base}" if base else anchor
                # ``from package import name`` imports the submodule when there is one.
                targets.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                               for alias in node.names)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def find_cycles(graph: dict[str, set[str]], within: Iterable[str] | None = None) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), restricted to ``within``."""
    nodes = set(graph) if within is None else set(within)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node] & nodes):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return cycles


def reachable(start: str) -> set[str]:
    """Every module of the package that importing ``start`` may import, directly or not."""
    graph, seen, todo = import_graph(), set(), [start]
    while todo:
        for target in graph[todo.pop()] - seen:
            seen.add(target)
            todo.append(target)
    return seen


def _in(layer: str, module: str) -> bool:
    return module == layer or module.startswith(f"{layer}.")


def test_the_graph_sees_lazy_and_package_imports():
    graph = import_graph()
    assert "mkdbook.data.simulate.cohort" in graph["mkdbook.data.simulate"]
    assert "mkdbook.data.simulate" in graph["mkdbook.book.chapter"]  # imported inside a function
    assert "mkdbook.distillation.teaching" in graph["mkdbook.experiments.methods"]


def test_no_module_imports_by_name_or_registers_by_side_effect():
    for path in PACKAGE.rglob("*.py"):
        assert "importlib" not in path.read_text(), path


#: The layers, lowest first, one row per subpackage (or top-level module): a
#: module imports only from its own layer or below. A module belongs to the
#: layer of the subpackage that holds it, so adding a module never needs a new
#: row here; only a new subpackage does.
LAYERS: tuple[str, ...] = (
    "mkdbook.core",
    "mkdbook.data",
    "mkdbook.splits",
    "mkdbook.models",
    "mkdbook.analysis",
    "mkdbook.training",
    "mkdbook.distillation",
    "mkdbook.sweeps",
    "mkdbook.experiments",
    "mkdbook.deploy",
    "mkdbook.book",
    "mkdbook.cli",
)

#: Most modules of the package live in a subpackage; the top level keeps a few.
MAX_TOP_LEVEL_MODULES = 8

#: Code lines a module may have (docstrings, comments and blank lines not
#: counted, so documentation is free to grow). Past it, split by concept.
MAX_CODE_LINES = 300


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the layer that holds ``module`` (the package's ``__init__`` is below all)."""
    if module == "mkdbook":
        return -1
    matches = [rank for rank, name in enumerate(LAYERS) if _in(name, module)]
    assert matches, f"{module} is in no layer: a new subpackage needs a row in LAYERS"
    return matches[0]


def test_every_subpackage_and_top_level_module_has_a_layer():
    top = {f"mkdbook.{path.stem}" for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    top |= {f"mkdbook.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py")}
    assert top == set(LAYERS)
    assert len([path for path in PACKAGE.glob("*.py")]) <= MAX_TOP_LEVEL_MODULES


def test_layers_import_only_downwards():
    upward = [(module, target) for module, targets in import_graph().items() for target in targets
              if layer_of(target) > layer_of(module)]
    assert upward == []


def code_lines(source: str) -> int:
    """Lines that hold code: not blank, not only a comment, not part of a docstring."""
    tree = ast.parse(source)
    documentation: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            first = node.body[0] if node.body else None
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                documentation.update(range(first.lineno, first.end_lineno + 1))
    lines: set[int] = set()
    skipped = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
               tokenize.ENDMARKER}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in skipped:
            lines.update(line for line in range(token.start[0], token.end[0] + 1) if line not in documentation)
    return len(lines)


def test_code_lines_count_code_only():
    source = '''"""A module docstring
over two lines."""

# a comment
def f(x):
    """Its docstring."""
    return (x +
            1)  # a trailing comment
'''
    assert code_lines(source) == 3


def test_modules_are_short():
    # One job per module; stats.py is a leaf whose length is documentation.
    long = {str(path.relative_to(PACKAGE)): n for path in PACKAGE.rglob("*.py")
            if (n := code_lines(path.read_text())) > MAX_CODE_LINES and path.name != "stats.py"}
    assert long == {}


def test_no_import_cycles_in_data_and_models():
    lower = [m for m in import_graph() if _in("mkdbook.data", m) or _in("mkdbook.models", m)]
    assert find_cycles(import_graph(), lower) == []


def test_no_import_cycles():
    assert find_cycles(import_graph()) == []


def test_network_modules_do_not_import_data():
    for module in (m for m in import_graph() if _in("mkdbook.models", m)):
        assert not [m for m in reachable(module) if _in("mkdbook.data", m)], module


def test_data_layer_imports_nothing_above_it():
    allowed = ("mkdbook.data", "mkdbook.core")
    for module in (m for m in import_graph() if _in("mkdbook.data", m)):
        above = sorted(m for m in reachable(module) if m != "mkdbook" and not any(_in(a, m) for a in allowed))
        assert above == [], module


def test_shared_docstring_paragraphs_are_filled():
    from mkdbook.core.docstrings import docdict, fill_doc
    from mkdbook.models import Teacher, build_model

    for documented in (Teacher, build_model):
        assert "%(" not in documented.__doc__ and docdict["n_times"].splitlines()[1].strip() in documented.__doc__

    def example():
        """Do something.

        Parameters
        ----------
        %(sfreq)s
        """

    filled = fill_doc(example).__doc__
    assert "        sfreq : float\n            Sampling rate in Hz." in filled
