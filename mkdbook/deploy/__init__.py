"""The student on a device: export, quantisation, streaming (chapter *The student on a device*).

* :mod:`~mkdbook.deploy.export`: a trained student with its standardisation
  folded in (raw microvolts in, probabilities out), exported to ONNX or
  TorchScript; a run folder of the commands read back.
* :mod:`~mkdbook.deploy.quantise`: dynamic int8 quantisation of the ONNX model.
* :mod:`~mkdbook.deploy.runtime`: ONNX Runtime sessions on a fixed number of threads.
* :mod:`~mkdbook.deploy.streaming`: a streaming classifier for continuous
  EOG, and a continuous recording made of trials back to back.

ONNX and ONNX Runtime come with the ``deploy`` extra
(``pip install "mkdbook[deploy]"``); they are imported only by the functions
that need them.
"""
