"""Wall time of a chapter from scratch, then from published results (``mkdbook publish`` / ``mkdbook fetch``).

Four steps, each in a subprocess from the repository root, in one scratch folder:

cold
    The chapter executed (``jupyter nbconvert --execute``) with a fresh
    ``MKDBOOK_HOME``: the cohort is simulated and every network trained.
publish
    ``mkdbook publish`` of that ``MKDBOOK_HOME``, as the book's workflow does.
fetch
    ``mkdbook fetch`` of the publication from a local HTTP server into a
    second fresh ``MKDBOOK_HOME``.
fetched
    The chapter executed again in that second ``MKDBOOK_HOME``: the cohort
    is simulated again (cohorts are not published), the networks come from
    the archive. The cell folders of ``results/`` are listed before and
    after: a folder that appears is a network the chapter trained.

Run from the repository root::

    python benchmarks/fetch.py [--chapter 08_ablations] [--profile default] [--keep] [--json OUT.json]

Every key hashes the package source, so the source must not change while
it runs (a cell stored by other source is neither published nor found):
on a checkout that is being edited, time a copy of it, with ``PYTHONPATH``
naming the copy so that the kernels import its package::

    git archive HEAD | tar -x -C /tmp/snapshot
    cd /tmp/snapshot && PYTHONPATH=$PWD python benchmarks/fetch.py

``MKDBOOK_WORKERS`` is passed on as it is set (unset: one process, as in
JupyterLab). Nothing is asserted: it prints each step's wall time, the ratio
of the cold to the fetched run, the archive's size, the cells trained by the
fetched run and the load average, since other processes slow every number
down; ``--json`` also writes them as JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the figures are this script's output
        pass


def _timed(name: str, command: list[str], env: dict[str, str], log: Path) -> float:
    print(f"\n== {name}\n   {' '.join(command)}\n   log: {log}", flush=True)
    began = time.perf_counter()
    with log.open("w") as stream:
        status = subprocess.run(command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - began
    print(f"   {seconds:.0f} s, exit status {status}", flush=True)
    if status != 0:
        raise SystemExit(f"{name} failed (exit status {status}); see {log}")
    return seconds


def _cells(home: Path) -> set[str]:
    results = home / "results"
    return {p.name for p in results.iterdir() if p.is_dir() and p.name != "tables"} if results.is_dir() else set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapter", default="08_ablations", help="a notebook of book/ (default 08_ablations)")
    parser.add_argument("--profile", default="default", choices=("fast", "default", "paper"))
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder and logs")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="mkdbook-fetch-bench-"))
    cold, fetched, published = scratch / "home-cold", scratch / "home-fetched", scratch / "published"
    notebook = ROOT / "book" / f"{args.chapter}.ipynb"
    execute = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
               "--ExecutePreprocessor.timeout=-1", "--output-dir", str(scratch), str(notebook)]
    cli = [sys.executable, "-m", "mkdbook.cli"]
    env = {**os.environ, "MKDBOOK_PROFILE": args.profile}
    figures: dict[str, object] = {"chapter": args.chapter, "profile": args.profile,
                                  "workers": os.environ.get("MKDBOOK_WORKERS", "1")}
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(published)))
    try:
        figures["cold_s"] = _timed("cold", execute, {**env, "MKDBOOK_HOME": str(cold)}, scratch / "cold.log")
        figures["publish_s"] = _timed("publish", [*cli, "publish", str(published), "--home", str(cold)], env,
                                      scratch / "publish.log")
        figures["archive_mb"] = (published / "results.tar.gz").stat().st_size / 1e6
        figures["cells_published"] = len({n.split("/")[1] for n in json.loads(
            (published / "manifest.json").read_text())["files"]} - {"tables"})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        figures["fetch_s"] = _timed("fetch", [*cli, "fetch", url, "--home", str(fetched)], env,
                                    scratch / "fetch.log")
        before = _cells(fetched)
        figures["fetched_s"] = _timed("fetched", execute, {**env, "MKDBOOK_HOME": str(fetched)},
                                      scratch / "fetched.log")
        figures["cells_trained_after_fetch"] = len(_cells(fetched) - before)
        figures["ratio_cold_to_fetched"] = figures["cold_s"] / figures["fetched_s"]
    finally:
        server.server_close()
        figures["load_average"] = list(os.getloadavg())
        print("\n" + "\n".join(f"{name:<28} {value:.3g}" if isinstance(value, float) else f"{name:<28} {value}"
                               for name, value in figures.items()), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
