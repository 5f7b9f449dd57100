"""Chapter support: the setup every chapter shares, its data, its figures, and showing real code.

Each chapter imports this subpackage once, ``from mkdbook import book``, and
calls what it needs through it (``book.start``, ``book.show``, ...).

:mod:`~mkdbook.book.chapter`
    A chapter's setup, its cohort, training ahead on several processes, stored tables.
:mod:`~mkdbook.book.source_code`
    Showing the package's own code in a chapter, highlighted.
:mod:`~mkdbook.book.plots`
    The chance reference drawn on every accuracy figure.
:mod:`~mkdbook.book.choices`
    A configuration's choices, each field's value and reason, read from its docstring.
:mod:`~mkdbook.book.chapters`
    Which chapter teaches which modules: the one table the README, the
    introduction and the API page are checked against.
"""

from mkdbook.book.chapter import (
    COHORT_SEED,
    DEVELOPMENT_COHORT_SEED,
    book_cohort,
    comparison_grid,
    markdown_table,
    method_table,
    start,
    stored_table,
    train_ahead,
)
from mkdbook.book.source_code import show

__all__ = ["COHORT_SEED", "DEVELOPMENT_COHORT_SEED", "book_cohort", "comparison_grid", "markdown_table", "method_table", "show", "start", "stored_table",
           "train_ahead"]
