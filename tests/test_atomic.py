"""Files are written whole or not at all; a failed write is an OSError naming the file."""

from __future__ import annotations

import errno
import io
import os

import pytest

from mkdbook.core.atomic import FAULT_VARIABLE, LOG_VARIABLE, write_atomically


def half_then_fail(stream):
    stream.write(b'{"half": ')
    raise OSError("disk full")


def test_failed_write_leaves_nothing_or_the_old_file(tmp_path):
    path = tmp_path / "result.json"
    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert list(tmp_path.iterdir()) == []
    write_atomically(path, lambda s: s.write(b"{}"))
    with pytest.raises(OSError):
        write_atomically(path, half_then_fail)
    assert path.read_bytes() == b"{}" and list(tmp_path.iterdir()) == [path]


def test_interrupt_is_treated_like_a_failure(tmp_path):
    def interrupted(stream):
        stream.write(b"x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomically(tmp_path / "a.bin", interrupted)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["ENOSPC", "EIO", "EROFS", "EACCES", "EDQUOT"])
def test_a_failed_write_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch, kind):
    path = tmp_path / "result.json"
    write_atomically(path, lambda s: s.write(b"old"))
    monkeypatch.setenv(LOG_VARIABLE, str(tmp_path / "writes.log"))
    monkeypatch.setenv(FAULT_VARIABLE, f"2:{kind}")  # the first write logged is the next one
    write_atomically(path, lambda s: s.write(b"new"))
    with pytest.raises(OSError) as raised:
        write_atomically(path, lambda s: s.write(b"newer"))
    code = getattr(errno, kind)
    assert (raised.value.errno, raised.value.filename, raised.value.strerror) == (code, str(path), os.strerror(code))
    assert path.read_bytes() == b"new" and sorted(tmp_path.iterdir()) == [path, tmp_path / "writes.log"]
    assert (tmp_path / "writes.log").read_text().splitlines()[::2] == [f"begin 1 {path}", f"begin 2 {path}"]


class _FullDisk(io.BytesIO):
    """A stream that takes 100 bytes and then fails as a full disk does."""

    def write(self, data):
        if self.tell() + len(data) > 100:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(data)


def test_torch_saves_runtime_error_becomes_the_os_error_naming_the_file(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "last.pt"
    with pytest.raises(RuntimeError, match="unexpected pos|PytorchStreamWriter"):
        torch.save({"x": torch.zeros(1000)}, _FullDisk())  # what torch.save alone reports
    with pytest.raises(OSError) as raised:
        write_atomically(path, lambda stream: torch.save({"x": torch.zeros(1000)}, _FullDisk()))
    assert (raised.value.errno, raised.value.filename) == (errno.ENOSPC, str(path))

    def bare(stream):  # the message alone, without the OSError it was raised over
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1455232 vs 1455124")

    with pytest.raises(OSError) as raised:
        write_atomically(path, bare)
    assert raised.value.errno == errno.EIO and raised.value.filename == str(path)
    assert list(tmp_path.iterdir()) == []


def test_an_exclusive_write_creates_a_whole_file_once(tmp_path):
    path = tmp_path / "cell.lease"
    write_atomically(path, lambda s: s.write(b"first"), exclusive=True)
    with pytest.raises(FileExistsError):
        write_atomically(path, lambda s: s.write(b"second"), exclusive=True)
    assert path.read_bytes() == b"first" and list(tmp_path.iterdir()) == [path]
