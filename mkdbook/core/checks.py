"""Argument checks shared by the whole package, with one message style.

Every check raises :class:`ValueError` with one line that names the argument,
shows the value it got and says what is allowed, in the manner of MNE-Python's
``_check_option``::

    epochs must be an integer >= 1, got 0
    device must be one of ('auto', 'cpu', 'cuda'), got 'gpu'

The command line prints such a message as it is, so a bad argument ends with
one line and exit status 2 wherever in the package it is caught.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from numbers import Integral, Real
from typing import Any, TypeVar

__all__ = ["check_int", "check_number", "check_option"]

T = TypeVar("T")


def check_option(name: str, value: T, allowed: Collection[Any]) -> T:
    """Return ``value`` if it is one of ``allowed``.

    Parameters
    ----------
    name : str
        The argument's name, as the caller knows it.
    value : object
        The value to check.
    allowed : collection
        The values accepted; shown in the message in their own order.

    Raises
    ------
    ValueError
        ``"<name> must be one of <allowed>, got <value>"``.
    """
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
    return value


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` if it is an integer (not a bool) in ``[low, high]``.

    Parameters
    ----------
    name : str
    value : object
    low, high : int, optional
        Inclusive bounds; ``None`` leaves that side open.

    Raises
    ------
    ValueError
        ``"<name> must be an integer >= <low>, got <value>"`` (or the range).
    """
    ok = isinstance(value, Integral) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        raise ValueError(f"{name} must be an integer {_range(low, high)}, got {value!r}")
    return int(value)


def check_number(name: str, value: Any, low: float | None = None, *, strict: bool = False) -> float:
    """Return ``value`` if it is a finite real number ``>= low`` (``> low`` when ``strict``).

    Parameters
    ----------
    name : str
    value : object
    low : float, optional
        Lower bound; ``None`` accepts any finite number.
    strict : bool
        Exclude ``low`` itself (for learning rates and step sizes).

    Raises
    ------
    ValueError
        ``"<name> must be a finite number > <low>, got <value>"``.
    """
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if strict else value >= low
    if not ok:
        bound = "" if low is None else f" {'>' if strict else '>='} {low:g}"
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}")
    return float(value)


def _range(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f"in [{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""
