"""Atomic writes: a result file is the old one or the new one, never half of either, even on a full disk."""
import errno
import os

import pytest

from gfa_jax import files


def test_atomic_writes_leave_readable_files_and_no_temporaries(tmp_path):
    files.write_text_atomic(tmp_path / "table.md", "| a |\n")
    assert (tmp_path / "table.md").read_text() == "| a |\n"
    assert (tmp_path / "table.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_a_full_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "results.jsonl"
    files.write_text_atomic(target, '{"row": 1}\n')

    def disk_full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        files.write_text_atomic(target, '{"row": 1}\n{"row": 2}\n')
    assert target.read_text() == '{"row": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.jsonl"]
