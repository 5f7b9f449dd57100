"""Docstring paragraphs shared by several objects, filled in with :func:`fill_doc`.

As MNE-Python's ``docdict``: a parameter described in many places is written
once, here, and a docstring names it as ``%(key)s`` on a line of its own.
:func:`fill_doc` replaces the placeholder, indenting every line of the
paragraph like the placeholder's line, so numpydoc sees an ordinary
parameter list.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

__all__ = ["docdict", "fill_doc"]

T = TypeVar("T", bound=Callable)

#: Shared paragraphs by key.
docdict: dict[str, str] = {
    "n_classes": """n_classes : int
    Output classes (2 for binary valence or arousal).""",
    "n_times": """n_times : int
    Samples per segment (512 for 4 s at 128 Hz).""",
    "sfreq": """sfreq : float
    Sampling rate in Hz.""",
    "network_inputs": """n_classes : int
    Output classes (2 for binary valence or arousal).
n_times : int
    Samples per segment (512 for 4 s at 128 Hz).
sfreq : float
    Sampling rate in Hz.""",
    "filter_bank": """n_filters : int
    Filters in the bank.
kernel : int
    Taps per filter.""",
    "score_loss_accuracy": """loss : float
    Mean cross-entropy (nats per segment).
accuracy : float
    Share of segments whose most probable class is the label.""",
    "score_balanced_accuracy": """balanced_accuracy : float
    Mean recall over the classes present (0.5 for any constant answer of two classes).""",
    "paper": """.. [1] Z. Zhang and G. Lu, "Multimodal Knowledge Distillation for Emotion
   Recognition," Brain Sciences 15(7):707, 2025. doi:10.3390/brainsci15070707""",
}

_PLACEHOLDER = re.compile(r"^(?P<indent>[ \t]*)%\((?P<key>\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj: T, paragraphs: Mapping[str, str] | None = None) -> T:
    """Replace every ``%(key)s`` line of ``obj``'s docstring by ``docdict[key]`` (a decorator).

    Parameters
    ----------
    obj : function or class
        Its docstring is changed in place.
    paragraphs : mapping of str to str, optional
        Further paragraphs by key, for those that depend on ``obj`` (as the
        parameters of a :class:`~mkdbook.models.base.Network`, which name
        the modalities it reads); they take precedence over :data:`docdict`.

    Returns
    -------
    function or class
        ``obj``.

    Raises
    ------
    KeyError
        If a placeholder names no key of :data:`docdict` or ``paragraphs``
        (at import, so a typo never reaches the rendered page).
    """
    known = {**docdict, **(paragraphs or {})}

    def paragraph(match: re.Match) -> str:
        text = known[match["key"]]
        return "\n".join(match["indent"] + line if line else line for line in text.splitlines())

    if obj.__doc__:
        obj.__doc__ = _PLACEHOLDER.sub(paragraph, obj.__doc__)
    return obj
