"""Interruption beyond featurization: a SIGKILLed ``nag-datasets select`` or ``export`` leaves the old output (or
none), never a complete-looking partial one; a rerun completes it; concurrent writers of one output are refused.

The kill tests run the real command through ``hooked_cli.py``, which arms the package's write-stage hook
(:func:`nag_datasets.storage.atomic.stage_reached`): the subprocess writes a marker file and sleeps at the named
stage of the atomic write, so the kill provably lands mid-way.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures
from hooked_cli import PAUSE_ENV, PAUSE_MARKER_ENV
from hooked_cli import SCRIPT as HOOKED_CLI  # the CLI with the write-stage hook armed

from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.recipe import get_recipe
from nag_datasets.signatures.columns import signature_columns
from nag_datasets.signatures.formats import load_any, save_any
from nag_datasets.storage.atomic import FolderLockedError, lock_dir

#: Generous bound for a subprocess to reach its pause point (a safety net against hangs, not a timing assert).
STARTUP_LIMIT_S = 180


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("nag-datasets")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "nag_datasets.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in (PAUSE_ENV, PAUSE_MARKER_ENV):
        env.pop(key, None)
    env.update({"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"})
    env.update(extra)
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(_cli() + args, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=STARTUP_LIMIT_S, check=False)


def _ok(args: list[str], cwd: Path) -> None:
    done = _run(args, cwd)
    assert done.returncode == 0, done.stderr[-3000:]


class Paused:
    """A CLI subprocess held at a pause stage; ``kill()`` SIGKILLs it there."""

    def __init__(self, args: list[str], cwd: Path, stage: str) -> None:
        self.marker = cwd / f"paused-{stage.replace(':', '_')}.marker"
        self.marker.unlink(missing_ok=True)
        env = _env(**{PAUSE_ENV: stage, PAUSE_MARKER_ENV: str(self.marker)})
        self.proc = subprocess.Popen([sys.executable, str(HOOKED_CLI), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True)
        deadline = time.monotonic() + STARTUP_LIMIT_S
        while not self.marker.is_file():
            if self.proc.poll() is not None:
                _, err = self.proc.communicate()
                pytest.fail(f"the process ended (rc {self.proc.returncode}) before reaching {stage}: {err[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"the process did not reach {stage}")
            time.sleep(0.05)
        assert stage in self.marker.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.communicate(timeout=60)
        assert self.proc.returncode == -signal.SIGKILL


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _visible(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".")}


def _leftovers(root: Path, name: str) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.name.startswith(f".{name}."))


def _same_selection(a, b) -> None:
    """Same rows, values, specs and recipe (the recipe's creation time aside)."""
    assert a.column_names == b.column_names
    assert a.to_dict() == b.to_dict()
    assert signature_columns(a) == signature_columns(b)
    ra, rb = get_recipe(a).to_dict(), get_recipe(b).to_dict()
    ra.pop("created"), rb.pop("created")
    assert ra == rb


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A synthetic featurized pool, a profile and an uninterrupted reference selection (no model needed)."""
    root = tmp_path_factory.mktemp("interrupt")
    spec = make_spec()
    n = 400
    rng = np.random.default_rng(0)
    make_signature_dataset(random_signatures(n, spec, 1), spec,
                           {"text": [f"document {i}" for i in range(n)], "num_tokens": rng.integers(1, 60, n).tolist(),
                            "source": [("web", "code")[i % 2] for i in range(n)]},
                           null_rows=[7, 8], path=root / "pool")
    NAGProfile.from_signatures(random_signatures(30, spec, 2), spec, description="target").save(root / "profile")
    _ok(["select", "pool", "reference", "--profile", "profile", "--fraction", "0.2"], root)
    return root


def _select_args(out: str, fraction: str = "0.2", *extra: str) -> list[str]:
    return ["select", "pool", out, "--profile", "profile", "--fraction", fraction, *extra]


# -- select ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["atomic_dir:filled", "atomic_dir:swapped"])
def test_killed_select_keeps_old_output_and_rerun_completes(work, stage):
    out = f"out-{stage.split(':')[1]}"
    _ok(_select_args(out, "0.6"), work)  # the old state: another selection
    old = _snapshot(work / out)
    before = _visible(work)

    paused = Paused(_select_args(out, "0.2", "--overwrite"), work, stage)
    # Mid-way: the complete new selection sits in a hidden temporary sibling, not yet renamed.
    assert _leftovers(work, out)
    paused.kill()

    # Nothing new and visible but the killed run's lock file (a finished or refused run deletes its own; a
    # SIGKILLed one cannot, and the OS lock it held is gone, so the file blocks nothing).
    assert _visible(work) - {paused.marker.name, f"{out}.lock"} <= before
    if (work / out).exists():
        assert _snapshot(work / out) == old
    else:
        assert stage == "atomic_dir:swapped"  # the old one was moved aside, the new one not yet in place
        with pytest.raises(FileNotFoundError):
            load_any(work / out)
    for leftover in _leftovers(work, out):  # clearly partial: hidden, named as temporary or old
        assert ".tmp-" in leftover.name or ".old-" in leftover.name

    _ok(_select_args(out, "0.2", "--overwrite"), work)
    _same_selection(load_any(work / out), load_any(work / "reference"))
    assert not [p for p in _leftovers(work, out) if ".old-" in p.name]  # restored, then replaced


@pytest.mark.slow
def test_killed_mid_swap_select_is_restored_by_the_next_run(work):
    out = "out-restored"
    _ok(_select_args(out, "0.6"), work)
    old = _snapshot(work / out)
    Paused(_select_args(out, "0.2", "--overwrite"), work, "atomic_dir:swapped").kill()
    assert not (work / out).exists()
    # A later run that refuses to overwrite finds the previous selection back in place.
    proc = _run(_select_args(out, "0.2"), work)
    assert proc.returncode != 0 and "killed mid-swap" in proc.stderr
    assert _snapshot(work / out) == old
    assert not [p for p in _leftovers(work, out) if ".old-" in p.name]


@pytest.mark.slow
def test_killed_fresh_select_leaves_no_output(work):
    paused = Paused(_select_args("fresh"), work, "atomic_dir:filled")
    paused.kill()
    assert not (work / "fresh").exists()
    assert all(p.name.startswith(".fresh.tmp-") for p in _leftovers(work, "fresh"))
    _ok(_select_args("fresh"), work)  # no --overwrite needed: nothing was left under the name
    _same_selection(load_any(work / "fresh"), load_any(work / "reference"))


@pytest.mark.slow
def test_killed_select_to_parquet_keeps_old_file(work):
    _ok(_select_args("sel.parquet", "0.6"), work)
    old = (work / "sel.parquet").read_bytes(), (work / "sel.parquet.spec.json").read_bytes()
    paused = Paused(_select_args("sel.parquet", "0.2", "--overwrite"), work, "save_any:filled")
    paused.kill()
    assert ((work / "sel.parquet").read_bytes(), (work / "sel.parquet.spec.json").read_bytes()) == old
    _ok(_select_args("sel.parquet", "0.2", "--overwrite"), work)
    _same_selection(load_any(work / "sel.parquet"), load_any(work / "reference"))


@pytest.mark.slow
def test_concurrent_select_of_one_output_is_refused(work):
    paused = Paused(_select_args("shared"), work, "atomic_dir:filled")
    try:
        second = _run(_select_args("shared", "0.5", "--overwrite"), work)
        assert second.returncode != 0
        assert "another run is writing" in second.stderr
        assert not (work / "shared").exists()
    finally:
        paused.kill()
    _ok(_select_args("shared"), work)
    _same_selection(load_any(work / "shared"), load_any(work / "reference"))


# -- export ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exports(work):
    """Two selections saved to disk, and the uninterrupted export of the first."""
    pool = load_any(work / "pool")
    profile = NAGProfile.load(work / "profile")
    for name, fraction in (("selected", 0.2), ("selected_old", 0.5)):
        if not (work / name).exists():
            select_top_fraction(pool, fraction, token_column="num_tokens", profile=profile).save_to_disk(
                str(work / name))
    _ok(["export", "selected", "export_ref", "--token-column", "num_tokens", "--source-column", "source"], work)
    return work


def _export_args(src: str, out: str, *extra: str) -> list[str]:
    return ["export", src, out, "--token-column", "num_tokens", "--source-column", "source", *extra]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["atomic_write:filled", "atomic_dir:swapped"])
def test_killed_export_keeps_old_export_and_rerun_completes(exports, stage):
    work = exports
    out = f"export-{stage.replace(':', '-')}"
    _ok(_export_args("selected_old", out), work)
    old = _snapshot(work / out)
    before = _visible(work)

    paused = Paused(_export_args("selected", out, "--overwrite"), work, stage)
    (tmp,) = [p for p in _leftovers(work, out) if ".tmp-" in p.name]
    if stage == "atomic_write:filled":
        # Truly mid-way: shards written, the recipe (the export's first atomic file write) in flight, no card yet.
        assert list((tmp / "data").glob("train-*.parquet")) and not (tmp / "nag_recipe.json").is_file()
        assert list(tmp.glob(".nag_recipe.json*")) and not (tmp / "README.md").is_file()
    paused.kill()

    assert _visible(work) - {paused.marker.name, f"{out}.lock"} <= before  # the killed run's lock file may stay
    if (work / out).exists():
        assert _snapshot(work / out) == old
    else:
        assert stage == "atomic_dir:swapped"
    _ok(_export_args("selected", out, "--overwrite"), work)
    assert _snapshot(work / out) == _snapshot(work / "export_ref")


@pytest.mark.slow
def test_concurrent_export_is_refused(exports):
    work = exports
    paused = Paused(_export_args("selected", "export_shared"), work, "atomic_dir:filled")
    try:
        second = _run(_export_args("selected", "export_shared", "--overwrite"), work)
        assert second.returncode == 1 and "another run is writing" in second.stderr
    finally:
        paused.kill()
    assert not (work / "export_shared").exists()
    _ok(_export_args("selected", "export_shared"), work)
    assert _snapshot(work / "export_shared") == _snapshot(work / "export_ref")


# -- save_any in process -----------------------------------------------------------------------------------------


@pytest.fixture
def small():
    spec = make_spec()
    return make_signature_dataset(random_signatures(20, spec), spec, {"text": [f"t{i}" for i in range(20)]})


@pytest.mark.fast
@pytest.mark.parametrize("name", ["ds", "ds.parquet", "ds.jsonl"])
def test_save_any_is_locked(small, tmp_path, name):
    with lock_dir(tmp_path / name), pytest.raises(FolderLockedError, match="another run is writing"):
        save_any(small, tmp_path / name)
    assert not (tmp_path / name).exists()
    save_any(small, tmp_path / name)
    assert load_any(tmp_path / name)["text"][:] == small["text"][:]
    with pytest.raises(FileExistsError, match="overwrite"):
        save_any(small, tmp_path / name)


@pytest.mark.fast
@pytest.mark.parametrize("name", ["ds", "ds.parquet"])
def test_failed_save_any_keeps_old_output_and_no_visible_partial(small, tmp_path, monkeypatch, name):
    from datasets import Dataset

    save_any(small, tmp_path / name)
    old = _snapshot(tmp_path / name) if (tmp_path / name).is_dir() else (tmp_path / name).read_bytes()
    writer = "save_to_disk" if name == "ds" else "to_parquet"
    real = getattr(Dataset, writer)

    def half_then_fail(self, path, *args, **kwargs):
        real(self.select(range(3)), path, *args, **kwargs)  # a partial output...
        raise OSError("disk full")  # ...then a crash

    monkeypatch.setattr(Dataset, writer, half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_any(small.select(range(10)), tmp_path / name, overwrite=True)
    now = _snapshot(tmp_path / name) if (tmp_path / name).is_dir() else (tmp_path / name).read_bytes()
    assert now == old
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([name] + (
        [f"{name}.spec.json"] if name.endswith(".parquet") else []))


@pytest.mark.fast
def test_save_any_overwrite_replaces_whole_folder_and_stale_sidecar(small, tmp_path):
    from datasets import Dataset

    save_any(small, tmp_path / "ds")
    save_any(small.select(range(4)), tmp_path / "ds", overwrite=True)
    assert len(load_any(tmp_path / "ds")) == 4
    save_any(small, tmp_path / "x.parquet")
    assert (tmp_path / "x.parquet.spec.json").is_file()
    save_any(Dataset.from_dict({"text": ["plain"]}), tmp_path / "x.parquet", overwrite=True)
    assert not (tmp_path / "x.parquet.spec.json").exists()
    assert load_any(tmp_path / "x.parquet")["text"][:] == ["plain"]
    shutil.rmtree(tmp_path / "ds")
