"""mkdbook: multimodal knowledge distillation for emotion recognition, as a book.

The package is deliberately thin: each module has one job, and each chapter
of the book teaches a few of them. Which chapter teaches which modules is one
table, :data:`mkdbook.book.chapters.CHAPTERS`; the README, the book's
introduction and its API page show it rendered
(:func:`mkdbook.book.chapters.chapter_table`).

The subpackages are layers, lowest first: :mod:`mkdbook.core`,
:mod:`mkdbook.data`, :mod:`mkdbook.splits`, :mod:`mkdbook.models`,
:mod:`mkdbook.analysis`, :mod:`mkdbook.training`, :mod:`mkdbook.distillation`,
:mod:`mkdbook.sweeps`, :mod:`mkdbook.experiments`, :mod:`mkdbook.book` and
:mod:`mkdbook.cli`; a module imports only from its own layer or those below.
"""

__version__ = "0.1.0"
