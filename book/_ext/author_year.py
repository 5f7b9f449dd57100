"""Bibliography entries labelled by author and year, as the text cites them.

The chapters cite author-year (``{cite:p}`` gives "(Zhang and Lu, 2025)"), but
pybtex's bundled label styles number entries or abbreviate them ("[ZL25]").
This style labels each entry "Zhang and Lu, 2025", "Koelstra et al., 2012",
so a reader finds in the list what the text named.
"""

from __future__ import annotations

from collections import Counter

from pybtex.plugin import register_plugin
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle


def _authors(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    last = [" ".join(person.last_names) for person in people]
    if not last:
        return entry.fields.get("title", entry.key)
    if len(last) == 1:
        return last[0]
    if len(last) == 2:
        return f"{last[0]} and {last[1]}"
    return f"{last[0]} et al."


class AuthorYearLabelStyle(BaseLabelStyle):
    """Labels "Author, year" (two authors joined by "and", more as "et al.").

    Works that would share a label get "a", "b", ... after the year, so that
    every label on a page is unique.
    """

    def format_labels(self, sorted_entries):  # noqa: D102
        entries = list(sorted_entries)
        bases = [f"{_authors(entry)}, {entry.fields.get('year', 'n.d.')}" for entry in entries]
        counts = Counter(bases)
        seen: Counter = Counter()
        for base in bases:
            if counts[base] == 1:
                yield base
            else:
                yield base + "abcdefghijklmnopqrstuvwxyz"[seen[base]]
                seen[base] += 1


class AuthorYearStyle(UnsrtStyle):
    """pybtex's ``unsrt`` formatting with :class:`AuthorYearLabelStyle` labels."""

    default_label_style = AuthorYearLabelStyle


def setup(app):  # noqa: D103
    register_plugin("pybtex.style.formatting", "author_year_labels", AuthorYearStyle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
