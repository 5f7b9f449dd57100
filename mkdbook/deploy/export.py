"""A trained student as one self-contained function of raw microvolts: wrapped, exported, checked.

A trained student is two things: the network, and the standardisation its
inputs went through (:class:`~mkdbook.training.standardisation.ChannelScaler`).
A device records raw EOG in microvolts and has neither the training data
nor the package, so :class:`StandardisedStudent` folds the two into one
module: it takes one batch of 4-s EOG windows in microvolts and returns
class probabilities. That module is what is exported, to ONNX
(:func:`export_onnx`, PyTorch's ``torch.export``-based exporter at opset
:data:`OPSET`, checked by :func:`onnx.checker.check_model`) or to
TorchScript (:func:`export_torchscript`, a trace).

EOG in the training pipeline passes no filter outside the network: DEAP's
preprocessed release (and the simulated cohort, which copies it) band-passes
the EEG only, and the EOG's band-pass is the network's own learned sinc
filter bank (:mod:`mkdbook.models.filters`), part of the exported graph.
Standardisation and band-pass therefore both travel inside the exported file.

Which statistics standardise a window is a choice: a student trained with
``standardise="subject"`` kept one set per training subject, and a device
worn by one of them can use that person's (``subject=N``); the pooled
statistics of all training segments (the default) suit a new wearer.

:func:`load_student` reads a finished run folder of ``mkdbook train --model
student`` or ``mkdbook distill``: its ``metrics.json``, ``best.pt`` and
``scaler.pt``, both checkpoints verified against their checksums.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import warnings
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mkdbook.core.atomic import write_atomically
from mkdbook.core.checks import check_option
from mkdbook.data.layout import DEAP
from mkdbook.data.segments import SegmentConfig
from mkdbook.deploy.runtime import check_onnx
from mkdbook.models import Student, StudentConfig
from mkdbook.training.checkpoints import DamagedCheckpointError, read_checkpoint
from mkdbook.training.standardisation import ChannelScaler

__all__ = [
    "EXPORT_FORMATS",
    "OPSET",
    "StandardisedStudent",
    "export_onnx",
    "export_student",
    "export_torchscript",
    "load_student",
    "window_statistics",
    "with_statistics",
]

#: ONNX operator set of the exported graph, stated rather than left to the exporter's
#: default, which changes between PyTorch releases.
OPSET = 18
#: Formats :func:`export_student` writes: ONNX in float32, ONNX with int8
#: weights (:func:`mkdbook.deploy.quantise.quantise_int8`), TorchScript.
EXPORT_FORMATS: tuple[str, ...] = ("onnx", "onnx-int8", "torchscript")
#: The name of the exported graph's input and output.
INPUT_NAME, OUTPUT_NAME = "eog", "probabilities"


def window_statistics(scaler: ChannelScaler, subject: int | None = None) -> tuple[Tensor, Tensor]:
    """The EOG mean and standard deviation that standardise one wearer's windows, each ``(n_channels, 1)``.

    Parameters
    ----------
    scaler : ChannelScaler
        The student's, fitted on its training segments.
    subject : int, optional
        A training subject whose own statistics to use (a ``"subject"``
        scaler only); the pooled training statistics when omitted.

    Raises
    ------
    ValueError
        If ``subject`` is given but the scaler keeps no statistics of it.
    """
    if subject is None:
        return scaler.mean["eog"], scaler.std["eog"]
    known = scaler.groups.tolist() if scaler.mode == "subject" else []
    if subject not in known:
        raise ValueError(f"subject {subject}: the student keeps no statistics of it (standardise="
                         f"{scaler.mode!r}, training subjects {known}); omit it for the pooled statistics")
    position = known.index(subject)
    return scaler.group_mean["eog"][position], scaler.group_std["eog"][position]


class StandardisedStudent(nn.Module):
    """A student with its input standardisation and softmax folded in: raw microvolts in, probabilities out.

    Parameters
    ----------
    student : Student
        The trained network; put in evaluation mode (dropout off).
    mean, std : Tensor, each (n_channels, 1)
        Per-channel statistics in microvolts (:func:`window_statistics`).

    Notes
    -----
    ``forward(eog)`` takes ``(batch, n_channels, n_times)`` float32 EOG in
    microvolts and returns ``(batch, n_classes)`` probabilities, what
    :func:`mkdbook.training.metrics.predict` computes for the same windows.
    """

    def __init__(self, student: Student, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.student = student.eval()
        self.n_channels, self.n_times = student.n_channels["eog"], student.n_times
        self.register_buffer("mean", mean.detach().float().reshape(1, -1, 1).clone())
        self.register_buffer("std", std.detach().float().reshape(1, -1, 1).clone())

    def forward(self, eog: Tensor) -> Tensor:  # noqa: D102
        logits = self.student({"eog": (eog - self.mean) / self.std}).logits
        return torch.softmax(logits, dim=1)

    def example(self, batch: int = 2) -> Tensor:
        """A window batch of the input's shape (standard normal, in units of 100 µV)."""
        return 100 * torch.randn(batch, self.n_channels, self.n_times, generator=torch.Generator().manual_seed(0))


