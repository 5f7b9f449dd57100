"""Wall time of the book: the fast profile under nbval and a from-scratch default build.

Two measurements, each run in a subprocess from the repository root:

fast
    ``MKDBOOK_PROFILE=fast pytest --nbval-lax --nbval-current-env book``:
    every chapter executed under nbval, as ``tools/run-tests`` does. Goal:
    10 minutes on a 2-core CPU.
default
    ``MKDBOOK_PROFILE=default tools/build-book`` with a fresh ``MKDBOOK_HOME``
    in a temporary folder (so the simulated cohorts and every grid cell are
    made from scratch) and a fresh build folder: the command the README and
    the publishing workflow run, with the packages it installs and the
    ``MKDBOOK_WORKERS`` it chooses (recorded from its log). Goal: 30 minutes
    on a 2-core CPU. Its first run after ``pyproject.toml`` changed also
    installs the packages into ``.venv``: run ``tools/build-book --help``
    once before timing it.

Run from the repository root::

    python benchmarks/book.py [--only fast|default] [--home DIR] [--keep] [--json OUT.json]

``--home`` reuses a folder as ``MKDBOOK_HOME`` for the fast part (its
cohorts and cached results then count as already made); by default both
parts start from an empty temporary folder. Nothing is asserted: each line
prints the wall time, the goal, their ratio and the command's exit status,
plus the load average, since other processes slow every number down; a
table of each chapter's time follows (the fast part's from pytest's JUnit
report, the sum of the chapter's cells; the default part's from the
execution time Jupyter Book records for each page). ``--json`` also writes
them as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Part:
    """One timed command and its goal."""

    name: str
    command: tuple[str, ...]
    profile: str
    goal_s: float


def parts(scratch: Path) -> dict[str, Part]:
    return {
        "fast": Part("fast profile, nbval over book/",
                     (sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env",
                      "-p", "no:cacheprovider", "-q", f"--junitxml={scratch / 'fast.xml'}", "book"),
                     "fast", 10 * 60),
        "default": Part("default profile, tools/build-book from scratch",
                        ("bash", str(ROOT / "tools" / "build-book"), "--path-output", str(scratch / "build")),
                        "default", 30 * 60),
    }


def build_workers(log: Path) -> int | None:
    """The ``MKDBOOK_WORKERS`` that ``tools/build-book`` says it chose, from its log."""
    found = re.search(r"MKDBOOK_WORKERS=(\d+)", log.read_text(errors="replace")) if log.is_file() else None
    return int(found.group(1)) if found else None


def run(part: Part, home: Path, log: Path) -> tuple[float, int]:
    """Run one part with its profile and ``MKDBOOK_HOME``; return (seconds, exit status)."""
    env = {**os.environ, "MKDBOOK_PROFILE": part.profile, "MKDBOOK_HOME": str(home)}
    print(f"\n== {part.name}\n   {' '.join(part.command)}\n   MKDBOOK_HOME={home}\n   log: {log}", flush=True)
    began = time.perf_counter()
    with log.open("w") as stream:
        status = subprocess.run(part.command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT).returncode
    return time.perf_counter() - began, status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("fast", "default"), help="run one part only")
    parser.add_argument("--home", type=Path, help="MKDBOOK_HOME for the fast part (default: a fresh temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders and logs")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="mkdbook-bench-"))
    chosen = [args.only] if args.only else ["fast", "default"]
    table = parts(scratch)
    results = []
    chapters = {}
    try:
        for name in chosen:
            home = args.home if (name == "fast" and args.home) else scratch / f"home-{name}"
            home.mkdir(parents=True, exist_ok=True)
            began = time.time()
            seconds, status = run(table[name], home, scratch / f"{name}.log")
            results.append((table[name], seconds, status))
            chapters[name] = chapter_times(name, scratch, began)
            print(f"   {seconds / 60:.1f} min, exit status {status}", flush=True)
            if status != 0:
                print(f"   last lines of the log:\n{_tail(scratch / f'{name}.log')}", flush=True)
    finally:
        load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
        print(f"\n{'part':<50} {'wall':>9} {'goal':>9} {'ratio':>6} {'status':>6}")
        for part, seconds, status in results:
            print(f"{part.name:<50} {seconds / 60:7.1f} m {part.goal_s / 60:7.0f} m "
                  f"{seconds / part.goal_s:6.2f} {status:>6}")
        print(f"CPUs: {os.cpu_count()}, load average (1, 5, 15 min): "
              f"{load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}")
        names = sorted({chapter for times in chapters.values() for chapter in times})
        if names:
            print(f"\n{'chapter':<28}" + "".join(f"{name:>12}" for name in chapters))
            for chapter in names:
                print(f"{chapter:<28}" + "".join(
                    f"{chapters[name][chapter]:10.0f} s" if chapter in chapters[name] else f"{'-':>12}"
                    for name in chapters))
        if args.json:
            record = {"cpus": os.cpu_count(), "load_average": list(load),
                      "default_workers": build_workers(scratch / "default.log"),
                      "parts": [{"part": name, "command": list(part.command), "profile": part.profile,
                                 "seconds": seconds, "goal_seconds": part.goal_s, "exit_status": status,
                                 "chapter_seconds": chapters.get(name, {})}
                                for name, (part, seconds, status) in zip(chosen, results)]}
            with open(args.json, "w", encoding="utf-8") as stream:
                json.dump(record, stream, indent=1)
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


def chapter_times(name: str, scratch: Path, began: float) -> dict[str, float]:
    """Seconds per chapter of the part ``name``, or an empty dict when the run left no record.

    For the default part, the execution time Jupyter Book records for each
    page; when the build failed before recording them, the time between the
    moments the executed notebooks were written (``began``, a ``time.time()``,
    opens the first, which then includes Sphinx's start-up).
    """
    if name == "fast":
        report = scratch / "fast.xml"
        if not report.is_file():
            return {}
        seconds: dict[str, float] = defaultdict(float)
        for case in ElementTree.parse(report).iter("testcase"):
            # nbval names a cell's test case after its notebook: "book.03_teacher.ipynb".
            chapter = case.get("file") or case.get("classname", "")
            seconds[Path(chapter).name.removesuffix(".ipynb").removeprefix("book.")] += float(case.get("time", 0))
        return dict(seconds)
    environment = scratch / "build" / "_build" / ".doctrees" / "environment.pickle"
    if not environment.is_file():
        written = sorted((p.stat().st_mtime, p.stem) for p in
                         (scratch / "build" / "_build" / "jupyter_execute").rglob("*.ipynb"))
        starts = [began] + [moment for moment, _ in written[:-1]]
        return {stem: moment - start for (moment, stem), start in zip(written, starts)}
    with environment.open("rb") as stream:
        env = pickle.load(stream)  # our own build's Sphinx environment
    return {Path(doc).name: data["exec_data"]["runtime"]
            for doc, data in getattr(env, "nb_metadata", {}).items() if data.get("exec_data")}


def _tail(path: Path, lines: int = 15) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(f"   | {line}" for line in text[-lines:])


if __name__ == "__main__":
    raise SystemExit(main())
