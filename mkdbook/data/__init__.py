"""The data layer: recorded files in (DEAP's, BIDS, or any registered format), labelled segments out.

Taught in chapter 1 (the data): the layout as a value (:mod:`~mkdbook.data.layout`),
the readers of each format (:mod:`~mkdbook.data.readers`), segments and their
cache, the simulated cohort (:mod:`~mkdbook.data.simulate`) and its BIDS copy
(:mod:`~mkdbook.data.export`), and the bridge to MNE's objects.

>>> from mkdbook.data import load_segments
>>> segments = load_segments("data_preprocessed_python/")  # doctest: +SKIP
>>> segments = load_segments("my_bids_dataset/")  # format inferred  # doctest: +SKIP
"""

from mkdbook.data.cache import describe_source, load_segments
from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.readers import (
    FORMATS,
    BidsFormatError,
    BidsReader,
    DataFormatError,
    DeapReader,
    Reader,
    SubjectSource,
    infer_format,
    read_recordings,
    reader_for,
    register_format,
)
from mkdbook.data.readers.deap import DeapFormatError, SubjectRecording, find_subject_files, read_subject_file
from mkdbook.data.segments import SegmentConfig, SegmentSet, segment_trials

__all__ = [
    "DEAP", "FORMATS", "BidsFormatError", "BidsReader", "DataFormatError", "DeapFormatError", "DeapReader",
    "Layout", "Reader", "SegmentConfig", "SegmentSet", "SubjectRecording", "SubjectSource", "describe_source",
    "find_subject_files", "infer_format", "load_segments", "read_recordings", "read_subject_file", "reader_for",
    "register_format", "segment_trials",
]
