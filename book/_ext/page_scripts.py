"""Write each script of a page once.

With Jupyter Book 1.0 and Sphinx 7, sphinx-thebe and sphinx-togglebutton add
their inline configuration scripts twice to every page, and the second copy
of sphinx-thebe's fails (``Uncaught SyntaxError: Identifier 'THEBE_JS_URL'
has already been declared``), an error in the console of every page. This
extension drops a script identical to an earlier one of the same page.
"""

from __future__ import annotations

from typing import Any

from sphinx.application import Sphinx


def _key(script: Any) -> tuple[str, tuple[tuple[str, str], ...]]:
    attributes = getattr(script, "attributes", {}) or {}
    # An inline script's file name is None or "", depending on who added it.
    filename = getattr(script, "filename", script) or ""
    return str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items()))


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str,
                          context: dict[str, Any], doctree: Any) -> None:
    """Keep the first of identical scripts (same file or body, same attributes) of a page."""
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    kept = []
    for script in context.get("script_files", []):
        key = _key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    if "script_files" in context:
        context["script_files"] = kept


def setup(app: Sphinx) -> dict[str, bool]:
    # After the extensions that add scripts on this event (priority 500).
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
