"""Docstrings parse as numpydoc, so the API page renders them as text, not raw reST.

A paragraph left under a section (for example after the last attribute)
becomes an entry whose *name* is that paragraph; numpydoc prints such names
verbatim, roles and literals included.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import warnings

import pytest
from numpydoc.docscrape import NumpyDocString

import mkdbook

NAMED_SECTIONS = ("Parameters", "Other Parameters", "Attributes", "Raises", "Warns", "Yields", "Receives")
ENTRY_NAME = re.compile(r"^\*{0,2}[A-Za-z_][\w.]*(, \*{0,2}[A-Za-z_][\w.]*)*$")


def _modules():
    for info in pkgutil.walk_packages(mkdbook.__path__, "mkdbook."):
        if not info.name.endswith("__main__"):  # importing it would run the command line
            yield importlib.import_module(info.name)


def _documented(module):
    yield module.__name__, module
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        yield f"{module.__name__}.{name}", obj
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_"):
                    continue
                if isinstance(member, (classmethod, staticmethod)):
                    member = member.__func__
                elif isinstance(member, property):
                    member = member.fget
                if inspect.isfunction(member):
                    yield f"{module.__name__}.{name}.{attr}", member


def _entries():
    for module in _modules():
        for where, obj in _documented(module):
            doc = inspect.getdoc(obj)
            if not doc:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # numpydoc warns about unknown sections
                parsed = NumpyDocString(doc)
            for section in NAMED_SECTIONS:
                for entry in parsed[section]:
                    yield where, section, entry.name


def test_every_section_entry_is_named_by_identifiers():
    stray = [f"{where} [{section}]: {name[:60]!r}" for where, section, name in _entries()
             if section not in ("Raises", "Warns") and not ENTRY_NAME.match(name)]
    assert not stray, "paragraphs parsed as section entries:\n" + "\n".join(stray)


def test_the_check_catches_a_paragraph_after_the_last_attribute():
    doc = "Summary.\n\nAttributes\n----------\nx : int\n    A value.\n\nA closing remark (see :func:`f`).\n"
    names = [entry.name for entry in NumpyDocString(doc)["Attributes"]]
    assert any(not ENTRY_NAME.match(name) for name in names)


@pytest.mark.parametrize("name", ["x", "a, b", "**kwargs", "student, teacher, **kwargs"])
def test_plain_entry_names_pass(name):
    assert ENTRY_NAME.match(name)


# What TeX written with one backslash in a plain string becomes: "\theta" a tab,
# "\beta" a backspace, "\rho" a carriage return, "\alpha" a bell, "\frac" a form feed.
CONTROL = re.compile(r"[\a\b\t\r\v\f]")


def _raw_docstrings():
    for module in _modules():
        for where, obj in _documented(module):
            if isinstance(doc := getattr(obj, "__doc__", None), str):
                yield where, doc


def test_no_docstring_holds_the_control_character_of_a_single_backslash():
    found = [f"{where}: {doc[max(0, m.start() - 30):m.end() + 10]!r}"
             for where, doc in _raw_docstrings() if (m := CONTROL.search(doc))]
    assert not found, "write TeX in docstrings with a double backslash:\n" + "\n".join(found)


def test_the_control_character_check_catches_a_single_backslash_theta():
    assert CONTROL.search(":math:`\theta`") and not CONTROL.search(":math:`\\theta`")


SECTION_HEADING = re.compile(r"^(\S[^\n]*)\n-{3,}$", re.MULTILINE)


def _module_sections(text: str) -> list[str]:
    return SECTION_HEADING.findall(inspect.cleandoc(text or ""))


def test_module_docstrings_have_no_section_that_repeats_on_the_api_page():
    # The API page renders every module docstring of a chapter on one page, as
    # reST: a "References" section in two of them is one section ID twice, and
    # the -W build fails. Modules cite their works in a plain list instead.
    offenders = {module.__name__: sections for module in _modules()
                 if (sections := [s for s in _module_sections(module.__doc__) if s in ("References", "Notes")])}
    assert offenders == {}


def test_the_module_section_check_catches_a_references_section():
    assert _module_sections("Summary.\n\nReferences\n----------\n.. [A] A work.\n") == ["References"]
