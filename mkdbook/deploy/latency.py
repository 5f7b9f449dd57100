"""What one decision costs: time per window on a fixed number of threads, and multiply-adds.

Latency is measured the way a device decides, one window at a time: each
backend is called ``repeats`` times on the same window after ``warmup``
calls, and the median and the 99th percentile of the wall-clock times are
reported (the median says what a decision costs, the 99th percentile how
late one can be). Multiply-adds are counted by PyTorch's own
:class:`torch.utils.flop_counter.FlopCounterMode`, which counts two
floating-point operations per multiply-add of the matrix products and
convolutions (the elementwise work, a few per cent here, is not counted).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from mkdbook.core.checks import check_int
from mkdbook.deploy.export import StandardisedStudent, export_onnx, export_torchscript
from mkdbook.deploy.quantise import quantise_int8
from mkdbook.deploy.runtime import onnx_probabilities, onnx_session

__all__ = ["BACKENDS", "Backend", "Latency", "backends", "multiply_adds", "time_per_window"]

#: The ways a student decides, as :func:`backends` names them.
BACKENDS: tuple[str, ...] = ("PyTorch eager", "TorchScript", "ONNX Runtime float32", "ONNX Runtime int8")


@dataclass(frozen=True)
class Latency:
    """Wall-clock time of one decision, in milliseconds.

    Attributes
    ----------
    median_ms, p99_ms : float
        Median and 99th percentile over the timed calls.
    repeats : int
        Timed calls.
    """

    median_ms: float
    p99_ms: float
    repeats: int


def time_per_window(decide: Callable[[], object], repeats: int = 300, warmup: int = 20) -> Latency:
    """Time ``decide()`` (one decision on one window) ``repeats`` times after ``warmup`` untimed calls.

    Raises
    ------
    ValueError
        If ``repeats`` or ``warmup`` is not an integer (>= 1 and >= 0).
    """
    check_int("repeats", repeats, 1)
    check_int("warmup", warmup, 0)
    for _ in range(warmup):
        decide()
    seconds = np.empty(repeats)
    for index in range(repeats):
        began = time.perf_counter()
        decide()
        seconds[index] = time.perf_counter() - began
    return Latency(float(np.median(seconds) * 1e3), float(np.percentile(seconds, 99) * 1e3), repeats)


def multiply_adds(model: nn.Module, inputs: Mapping[str, Tensor] | Tensor) -> int:
    """Multiply-adds of one forward pass of ``model`` on ``inputs`` (half its counted FLOPs), without gradient."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(inputs)
    return counter.get_total_flops() // 2


@dataclass(frozen=True)
class Backend:
    """One way of running a student.

    Attributes
    ----------
    decide : callable
        Windows ``(batch, n_channels, n_times)`` float32 in microvolts ->
        probabilities ``(batch, n_classes)`` as a NumPy array.
    file : Path or None
        The exported file it runs (``None`` for the module in memory).
    """

    decide: Callable[[np.ndarray], np.ndarray]
    file: Path | None


def backends(model: StandardisedStudent, folder: Path | str, threads: int = 1) -> dict[str, Backend]:
    """Export ``model`` into ``folder`` (created if needed) in every format; a :class:`Backend` per :data:`BACKENDS`.

    PyTorch (eager and TorchScript) runs on ``torch.get_num_threads()``
    threads, which the caller sets (:func:`torch.set_num_threads`); ONNX
    Runtime on ``threads`` (:func:`~mkdbook.deploy.runtime.onnx_session`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    export_onnx(model, folder / "student.onnx")
    quantise_int8(folder / "student.onnx", folder / "student-int8.onnx")
    export_torchscript(model, folder / "student.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript's, see export_torchscript
        scripted = torch.jit.load(str(folder / "student.pt"))

    def torch_decide(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
        def decide(windows: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(windows)).numpy()
        return decide

    sessions = {name: onnx_session(folder / name, threads) for name in ("student.onnx", "student-int8.onnx")}
    return {
        "PyTorch eager": Backend(torch_decide(model.eval()), None),
        "TorchScript": Backend(torch_decide(scripted), folder / "student.pt"),
        "ONNX Runtime float32": Backend(partial(onnx_probabilities, sessions["student.onnx"]),
                                        folder / "student.onnx"),
        "ONNX Runtime int8": Backend(partial(onnx_probabilities, sessions["student-int8.onnx"]),
                                     folder / "student-int8.onnx"),
    }
