from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from nag_datasets.storage import atomic as _io
from nag_datasets.storage.atomic import FolderLockedError, atomic_dir, atomic_write_bytes, atomic_write_text, lock_dir

pytestmark = pytest.mark.fast


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.txt"]
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_atomic_dir_creates_and_replaces(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        assert not target.exists()
        (tmp / "a").write_text("1")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o700)


def test_atomic_dir_failure_keeps_old_folder(tmp_path):
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError, match="half way"), atomic_dir(target) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("half way")
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError), atomic_dir(tmp_path / "f"):
        pass


def test_lock_dir_refuses_second_writer_in_process(tmp_path):
    folder = tmp_path / "out"
    with lock_dir(folder), pytest.raises(FolderLockedError, match="another run is writing"), lock_dir(folder):
        pass
    with lock_dir(folder):
        pass


def test_lock_dir_refuses_second_process(tmp_path):
    folder = tmp_path / "out"
    code = textwrap.dedent(
        f"""
        import sys, time
        from nag_datasets.storage.atomic import lock_dir
        with lock_dir({str(folder)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ})
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError), lock_dir(folder):
            pass
    finally:
        proc.communicate("done\n", timeout=30)
    with lock_dir(folder):
        pass


def _killed_mid_swap(tmp_path):
    """The state a SIGKILL at ``atomic_dir:swapped`` leaves: the old output moved aside, nothing at the name."""
    old = tmp_path / ".out.old-abc123"
    (old / "out").mkdir(parents=True)
    (old / "out" / "data.txt").write_text("previous complete output")
    return tmp_path / "out"


def test_lock_dir_restores_an_output_left_aside_by_a_killed_swap(tmp_path):
    out = _killed_mid_swap(tmp_path)
    with pytest.warns(RuntimeWarning, match="killed mid-swap"), lock_dir(out):
        assert (out / "data.txt").read_text() == "previous complete output"
    assert not list(tmp_path.glob(".out.old-*"))
    with lock_dir(out), atomic_dir(out) as tmp:  # the next write replaces it as usual
        (tmp / "data.txt").write_text("new")
    assert (out / "data.txt").read_text() == "new"


def test_recover_interrupted_swap_deletes_leftovers_beside_a_complete_output(tmp_path):
    out = _killed_mid_swap(tmp_path)
    out.mkdir()
    (out / "data.txt").write_text("the new output was already in place")
    assert _io.recover_interrupted_swap(out) is False
    assert (out / "data.txt").read_text() == "the new output was already in place"
    assert not list(tmp_path.glob(".out.old-*"))
    assert _io.recover_interrupted_swap(tmp_path / "never_written") is False
