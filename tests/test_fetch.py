"""Published results: ``mkdbook publish``, then ``mkdbook fetch`` from a local HTTP server.

One module-scoped build trains a tiny teacher and its student into one
``MKDBOOK_HOME`` and publishes it; each test serves a copy of that
publication, good or spoiled, and fetches it into a fresh ``MKDBOOK_HOME``.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import shutil
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import cluster_methods
from cluster_methods import epochs_logged, tiny_grid, tiny_segments
from mkdbook.cli import main
from mkdbook.core.keys import bytes_digest
from mkdbook.experiments.fetch import PAGES_URL, default_url, fetch
from mkdbook.experiments.grids import run_grid
from mkdbook.experiments.published import ARCHIVE, MANIFEST, published_files

DATA = tiny_segments()
GRID = tiny_grid(folds=(0,))  # the teacher and its student on one fold: two cells


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The build's MKDBOOK_HOME, its table, and its publication (manifest.json, results.tar.gz)."""
    cluster_methods.install()
    root = tmp_path_factory.mktemp("build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MKDBOOK_HOME", str(root / "home"))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            table = run_grid(GRID, DATA, progress=False)
        finally:
            torch.set_num_threads(threads)
        # What a build leaves beside its cells: a stored table, a lease, an
        # interrupted write, an unfinished cell, a cell of older package source.
        results = root / "home" / "results"
        (results / "tables").mkdir()
        (results / "tables" / "abc.json").write_text("{}")
        (results / "abc.lease").write_text("")
        (results / "unfinished" / "train").mkdir(parents=True)
        (results / "unfinished" / "train" / "last.pt").write_bytes(b"state")
        finished = next(p for p in results.iterdir() if (p / "result.json").is_file())
        older = results / "older"
        shutil.copytree(finished, older)
        record = json.loads((older / "result.json").read_text())
        (older / "result.json").write_text(json.dumps({**record, "package_source": "0" * 64}))
        next((results / "tables").iterdir()).with_name(".abc.json.tmp").write_text("{")
        for name in ("teacher_final.pt", "teacher_final.pt.sha256"):  # what no chapter loads
            (finished / "train" / name).write_bytes(b"weights")
        assert main(["publish", str(root / "published"), "--home", str(root / "home")]) == 0
    return root / "home", table, root / "published"


@pytest.fixture
def served(tmp_path, built):
    """A copy of the publication, served over HTTP: ``(folder, url)``; the test may spoil the folder first."""
    folder = tmp_path / "served"
    shutil.copytree(built[2], folder)
    server = QuietServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):  # the test's output is pytest's
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that hangs up mid-transfer (as fetch does past the recorded
        # size) would print a traceback to the standard error the tests read.
        pass


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A fresh, empty MKDBOOK_HOME (and one torch thread: at this size hand-offs cost more than arithmetic)."""
    folder = tmp_path / "fresh"
    monkeypatch.setenv("MKDBOOK_HOME", str(folder))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield folder
    torch.set_num_threads(threads)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def _tar(members: dict[str, bytes | tarfile.TarInfo]) -> bytes:
    """A gzipped tar archive of ``members``: file contents, or headers as they are (links)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            if isinstance(data, tarfile.TarInfo):
                archive.addfile(data)
                continue
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _serve(folder: Path, archive: bytes) -> None:
    """Serve ``archive`` with its true size and SHA-256 in the manifest, the members' records unchanged."""
    (folder / ARCHIVE).write_bytes(archive)
    manifest = _manifest(folder)
    manifest["archive"] = {"name": ARCHIVE, "sha256": bytes_digest(archive), "bytes": len(archive)}
    (folder / MANIFEST).write_text(json.dumps(manifest))


def _members(folder: Path) -> dict[str, bytes]:
    with tarfile.open(folder / ARCHIVE) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}


