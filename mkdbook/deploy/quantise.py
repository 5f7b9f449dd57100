"""Dynamic int8 quantisation of an exported student, by ONNX Runtime's quantiser.

*Dynamic* quantisation stores the weights of the matrix products and of
the convolution (the front end's band-pass filters, the transformer's
projections, the fusion extractors, the classifier) as 8-bit integers with
one scale per tensor, and quantises each activation on the fly, per call,
from its own range; no calibration data is needed, which suits a network
whose inputs a device sees only at run time. The products of two
activations (the attention's scores), the normalisations and the input
standardisation stay in float32. Chapter *The student on a device* measures what it
costs in accuracy and gains in size and speed.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from mkdbook.core.atomic import write_atomically
from mkdbook.deploy.runtime import check_onnx

__all__ = ["quantise_int8"]


def quantise_int8(source: Path | str, path: Path | str) -> None:
    """Write the dynamic int8 quantisation of the ONNX model ``source`` to ``path``, checked, atomically.

    Weights become signed 8-bit integers (``QuantType.QInt8``), activations
    are quantised per call (:func:`onnxruntime.quantization.quantize_dynamic`),
    and the result passes :func:`onnx.checker.check_model` before it is written.

    Parameters
    ----------
    source : path-like
        A float32 ONNX model (:func:`mkdbook.deploy.export.export_onnx`).
    path : path-like
        Where the int8 model goes.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as folder:
        temporary = Path(folder) / "int8.onnx"
        # The quantiser advises, on the root logger, a shape-inference pass first;
        # on this graph that pass makes the int8 model slower, not faster.
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(Path(source), temporary, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        data = temporary.read_bytes()
    check_onnx(data)
    write_atomically(path, lambda stream: stream.write(data))
