"""Showing the package's own code in a chapter: the source that runs, highlighted.

A chapter that teaches a piece of the package displays it with :func:`show`
(re-exported by :mod:`mkdbook.book.chapter`), so what the reader sees is read from
the installed package, never a copy pasted into the notebook.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from IPython.display import Code

__all__ = ["show"]


def show(obj: Any, *, docstring: bool = True) -> Code:
    """Return the source code of a function, class, method or module, highlighted.

    The code is read from the installed package with
    :func:`inspect.getsource`, so what a chapter shows is what runs. A method
    is dedented so that it starts at column 0.

    Parameters
    ----------
    obj : function, class, method, property or module
        What to show. A property shows its getter.
    docstring : bool, default True
        Keep the object's own docstring. With ``False`` it is removed, located
        by parsing the source (:mod:`ast`), and everything else is shown as
        written, comments and blank lines included; docstrings of nested
        functions and of a class's methods stay. A body that held only the
        docstring becomes ``...``.

    Returns
    -------
    IPython.display.Code
        Displays as syntax-highlighted Python in a notebook; its ``data``
        attribute is the source text.

    Raises
    ------
    TypeError
        If ``obj`` has no source code (a built-in, a :func:`functools.partial`).
    OSError
        If its source file cannot be read.
    """
    from IPython.display import Code

    if isinstance(obj, property):
        obj = obj.fget
    source = textwrap.dedent(inspect.getsource(obj))
    if not docstring:
        source = _drop_docstring(source, module=inspect.ismodule(obj))
    return Code(source, language="python")


def _drop_docstring(source: str, *, module: bool = False) -> str:
    """Remove the docstring of the definition (or the module) ``source`` holds.

    The docstring is found with :mod:`ast`; positions come from its node, in
    UTF-8 bytes as :mod:`ast` reports columns.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:  # a fragment (a lambda on its line) has no docstring of its own
        return source
    owner: ast.AST = tree if module else tree.body[0] if tree.body else tree
    if not isinstance(owner, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return source
    if ast.get_docstring(owner, clean=False) is None:
        return source
    doc = owner.body[0]
    only = len(owner.body) == 1
    lines = source.splitlines(keepends=True)
    first, last = doc.lineno - 1, doc.end_lineno - 1
    head = lines[first].encode()[: doc.col_offset].decode()
    tail = lines[last].encode()[doc.end_col_offset :].decode()
    if not head.strip() and (not tail.strip() or tail.lstrip().startswith("#")):
        # The usual layout: the docstring fills lines of its own. Drop them and
        # the blank lines after them, or leave `...` where nothing else follows.
        if only and not module:
            return "".join(lines[:first] + [f"{head}...\n"] + lines[last + 1 :])
        end = last + 1
        while end < len(lines) and not lines[end].strip():
            end += 1
        return "".join(lines[:first] + lines[end:])
    # The docstring shares a line with the signature or with other statements.
    data = source.encode()
    line_starts = np.cumsum([0] + [len(line.encode()) for line in lines])
    begin = int(line_starts[first]) + doc.col_offset
    end = int(line_starts[last]) + doc.end_col_offset
    if only:
        return (data[:begin] + b"..." + data[end:]).decode()
    separator = re.match(rb"[ \t]*;[ \t]*", data[end:])
    if separator:
        end += separator.end()
    return (data[:begin] + data[end:]).decode()