def export_onnx(model: StandardisedStudent, path: Path | str) -> None:
    """Write ``model`` as ONNX (opset :data:`OPSET`, a dynamic batch dimension), checked, atomically.

    The graph comes from PyTorch's ``torch.export``-based exporter
    (``dynamo=True``; it translates through ``onnxscript``), with every
    weight inside the one file, and :func:`~mkdbook.deploy.runtime.check_onnx` checks it before it
    is written.
    """
    model = model.eval()
    batch = torch.export.Dim("batch", min=1)
    # The exporter logs that torchvision's operators are skipped when torchvision
    # is not installed; the student uses none of them.
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", FutureWarning)  # a deprecation inside torch.export's own code
            program = torch.onnx.export(model, (model.example(),), dynamo=True, opset_version=OPSET,
                                        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                        dynamic_shapes={"eog": {0: batch}}, verbose=False)
    finally:
        registration.setLevel(level)
    with tempfile.TemporaryDirectory() as folder:
        temporary = Path(folder) / "model.onnx"
        program.save(temporary, external_data=False)
        data = temporary.read_bytes()
    check_onnx(data)
    write_atomically(path, lambda stream: stream.write(data))


def with_statistics(source: Path | str, path: Path | str, mean: Tensor, std: Tensor) -> None:
    """Copy the ONNX model ``source`` (float32 or int8) to ``path`` with other standardisation statistics.

    The statistics are two constants of the graph, ``mean`` and ``std``
    (:class:`StandardisedStudent`'s buffers, which the exporter keeps by
    name and the quantiser leaves in float32), so calibrating a device for
    another wearer replaces them and re-exports nothing.

    Parameters
    ----------
    source, path : path-like
    mean, std : Tensor, each (n_channels, 1)
        Per-channel statistics in microvolts (:func:`window_statistics`).

    Raises
    ------
    ValueError
        If ``source`` has no such constants of the statistics' shape.
    """
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(source))
    constants = {item.name: item for item in proto.graph.initializer}
    for name, value in (("mean", mean), ("std", std)):
        array = value.detach().float().reshape(1, -1, 1).numpy()
        if name not in constants or tuple(constants[name].dims) != array.shape:
            raise ValueError(f"{source}: holds no {name!r} constant of shape {array.shape}; export it with "
                             f"export_onnx")
        constants[name].CopyFrom(numpy_helper.from_array(array, name))
    data = proto.SerializeToString()
    write_atomically(path, lambda stream: stream.write(data))


