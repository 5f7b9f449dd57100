"""Files are written whole or not at all."""

from __future__ import annotations

import pytest

from mkdbook.core.atomic import write_atomically


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
