"""Networks of the book: teacher, student, fusion modules and reference networks.

Taught in chapter 3 (the teacher and the reference networks) and chapter 4
(the fusion modules and the student).

Every network is a :class:`~mkdbook.models.base.Network`: it is told at
construction how many electrodes each modality has
(``n_channels={"eeg": 32, "eog": 2, ...}``; nothing here imports the data
layer), takes ``batch: Mapping[str, Tensor]`` keyed by modality names
(``{"eeg": (B, 32, T), "eog": (B, 2, T)}``), reads only the keys in its
``modalities`` class attribute, and returns a
:class:`~mkdbook.models.outputs.ModelOutput`. Build them by name with
:func:`build_model`, for example
``build_model("teacher", **segments.model_inputs(), seed=0)``:

=====================  ==============================================================
name                   network
=====================  ==============================================================
``"teacher"``          :class:`Teacher`, EOG + EEG streams fused by IMF
``"student"``          :class:`Student`, the teacher's EOG stream fused by HDF
``"eeg"``              :class:`EEGOnlyNet`, the teacher's EEG stream alone
``"eog"``              :class:`EOGOnlyNet`, the teacher's EOG stream alone
``"deepconvnet"``      :class:`DeepConvNet` on EOG (Schirrmeister et al., 2017)
``"teacher-concat"``   the teacher with IMF replaced by concatenation + linear
``"student-concat"``   the student with HDF replaced by concatenation + linear
=====================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any

from torch import nn

from mkdbook.core.checks import check_option
from mkdbook.core.docstrings import fill_doc
from mkdbook.core.seeding import seeded
from mkdbook.models.base import Network
from mkdbook.models.deepconvnet import DeepConvNet, DeepConvNetConfig
from mkdbook.models.encoder import (
    EncoderLayer,
    ModalityStream,
    StreamConfig,
    TappedStream,
    TapReadout,
    pool_tokens,
)
from mkdbook.models.frontend import ConvFrontEnd, FrontEndConfig
from mkdbook.models.fusion import ConcatFusion, GatedExtractor, GatedSumFusion, make_fusion
from mkdbook.models.outputs import ModelOutput
from mkdbook.models.reference import EEGOnlyNet, EOGOnlyNet, ReferenceConfig, SingleStreamNet
from mkdbook.models.student import Student, StudentConfig
from mkdbook.models.teacher import Teacher, TeacherConfig

__all__ = [
    "MODEL_NAMES",
    "ConcatFusion",
    "ConvFrontEnd",
    "DeepConvNet",
    "DeepConvNetConfig",
    "EEGOnlyNet",
    "EOGOnlyNet",
    "EncoderLayer",
    "FrontEndConfig",
    "GatedExtractor",
    "GatedSumFusion",
    "ModalityStream",
    "ModelOutput",
    "Network",
    "ReferenceConfig",
    "SingleStreamNet",
    "StreamConfig",
    "Student",
    "StudentConfig",
    "TapReadout",
    "TappedStream",
    "Teacher",
    "TeacherConfig",
    "build_model",
    "count_parameters",
    "make_fusion",
    "pool_tokens",
]

# name -> (network class, its default configuration)
_REGISTRY: dict[str, tuple[type[Network], Callable[[], Any]]] = {
    "teacher": (Teacher, TeacherConfig),
    "student": (Student, StudentConfig),
    "eeg": (EEGOnlyNet, ReferenceConfig),
    "eog": (EOGOnlyNet, ReferenceConfig),
    "deepconvnet": (DeepConvNet, DeepConvNetConfig),
    "teacher-concat": (Teacher, lambda: TeacherConfig(fusion="concat")),
    "student-concat": (Student, lambda: StudentConfig(fusion="concat")),
}

#: Names accepted by :func:`build_model`.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def _field_names(config: Any) -> set[str]:
    """All field names of a config dataclass and of the config dataclasses nested in it."""
    names = set()
    for item in fields(config):
        names.add(item.name)
        value = getattr(config, item.name)
        if is_dataclass(value):
            names |= _field_names(value)
    return names


def _override(config: Any, key: str, value: Any) -> tuple[Any, bool]:
    """Set ``key`` on ``config`` or, failing that, on every nested config that has it."""
    if key in {item.name for item in fields(config)}:
        return replace(config, **{key: value}), True
    nested = {}
    for item in fields(config):
        child = getattr(config, item.name)
        if is_dataclass(child):
            child, found = _override(child, key, value)
            if found:
                nested[item.name] = child
    return (replace(config, **nested), True) if nested else (config, False)


@fill_doc
def build_model(
    name: str,
    *,
    n_channels: Mapping[str, int],
    n_classes: int = 2,
    n_times: int = 512,
    sfreq: float = 128.0,
    seed: int | None = None,
    **config_overrides: Any,
) -> Network:
    """Build a network by name, optionally changing its configuration.

    Parameters
    ----------
    name : str
        One of :data:`MODEL_NAMES`.
    n_channels : mapping of str to int
        Electrodes per modality, for example ``{"eeg": 32, "eog": 2}``; each
        network reads the entries of its own ``modalities``.
        :meth:`~mkdbook.data.SegmentSet.model_inputs` gives it, with ``n_times``
        and ``sfreq``, for the data at hand.
    %(network_inputs)s
    seed : int, optional
        Seed for the initial weights. The network is built under
        :func:`mkdbook.core.seeding.seeded`, so the caller's global random state is
        left as it was. ``None`` draws from the global generator.
    **config_overrides
        ``config=`` replaces the whole default configuration (for example a
        :class:`TeacherConfig`). Any other keyword names a configuration
        field at any depth and is applied after ``config``: a top-level
        field first (``taps=(1, 3)``), otherwise the field of every nested
        config that has it, so ``depth=4`` deepens both teacher streams and
        ``n_temporal_filters=16`` widens both front ends. For the
        ``"-concat"`` names, the default configuration has
        ``fusion="concat"``.

    Returns
    -------
    Network
        The network, in training mode.

    Raises
    ------
    ValueError
        If ``name`` is unknown, an override names no field of the network's
        configuration, or ``n_channels`` lacks a modality the network reads;
        the message lists what is allowed.

    Examples
    --------
    >>> deap = {"eeg": 32, "eog": 2}
    >>> teacher = build_model("teacher", n_channels=deap, seed=0)
    >>> student = build_model("student", n_channels=deap, seed=0, d_model=32, n_heads=2)
    """
    check_option("name", name, MODEL_NAMES)
    network, default_config = _REGISTRY[name]
    config = config_overrides.pop("config", None) or default_config()
    for key, value in config_overrides.items():
        config, found = _override(config, key, value)
        if not found:
            raise ValueError(
                f"{key!r} is not a configuration field of {name!r}; "
                f"expected one of {sorted(_field_names(config))}"
            )
    arguments = {"n_channels": n_channels, "n_classes": n_classes, "n_times": n_times,
                 "sfreq": sfreq, "config": config}
    if seed is None:
        return network(**arguments)
    with seeded(seed):
        return network(**arguments)


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameter values in ``model`` (trainable or not)."""
    return sum(parameter.numel() for parameter in model.parameters())
