"""Running an exported student: an ONNX Runtime session on a fixed number of threads, and its answers.

A wearable's processor has one or two cores, and the decisions of a stream
must not wait on a thread pool, so sessions run on ``threads`` threads for
the operators and one for the graph (sequential execution), the setting the
latency benchmark (``benchmarks/deploy.py``) measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mkdbook.core.checks import check_int

if TYPE_CHECKING:
    import onnxruntime

__all__ = ["check_onnx", "onnx_probabilities", "onnx_session"]


def check_onnx(model: bytes | Path | str) -> None:
    """:func:`onnx.checker.check_model` with shape inference (``full_check``) on a serialised model or a file.

    Raises
    ------
    onnx.checker.ValidationError
        If the graph is not valid ONNX.
    """
    import onnx

    proto = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(str(model))
    onnx.checker.check_model(proto, full_check=True)


def onnx_session(path: Path | str, threads: int = 1) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session of the model file ``path`` on the CPU, with ``threads`` operator threads.

    Raises
    ------
    ValueError
        If ``threads`` is not an integer >= 1.
    """
    import onnxruntime

    check_int("threads", threads, 1)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_probabilities(session: onnxruntime.InferenceSession, windows: np.ndarray, *,
                       per_window: bool = False) -> np.ndarray:
    """Class probabilities of a batch of raw EOG windows, ``(batch, n_channels, n_times)`` in microvolts.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
    windows : ndarray
    per_window : bool, default False
        Decide each window in a call of its own, as a stream does. A
        dynamically quantised model scales each call's activations by the
        range of the whole call, so its answer for one window depends on the
        other windows of a batch; a float32 model's does not (up to rounding).

    Returns
    -------
    ndarray, shape (batch, n_classes), float32
    """
    name = session.get_inputs()[0].name
    windows = np.ascontiguousarray(windows, dtype=np.float32)
    if per_window:
        return np.concatenate([session.run(None, {name: window[None]})[0] for window in windows])
    return session.run(None, {name: windows})[0]
