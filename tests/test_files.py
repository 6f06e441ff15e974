"""Atomic writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import os

import pytest

from landscape_core import files
from landscape_core.files import atomic_write_text


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "risk" / "report.json"
    atomic_write_text(path, "old")  # its folder is made
    assert path.read_text() == "old"

    def stopped(src, dst):  # noqa: ANN001 - a kill between writing and replacing
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert os.listdir(path.parent) == ["report.json"], "its temporary was removed"
    monkeypatch.undo()
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and os.listdir(path.parent) == ["report.json"]
