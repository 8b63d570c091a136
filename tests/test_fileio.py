"""delfverify.fileio: a file is replaced whole or not at all, and no temporary file is left behind."""

from __future__ import annotations

import pytest

from delfverify.fileio import atomic_write


def test_atomic_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_write(target, "w", encoding="utf-8") as handle:
        handle.write("first\n")
    with atomic_write(target, "wb") as handle:
        handle.write(b"second\n")
    assert target.read_bytes() == b"second\n"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_a_failure_while_writing_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_write(target, "w") as handle:
            handle.write("new and incomplete")
            raise RuntimeError("half-way")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_write_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "x", "a"):
            pass


def test_only_durable_writes_wait_for_the_disk(tmp_path, monkeypatch):
    import os

    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    with atomic_write(tmp_path / "a", "w") as handle:
        handle.write("kept across a power cut")
    with atomic_write(tmp_path / "b", "w", durable=False) as handle:
        handle.write("a cache entry, recomputed if lost")
    assert len(synced) == 1
    assert (tmp_path / "b").read_text() == "a cache entry, recomputed if lost"
