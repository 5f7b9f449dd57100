"""Readers of recorded data sets: files in, one subject's signals, ratings and layout out.

:mod:`~mkdbook.data.readers.deap`
    DEAP's preprocessed Python files, read without running them
    (:mod:`~mkdbook.data.readers.safe_pickle`).
"""
