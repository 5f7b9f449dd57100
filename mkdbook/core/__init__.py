"""What every layer of the package shares: folders, atomic writes, checks, seeds, keys, profiles.

Nothing here imports the rest of the package, so every other subpackage may
use it. Taught where it is first needed rather than in a chapter of its own:

:mod:`~mkdbook.core.paths`
    Where the package writes (``MKDBOOK_HOME``).
:mod:`~mkdbook.core.atomic`
    Writing a file so that it is either whole or absent.
:mod:`~mkdbook.core.checks`
    Argument checks with one message style.
:mod:`~mkdbook.core.seeding`
    Building something reproducibly.
:mod:`~mkdbook.core.keys`
    The one way content is hashed into cache keys.
:mod:`~mkdbook.core.docstrings`
    Docstring paragraphs shared by several objects.
:mod:`~mkdbook.core.profiles`
    How big a chapter's work is, and on how many processes it runs, read
    from the environment in one place.
"""
