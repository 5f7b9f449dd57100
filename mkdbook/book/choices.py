"""A configuration's choices, read from its own docstring: each field, its value, and why.

Every configuration of the package is a frozen dataclass whose numpydoc
``Attributes`` section says what each field does and, from the word
"Default" on, why its default is what it is. :func:`config_choices` reads
that section (with :mod:`numpydoc.docscrape`, from the ``book`` extra) so a
chapter can tabulate the choices without restating them: the table changes
when the docstring does.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

__all__ = ["Choice", "attribute_docs", "config_choices", "plain_text"]


@dataclass(frozen=True)
class Choice:
    """One field of a configuration: its value and its documentation.

    Attributes
    ----------
    field : str
        The field's name.
    value : Any
        Its value in the configuration read.
    description : str
        The field's entry in the class's ``Attributes`` section, as plain
        text (:func:`plain_text`); empty when the field is undocumented.
    """

    field: str
    value: Any
    description: str

    @property
    def rationale(self) -> str:
        """The description from its first "Default" on (why the default is what it is); all of it without one."""
        start = self.description.find("Default")
        return self.description[start:] if start >= 0 else self.description


def plain_text(text: str) -> str:
    """Docstring markup as plain text.

    A role shows its target (its last name with ``~``), a literal loses its
    quotes, a citation ``[1]_`` becomes ``[1]``.

    Examples
    --------
    >>> plain_text("See :class:`~mkdbook.models.filters.SincFilterBank` and ``n_channels`` [1]_.")
    'See SincFilterBank and n_channels [1].'
    """
    text = re.sub(r":[\w:]+:`~?([^`<]*?)\s*(?:<[^`]*>)?`",
                  lambda m: m.group(1).rsplit(".", 1)[-1] if "~" in m.group(0) else m.group(1), text)
    text = re.sub(r"``([^`]*)``", r"\1", text)
    return re.sub(r"\[([\w-]+)\]_", r"[\1]", text)


def attribute_docs(cls: type) -> dict[str, str]:
    """The ``Attributes`` section of a class's numpydoc docstring, as ``{name: description}`` in plain text.

    An entry that documents several names at once (``eog, eeg : StreamConfig``)
    gives each of them the same description.
    """
    from numpydoc.docscrape import NumpyDocString

    docs: dict[str, str] = {}
    for entry in NumpyDocString(inspect.getdoc(cls) or "")["Attributes"]:
        text = plain_text(" ".join(" ".join(entry.desc).split()))
        for name in entry.name.split(","):
            docs[name.strip()] = text
    return docs


def config_choices(config: Any) -> list[Choice]:
    """Every field of a configuration dataclass with its value and documented reason, in field order.

    Parameters
    ----------
    config : dataclass instance
        A configuration, such as ``FrontEndConfig()``.

    Returns
    -------
    list of Choice
        One per field, leaving out fields that hold a configuration of their
        own (a nested dataclass has its own rows: call this on it).

    Raises
    ------
    TypeError
        If ``config`` is not a dataclass instance.
    """
    if not is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"config must be a dataclass instance, got {config!r}")
    docs = attribute_docs(type(config))
    return [Choice(item.name, getattr(config, item.name), docs.get(item.name, ""))
            for item in fields(config) if not is_dataclass(getattr(config, item.name))]
