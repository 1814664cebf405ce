"""experiments/files.py: canonical JSON, atomic writes, and group-readable study files."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiments import files
from experiments.ingest import ingest


@pytest.fixture
def umask_077():
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_canonical_json_is_sorted_indented_with_newline():
    data = files.canonical_json({"b": 1, "a": ["é", 2]})
    assert data == '{\n  "a": [\n    "é",\n    2\n  ],\n  "b": 1\n}\n'.encode()
    assert json.loads(data) == {"a": ["é", 2], "b": 1}


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.json"
    files.write_json(target, {"v": 1})
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        with files.atomic_write(target) as fh:
            fh.write(b"half a fi")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == before
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.json"]


def test_written_files_are_group_readable_even_under_umask_077(tmp_path, umask_077):
    paths = [files.write_json(tmp_path / "a.json", {}),
             files.write_with(tmp_path / "b.npy", lambda fh: np.save(fh, np.zeros(3)))]
    for p in paths:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & stat.S_IRGRP, oct(mode)
        assert not mode & stat.S_IROTH, oct(mode)  # the umask still keeps others out


def test_an_ingested_study_is_readable_by_its_group(tmp_path, umask_077):
    src = tmp_path / "src"
    for side in ("left", "right"):
        (src / side).mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (20, 24), (40 * i, 9, 200)).save(src / side / f"{i:05d}.png")
    study = tmp_path / "study"
    ingest(src, study, progress=False)
    written = [p for p in study.rglob("*") if p.is_file()]
    assert len(written) == 7  # manifest + 6 images
    for p in written:
        assert stat.S_IMODE(p.stat().st_mode) & stat.S_IRGRP, f"{p} is not group-readable"
    for d in [study, *[p for p in study.rglob("*") if p.is_dir()]]:
        assert stat.S_IMODE(d.stat().st_mode) & (stat.S_IRGRP | stat.S_IXGRP) == \
            stat.S_IRGRP | stat.S_IXGRP, f"folder {d} is not open to the group"


def test_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = files.write_text(Path(tmp_path) / "t.txt", "x")
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
    finally:
        os.umask(old)


def test_reading_the_umask_never_changes_it(monkeypatch):
    """file_mode reads the umask from /proc without setting it, so another thread that
    creates a file meanwhile never sees a borrowed umask."""
    from experiments import files

    old = os.umask(0o027)
    try:
        def no_umask(mask):
            raise AssertionError("os.umask called while reading the umask")
        monkeypatch.setattr(files.os, "umask", no_umask)
        assert files._current_umask() == 0o027
        assert files.file_mode() == 0o640
    finally:
        monkeypatch.undo()
        os.umask(old)
