"""A content hash of a segment set: what a result was computed from.

Results and checkpoints record it, so that a cached result or a resumable
checkpoint is only ever reused for the very data it came from.
"""

from __future__ import annotations

import weakref

from mkdbook.core.keys import array_digest
from mkdbook.data.segments import SegmentSet

__all__ = ["fingerprint_data"]

# id(data) -> (weak reference to data, digest); hashing the full DEAP release
# takes seconds, so each segment set is hashed once per process.
_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def fingerprint_data(data: SegmentSet) -> str:
    """Return a SHA-256 of a segment set's signals, ids and ratings.

    A content hash rather than file names and dates: copying or touching the
    data changes nothing, and a changed sample changes the hash. Reading the
    full DEAP release (1.6 GB of segments) takes a few seconds, once per
    segment set and process.
    """
    cached = _DIGESTS.get(id(data))
    if cached is not None and cached[0]() is data:
        return cached[1]
    value = array_digest(data.subject, data.trial, data.position, data.ratings, data.signals)
    _DIGESTS[id(data)] = (weakref.ref(data, lambda _, key=id(data): _DIGESTS.pop(key, None)), value)
    return value
