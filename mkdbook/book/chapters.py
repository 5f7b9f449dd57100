"""Which chapter teaches which modules: the one table of the book's pages and the package's modules.

The package mirrors the book: each chapter teaches a few modules. This module
holds that map as data, :data:`CHAPTERS`, one :class:`ChapterRow` per page of
the book (and one for the support modules that every chapter uses), and
renders it as the Markdown tables that the README (section *Layout*), the
introduction (``book/intro.md``) and the API page (``book/api.md``) show
(:func:`chapter_table`). The tests check that those documents hold exactly
the rendered table, that every module of the package is in it
(:func:`covered_by`), and that the API page documents every module.

A module is in the table when it is listed itself, or when a package that
holds it is listed *alone*: a package listed with none of its modules stands
for all of them (``mkdbook.data.simulate``, ``mkdbook.cli``), while a package
listed beside some of its modules (``mkdbook.data`` with ``layout``,
``segments``, ...) asks for every one of them to be listed, so a new module
there cannot be forgotten.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHAPTERS", "TABLE_STYLES", "ChapterRow", "chapter_table", "covered_by"]

#: Styles :func:`chapter_table` renders: ``"book"`` (MyST roles: ``{doc}`` links to the
#: pages, ``{py:mod}`` links to the API page) and ``"readme"`` (plain paths in the checkout).
TABLE_STYLES: tuple[str, ...] = ("book", "readme")


@dataclass(frozen=True)
class ChapterRow:
    """One page of the book and the modules of the package it teaches.

    Attributes
    ----------
    page : str or None
        The page's document name in ``book/`` (``"01_data"``, ``"method"``,
        ``"protocol"``); ``None`` for the support modules, which no single
        page teaches.
    title : str
        The page's title, its first heading.
    modules : tuple of str
        Dotted names of the modules and subpackages the page teaches, each
        package before its modules. Empty for a page that teaches no module
        of its own (the appendix).
    summary : str
        What those modules hold, in a few words (the README's column *what*),
        or, for a page without modules, what the page links to.
    """

    page: str | None
    title: str
    modules: tuple[str, ...]
    summary: str

    @property
    def number(self) -> str | None:
        """The chapter's number as its page name gives it, ``None`` for an unnumbered page.

        ``"1"`` for ``"01_data"``; a letter after the digits numbers a chapter
        placed behind another without renumbering the ones after it
        (``"7b"`` for ``"07b_device"``).
        """
        match = re.match(r"0*(\d+[a-z]?)_", self.page or "")
        return match.group(1) if match else None


#: The book's pages in the order of its table of contents (``_toc.yml``; the
#: teaching page for instructors teaches no module and is left out), then the
#: support modules.
CHAPTERS: tuple[ChapterRow, ...] = (
    ChapterRow("01_data", "The data", (
        "mkdbook.data", "mkdbook.data.layout", "mkdbook.data.readers", "mkdbook.data.readers.base",
        "mkdbook.data.readers.deap", "mkdbook.data.readers.safe_pickle", "mkdbook.data.readers.bids",
        "mkdbook.data.segments", "mkdbook.data.fingerprint", "mkdbook.data.cache", "mkdbook.data.install",
        "mkdbook.data.simulate", "mkdbook.data.export", "mkdbook.data.mne_bridge"),
        "the dataset layout as a value (`DEAP`); readers of DEAP's files (safely, without unpickling) and of "
        "BIDS; 4-s segments; content fingerprints; the healing segment cache; the simulated cohort; BIDS "
        "export; the MNE bridge"),
    ChapterRow("02_splits", "Splitting by trial versus leaking", (
        "mkdbook.splits", "mkdbook.analysis", "mkdbook.analysis.band_power", "mkdbook.analysis.information_levels"),
        "trial-level, k-fold-by-trial, leave-subjects-out and (for contrast) leaky splits; band-power "
        "features; the information each modality carries"),
    ChapterRow("03_teacher", "Building the teacher", (
        "mkdbook.models", "mkdbook.models.base", "mkdbook.models.outputs", "mkdbook.models.frontend",
        "mkdbook.models.filters", "mkdbook.models.encoder", "mkdbook.models.teacher", "mkdbook.models.reference",
        "mkdbook.models.deepconvnet", "mkdbook.training", "mkdbook.training.trainer", "mkdbook.training.batches",
        "mkdbook.training.standardisation", "mkdbook.training.metrics", "mkdbook.training.run_identity",
        "mkdbook.training.checkpoints"),
        "the networks (teacher, EEG-only, EOG-only, DeepConvNet), each told its channel counts; the trainer "
        "(a loss hook, resumable checkpoints), standardised batches, scoring, a run's identity"),
    ChapterRow("04_fusion", "Fusion modules", ("mkdbook.models.fusion", "mkdbook.models.student"),
               "IMF and HDF fusion and their concatenation controls; the EOG-only student"),
    ChapterRow("05_distillation", "Distillation", (
        "mkdbook.distillation", "mkdbook.distillation.losses", "mkdbook.distillation.teacher_outputs",
        "mkdbook.distillation.teacher_student", "mkdbook.distillation.teaching"),
        "distillation losses; a fixed teacher's stored outputs; the one teacher-student trainer; the "
        "teaching phase and its distiller"),
    ChapterRow("06_feedback", "Dynamic feedback", ("mkdbook.distillation.feedback",),
               "the second-order feedback phase and its fit loop"),
    ChapterRow("07_when", "When can distillation help?", (
        "mkdbook.sweeps", "mkdbook.sweeps.band_power_networks", "mkdbook.sweeps.dose_response",
        "mkdbook.sweeps.positive_control"),
        "small band-power networks by the hundred; the gain of distillation along a setting; the "
        "registered positive control"),
    ChapterRow("07b_device", "The student on a device", (
        "mkdbook.deploy", "mkdbook.deploy.export", "mkdbook.deploy.quantise", "mkdbook.deploy.runtime",
        "mkdbook.deploy.streaming", "mkdbook.deploy.latency"),
        "the student and its standardisation as one ONNX or TorchScript file; int8 quantisation; ONNX "
        "Runtime sessions; a streaming classifier; the cost of a decision"),
    ChapterRow("08_ablations", "Ablations and baselines", (
        "mkdbook.experiments", "mkdbook.experiments.methods", "mkdbook.experiments.results",
        "mkdbook.experiments.tables", "mkdbook.experiments.grids", "mkdbook.distillation.baselines",
        "mkdbook.training.runs"),
        "the explicit method table; cells' stored results; the results table; cached grids; the "
        "FitNets, CGAN and EmotionKD baselines; what identifies a run (a cell) and what a method returns"),
    ChapterRow("09_significance", "Is the difference real?", ("mkdbook.analysis.stats", "mkdbook.analysis.verdicts"),
               "paired tests, corrections, effect sizes, mixed models; verdict words from intervals and "
               "equivalence tests"),
    ChapterRow("method", "The method at a glance", (),
               "every module above, one row per decision the paper leaves open"),
    ChapterRow("protocol", "Running the full protocol", (
        "mkdbook.experiments.executors", "mkdbook.experiments.progress", "mkdbook.experiments.leases",
        "mkdbook.experiments.published", "mkdbook.experiments.fetch"),
        "serial and Dask executors of a grid; cells done, running and pending; per-cell leases; a build's "
        "cells published as a verified archive, and fetched"),
    ChapterRow(None, "Support", (
        "mkdbook.book", "mkdbook.book.chapter", "mkdbook.book.source_code", "mkdbook.book.plots",
        "mkdbook.book.choices", "mkdbook.book.chapters", "mkdbook.core", "mkdbook.core.profiles",
        "mkdbook.core.paths", "mkdbook.core.atomic", "mkdbook.core.checks", "mkdbook.core.seeding",
        "mkdbook.core.keys", "mkdbook.core.docstrings", "mkdbook.core.threads", "mkdbook.cli"),
        "chapter support (`book.start`, `book.train_ahead`, `book.show`), the chance reference, a "
        "configuration's documented choices, this table; run profiles, `MKDBOOK_HOME`, atomic writes, "
        "argument checks, seeded construction, content keys, shared docstring paragraphs; the command "
        "line, one module per sub-command"),
)


def _listed() -> set[str]:
    return {module for row in CHAPTERS for module in row.modules}


def covered_by(module: str) -> str | None:
    """The entry of :data:`CHAPTERS` that stands for ``module``, or ``None`` when it is missing.

    Parameters
    ----------
    module : str
        A dotted module name, such as ``"mkdbook.data.simulate.cohort"``.

    Returns
    -------
    str or None
        ``module`` itself when it is listed; else the innermost package
        holding it that is listed alone (none of its own modules listed);
        else ``None``.
    """
    listed = _listed()
    if module in listed:
        return module
    parts = module.split(".")
    for end in range(len(parts) - 1, 1, -1):
        package = ".".join(parts[:end])
        if package in listed:
            alone = not any(other.startswith(f"{package}.") for other in listed)
            return package if alone else None
    return None


def _is_package(module: str) -> bool:
    """Whether ``module`` is a package (a folder with ``__init__.py``) of the installed source."""
    root = Path(__file__).resolve().parents[2]
    return (root / module.replace(".", "/") / "__init__.py").is_file()


def _shown(module: str, row: ChapterRow, style: str) -> str:
    # A module inside a package listed earlier in the row is shown by its name below that package.
    parents = [p for p in row.modules[:row.modules.index(module)] if module.startswith(f"{p}.")]
    if style == "book":
        return f"{{py:mod}}`~{module}`" if parents else f"{{py:mod}}`{module}`"
    path = module.replace(".", "/") + ("/" if _is_package(module) else ".py")
    if parents:
        path = path[len(min(parents, key=len)) + 1:]  # below the outermost
    return f"`{path}`"


def _label(row: ChapterRow, style: str) -> str:
    if style == "book":
        if row.page is None:
            return row.title
        return f"{row.number} {{doc}}`{row.page}`" if row.number is not None else f"{{doc}}`{row.page}`"
    if row.page is None:
        return row.title
    return f"{row.number} *{row.title}*" if row.number is not None else f"*{row.title}* (`book/{row.page}.md`)"


def chapter_table(style: str = "book") -> str:
    """:data:`CHAPTERS` as a Markdown table.

    Parameters
    ----------
    style : {"book", "readme"}, default "book"
        ``"book"``: the columns *Chapter* (a link to the page) and *Modules*
        (links into the API page), as ``book/intro.md`` and ``book/api.md``
        show it. ``"readme"``: the columns *chapter*, *modules* (paths in the
        checkout) and *what*, as the README's section *Layout* shows it.

    Returns
    -------
    str
        The table, one line per row, ending with a newline.

    Raises
    ------
    ValueError
        If ``style`` is not one of :data:`TABLE_STYLES`.
    """
    if style not in TABLE_STYLES:
        raise ValueError(f"style must be one of {TABLE_STYLES}, got {style!r}")
    lines = ["| Chapter | Modules |", "|---|---|"] if style == "book" else \
        ["| chapter | modules | what |", "|---|---|---|"]
    for row in CHAPTERS:
        modules = ", ".join(_shown(module, row, style) for module in row.modules)
        if style == "book":
            lines.append(f"| {_label(row, style)} | {modules or row.summary} |")
        else:
            lines.append(f"| {_label(row, style)} | {modules} | {row.summary} |")
    return "\n".join(lines) + "\n"