def export_torchscript(model: StandardisedStudent, path: Path | str) -> None:
    """Write ``model`` as TorchScript (a trace at its input shape, with a dynamic batch), atomically.

    The student's forward pass has no branch that depends on the values of
    its input, so a trace records all of it; :func:`torch.jit.trace` checks
    the traced module against the eager one on the example.
    """
    model = model.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # The front end's shape check reads tensor sizes as Python numbers; at
        # a fixed window size that is what a trace should record.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # PyTorch 2.13 marks TorchScript deprecated in favour of torch.export; the
        # file is written for the runtimes that still load it (LibTorch, PyTorch Mobile).
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(model, model.example())
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
    write_atomically(path, lambda stream: stream.write(buffer.getvalue()))


def _config_from(cls: type, values: dict[str, Any]) -> Any:
    """A configuration dataclass from its JSON form (lists back to tuples, nested dataclasses rebuilt)."""
    kwargs = {}
    for item in fields(cls):
        if item.name not in values:
            continue
        value, default = values[item.name], getattr(cls(), item.name)
        if is_dataclass(default):
            value = _config_from(type(default), value)
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[item.name] = value
    return cls(**kwargs)


def load_student(run_dir: Path | str) -> tuple[Student, ChannelScaler]:
    """The best-validation student of a finished run folder and its standardisation.

    Parameters
    ----------
    run_dir : path-like
        A folder written by ``mkdbook train --model student`` or
        ``mkdbook distill``: ``metrics.json``, ``best.pt``, ``scaler.pt``.

    Raises
    ------
    ValueError
        Naming the folder: it holds no finished run, a network other than
        a student (a teacher), or a checkpoint that does not verify.
    """
    folder = Path(run_dir)
    metrics = folder / "metrics.json"
    if not folder.is_dir() or not metrics.is_file():
        raise ValueError(f"{folder}: holds no finished student (no metrics.json); expected the --out folder "
                         f"of 'mkdbook train --model student' or 'mkdbook distill'")
    try:
        network = json.loads(metrics.read_text(encoding="utf-8"))["identity"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{metrics}: cannot be read as a finished run's metrics") from None
    if network.get("class") != Student.__name__:
        raise ValueError(f"{folder}: holds a {network.get('class')} network, not a student; export reads "
                         f"the EOG-only student of 'mkdbook train --model student' or 'mkdbook distill'")
    try:
        state = read_checkpoint(folder / "best.pt")["model"]
        scaler = ChannelScaler.from_state_dict(read_checkpoint(folder / "scaler.pt"))
    except (FileNotFoundError, DamagedCheckpointError, KeyError) as err:
        raise ValueError(f"{folder}: holds no finished student ({err})") from None
    # The commands cut DEAP-layout trials into segments of SegmentConfig's default length.
    student = Student({"eog": scaler.mean["eog"].shape[0]}, n_times=SegmentConfig().segment_samples(DEAP),
                      sfreq=DEAP.sfreq, config=_config_from(StudentConfig, network["config"]))
    try:
        student.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{folder / 'best.pt'}: does not fit a default-length student ({str(err).splitlines()[0]})") \
            from None
    return student.eval(), scaler


def export_student(model: StandardisedStudent, path: Path | str, format: str = "onnx") -> None:
    """Write ``model`` in one of :data:`EXPORT_FORMATS` to ``path``, atomically.

    ``"onnx-int8"`` exports the float32 graph (:func:`export_onnx`) to a
    temporary file and writes its dynamic int8 quantisation
    (:func:`~mkdbook.deploy.quantise.quantise_int8`).

    Raises
    ------
    ValueError
        If ``format`` is not one of :data:`EXPORT_FORMATS`.
    """
    from mkdbook.deploy.quantise import quantise_int8

    check_option("format", format, EXPORT_FORMATS)
    if format == "torchscript":
        export_torchscript(model, path)
    elif format == "onnx":
        export_onnx(model, path)
    else:
        with tempfile.TemporaryDirectory() as folder:
            export_onnx(model, Path(folder) / "float32.onnx")
            quantise_int8(Path(folder) / "float32.onnx", path)
