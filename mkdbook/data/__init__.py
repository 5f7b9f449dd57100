"""The data layer: DEAP files in, labelled segments out.

>>> from mkdbook.data import load_segments
>>> segments = load_segments("data_preprocessed_python/")  # doctest: +SKIP
"""

from mkdbook.data.cache import describe_source, load_segments
from mkdbook.data.layout import DEAP, Layout
from mkdbook.data.readers.deap import DeapFormatError, SubjectRecording, find_subject_files, read_subject_file
from mkdbook.data.segments import SegmentConfig, SegmentSet, segment_trials

__all__ = [
    "DEAP", "DeapFormatError", "Layout", "SegmentConfig", "SegmentSet", "SubjectRecording",
    "describe_source", "find_subject_files", "load_segments", "read_subject_file", "segment_trials",
]