def _refused(capsys, url: str, fresh: Path, match: str) -> None:
    """``mkdbook fetch`` fails with one line matching ``match`` and leaves ``fresh`` without any result."""
    assert main(["fetch", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mkdbook fetch: error: "), err
    assert match in err, err
    assert not [p for p in fresh.rglob("*") if p.is_file()]


def test_publish_packs_finished_cells_of_this_package_and_stored_tables(built):
    home, _, published = built
    manifest = _manifest(published)
    cells = {name.split("/")[1] for name in manifest["files"]}
    assert len(cells - {"tables"}) == 2 and "tables" in cells
    assert "unfinished" not in cells and "older" not in cells
    assert not [n for n in manifest["files"] if n.endswith((".lease", ".tmp")) or "teacher_final" in n]
    assert set(_members(published)) == set(manifest["files"]) == set(published_files(home))
    assert any(n.endswith("train/best.pt") for n in manifest["files"])


def test_a_good_archive_fills_a_fresh_home_and_nothing_is_trained(built, served, fresh, capsys):
    _, table, _ = built
    folder, url = served
    assert main(["fetch", url]) == 0
    assert capsys.readouterr().out.startswith("mkdbook fetch: installed 2 cells and 1 stored tables")
    assert not [p for p in fresh.iterdir() if p.name.startswith(".fetch-")]  # staging removed
    again = run_grid(GRID, DATA, progress=False)
    assert epochs_logged() == []  # every cell, teacher included, came from the archive
    pd.testing.assert_frame_equal(again, table)
    # A second fetch keeps what is there; deleting a cell's folder trains that cell again.
    assert fetch(url).kept == 3
    shutil.rmtree(next(p for p in (fresh / "results").iterdir() if p.name != "tables"))
    run_grid(GRID, DATA, progress=False)
    assert len({line.split(" epoch")[0] for line in epochs_logged()}) == 1


def test_a_tampered_archive_is_refused(served, fresh, capsys):
    folder, url = served
    data = bytearray((folder / ARCHIVE).read_bytes())
    data[len(data) // 2] ^= 1
    (folder / ARCHIVE).write_bytes(bytes(data))
    _refused(capsys, url, fresh, "SHA-256 does not match the manifest's")


def test_a_tampered_member_is_refused(served, fresh, capsys):
    folder, url = served
    members = _members(folder)
    name = next(n for n in members if n.endswith("result.json"))
    members[name] = members[name].replace(b'"accuracy": 0', b'"accuracy": 1', 1)
    assert len(members[name]) == _manifest(folder)["files"][name]["bytes"]
    _serve(folder, _tar(members))
    _refused(capsys, url, fresh, f"member {name} does not match its SHA-256")


@pytest.mark.parametrize("name", ["../escaped.json", "/tmp/absolute.json", "results/../../escaped.json"])
def test_a_member_outside_the_cache_folder_is_refused(served, fresh, capsys, name):
    folder, url = served
    _serve(folder, _tar({**_members(folder), name: b"{}"}))
    _refused(capsys, url, fresh, f"{ARCHIVE}: refused (")


def test_a_link_member_is_refused(served, fresh, capsys):
    folder, url = served
    members = _members(folder)
    name = next(n for n in members if n.endswith("result.json"))
    link = tarfile.TarInfo(name)
    link.type, link.linkname = tarfile.SYMTYPE, "predictions.npz"  # inside the folder, and still refused
    _serve(folder, _tar({**members, name: link}))
    _refused(capsys, url, fresh, "is not a regular file")


def test_a_manifest_member_outside_results_is_refused(served, fresh, capsys):
    folder, url = served
    manifest = _manifest(folder)
    manifest["files"]["../escaped.json"] = {"sha256": "0" * 64, "bytes": 2}
    (folder / MANIFEST).write_text(json.dumps(manifest))
    _refused(capsys, url, fresh, "is not a relative path under results/")


def test_a_truncated_archive_is_refused(served, fresh, capsys):
    folder, url = served
    (folder / ARCHIVE).write_bytes((folder / ARCHIVE).read_bytes()[:-100])
    _refused(capsys, url, fresh, "truncated")


def test_an_archive_longer_than_the_manifest_records_is_refused(served, fresh, capsys):
    folder, url = served
    size = _manifest(folder)["archive"]["bytes"]
    (folder / ARCHIVE).write_bytes((folder / ARCHIVE).read_bytes() + bytes(2 << 20))
    _refused(capsys, url, fresh, f"{ARCHIVE}: more than the {size} bytes expected")


def test_a_download_that_breaks_off_is_refused(served, fresh, capsys, monkeypatch):
    folder, url = served
    # The server announces the whole archive but closes the connection halfway.
    monkeypatch.setattr(Quiet, "copyfile", lambda self, source, target: target.write(
        source.read()[:1000] if self.path.endswith(ARCHIVE) else source.read()))
    _refused(capsys, url, fresh, f"{ARCHIVE}: truncated (1000 of the")


def test_an_archive_of_another_package_version_is_ignored(served, fresh, capsys):
    folder, url = served
    manifest = _manifest(folder)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "package_version": "0.0.1"}))
    assert main(["fetch", url]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"mkdbook fetch: ignored {url}: built by mkdbook 0.0.1")
    assert "nothing installed" in captured.err
    assert not [p for p in fresh.rglob("*") if p.is_file()]


def test_an_archive_of_other_package_source_is_ignored(served, fresh):
    folder, url = served
    manifest = _manifest(folder)
    (folder / MANIFEST).write_text(json.dumps({**manifest, "package_source": "f" * 64}))
    fetched = fetch(url)
    assert fetched.stale is not None and "source ffffffffffff" in fetched.stale and fetched.cells == 0
    assert not fresh.exists() or not any(fresh.iterdir())


def test_a_missing_or_malformed_manifest_is_one_line(served, fresh, capsys):
    folder, url = served
    _refused(capsys, url + "nowhere/", fresh, "HTTP Error 404")
    (folder / MANIFEST).write_bytes(gzip.compress(b"{}"))
    _refused(capsys, url, fresh, "not JSON")
    (folder / MANIFEST).write_text('{"format": 2}')
    _refused(capsys, url, fresh, "format must be 1")


def test_the_workflow_publishes_where_fetch_looks_by_default():
    from mkdbook import __version__

    root = Path(__file__).resolve().parent.parent
    text = (root / ".github" / "workflows" / "book.yml").read_text()
    steps = yaml.safe_load(text)["jobs"]["build"]["steps"]
    publish = next(step for step in steps if "mkdbook.cli publish" in step.get("run", ""))
    assert publish["if"] == "github.event_name != 'pull_request'"  # the default profile's cells only
    assert "print(mkdbook.__version__)" in publish["run"]
    assert '"_build/html/results/$version" --home .mkdbook-cache/book' in publish["run"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert steps.index(publish) < steps.index(upload) and upload["with"]["path"] == "_build/html"
    assert PAGES_URL in text  # where the workflow says the pages go
    assert default_url() == f"{PAGES_URL}results/{__version__}/"


def test_publish_refuses_a_folder_that_holds_published_results(built, capsys):
    home, _, published = built
    before = (published / MANIFEST).read_bytes()
    assert main(["publish", str(published), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds published results already" in err
    assert (published / MANIFEST).read_bytes() == before
