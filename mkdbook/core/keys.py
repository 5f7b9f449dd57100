"""Content hashing: the one way the package turns what decides a result into a cache key.

Every cache of the package (segment caches, cell results, stored teacher
outputs, a chapter's stored tables, the band-power features of the sweeps)
is keyed by a SHA-256 of what decides its contents, computed here:

* :func:`json_key` hashes a configuration written as sorted JSON, so the
  order in which a dict was built never changes a key;
* :func:`value_digest` hashes nested values that JSON cannot hold (arrays,
  tensors), dtype and shape included, so ``[1, 2]`` as int8 and as int64
  differ;
* :func:`bytes_digest` hashes a file's bytes, the checksum that a stored
  checkpoint carries beside it;
* :func:`source_digest` hashes source files, and :func:`package_fingerprint`
  the whole package's, so that changed code never reuses what old code
  computed.

Why the package source belongs in a key: Jupyter Book's execution cache
re-runs a notebook only when its cells change, so a notebook whose cells
are unchanged but whose imported package changed would otherwise show stale
numbers. Any change to the package source therefore gives new keys and new
runs. This is deliberately conservative (editing a docstring re-runs
everything); stale results are the worse error.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["array_digest", "bytes_digest", "json_key", "package_fingerprint", "source_digest", "value_digest"]


def json_key(payload: Any, length: int = 24, default: Callable[[Any], Any] | None = None, *,
             allow_nan: bool = True) -> str:
    """Return the first ``length`` hex digits of a SHA-256 of ``payload`` as sorted JSON.

    Parameters
    ----------
    payload : JSON-serialisable value
        What decides the cached thing.
    length : int, default 24
        Hex digits kept: 24 (96 bits) for keys that name folders.
    default : callable, optional
        Passed to :func:`json.dumps` for values JSON cannot hold.
    allow_nan : bool, default True
        ``False`` refuses NaN and infinities, which JSON itself cannot write.

    Raises
    ------
    TypeError, ValueError
        If ``payload`` cannot be written as JSON.
    """
    text = json.dumps(payload, sort_keys=True, default=default, allow_nan=allow_nan)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _update(value: Any, digest: Any) -> None:
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            digest.update(f"{key!s}:".encode())
            _update(value[key], digest)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _update(item, digest)
    elif type(value).__module__.startswith("torch"):
        import torch  # here, so that hashing a configuration does not import torch

        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{flat.dtype}{tuple(value.shape)}".encode())
        # Bytes, not values: bfloat16 has no NumPy dtype, and -0.0 must differ from 0.0.
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(f"{value.dtype}{value.shape}".encode() + np.ascontiguousarray(value).tobytes())
    else:
        digest.update(repr(value).encode())


def value_digest(value: Any) -> str:
    """Return a SHA-256 (hex) of a nested value of dicts, lists, arrays and tensors.

    Dict keys are visited in sorted order; arrays and tensors count by their
    dtype, shape and bytes; anything else by its ``repr``.
    """
    digest = hashlib.sha256()
    _update(value, digest)
    return digest.hexdigest()


def bytes_digest(data: bytes) -> str:
    """Return a SHA-256 (hex) of ``data``: the checksum recorded beside a stored file."""
    return hashlib.sha256(data).hexdigest()


def array_digest(*arrays: np.ndarray, block_bytes: int = 64 << 20) -> str:
    """Return a SHA-256 (hex) of arrays' bytes and shapes, read about ``block_bytes`` at a time.

    For large memory-mapped arrays (the full DEAP release is 1.6 GB of
    segments): rows are read in blocks along the first axis, so hashing never
    holds more than one block in memory.
    """
    digest = hashlib.sha256()
    for array in arrays:
        row_bytes = max(1, array[0].nbytes) if array.ndim and len(array) else 1
        rows = max(1, block_bytes // row_bytes)
        for start in range(0, max(1, len(array)) if array.ndim else 1, rows):
            block = array[start:start + rows] if array.ndim else array
            digest.update(np.ascontiguousarray(block).tobytes())
        digest.update(f"{array.dtype}{array.shape}".encode())
    return digest.hexdigest()


def source_digest(paths: Iterable[Path], root: Path | None = None) -> str:
    """Return a SHA-256 (hex) of source files, sorted, each with its name relative to ``root``.

    Names count too, so moving code from one file to another changes the
    digest even when the concatenated text would not.
    """
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        name = path.relative_to(root).as_posix() if root is not None else path.name
        digest.update(name.encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def package_fingerprint() -> tuple[str, str]:
    """Return the package version and a SHA-256 of every ``.py`` file of :mod:`mkdbook`.

    Computed once per process: the hash then describes the code this
    process imported, even if files change on disk afterwards.
    """
    import mkdbook

    root = Path(mkdbook.__file__).parent
    return mkdbook.__version__, source_digest(root.rglob("*.py"), root)
