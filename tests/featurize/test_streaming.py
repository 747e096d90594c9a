"""Streaming featurization across launcher ranks: ``split_dataset_by_node`` splits, ``state_dict`` checkpoints resume.

Equality with the single-process stream: the same rows (each exactly once) with the same signatures up to the
counted near-ties that another batch composition may flip; the ranks' output is read rank after rank, and with a
one-shard input rank ``r`` holds the stream's rows ``r, r + W, ...`` in order."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from hooked_cli import SCRIPT as HOOKED_CLI
from hooked_cli import SLEEP_ENV

from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.featurize.ranks import ShardError
from nag_datasets.featurize.streaming import STREAM_MARKER, checkpoint_name, featurize_streaming, part_name
from nag_datasets.signatures.formats import load_any
from nag_datasets.storage import location
from nag_datasets.storage.atomic import PENDING, IncompleteOutputError

pytestmark = pytest.mark.slow

SMALL = {"layers": [0, 1], "max_length": 32, "batch_size": 4}
SMALL_ARGS = ["--layers", "0,1", "--max-length", "32", "--batch-size", "4"]


class _Counting(NAGFeaturizer):
    """The real featurizer, counting the rows it featurizes and raising once it has done ``fail_after`` rows."""

    rows_seen: ClassVar[list[str]] = []
    fail_after: ClassVar[int | None] = None

    def __call__(self, batch, *args):
        if self.fail_after is not None and len(type(self).rows_seen) >= self.fail_after:
            raise RuntimeError("crash")
        type(self).rows_seen.extend(batch["text"])
        return super().__call__(batch, *args)


def _sigs(ds: Dataset) -> np.ndarray:
    return np.stack(ds.with_format("numpy")["nag_fwd_up"])


def _assert_same(a: Dataset, b: Dataset, max_rows_differing: int = 0) -> None:
    assert a.features == b.features and len(a) == len(b)
    for name in a.column_names:
        if name != "nag_fwd_up":
            assert a[name][:] == b[name][:], name
    assert (_sigs(a) != _sigs(b)).any(axis=-1).sum() <= max_rows_differing


def _digest(folder: Path, names: list[str]) -> dict[str, tuple[int, str]]:
    return {n: ((folder / n).stat().st_mtime_ns, hashlib.sha256((folder / n).read_bytes()).hexdigest()) for n in names}


@pytest.fixture(scope="module")
def single(pool_dir, tmp_path_factory):
    """The single-process stream's result, parts of two rows."""
    out = tmp_path_factory.mktemp("single") / "out"
    featurize_streaming(str(pool_dir), out, NAGFeaturizer(**SMALL), shard_rows=2)
    return load_any(out)


def test_rerun_after_a_crash_resumes_from_the_checkpoint(pool_dir, single, tmp_path):
    out = tmp_path / "out"
    _Counting.rows_seen, _Counting.fail_after = [], 4
    with pytest.raises(RuntimeError, match="crash"):
        featurize_streaming(str(pool_dir), out, _Counting(**SMALL), shard_rows=2)
    ckpt = json.loads((out / checkpoint_name(0, 1)).read_text())
    assert (ckpt["parts"], ckpt["rows"], ckpt["complete"]) == (2, 4, False)
    assert sorted(p.name for p in out.glob("part-*")) == [part_name(0), part_name(1)]
    before = _digest(out, [part_name(0), part_name(1)])

    _Counting.rows_seen, _Counting.fail_after = [], None
    summary = featurize_streaming(str(pool_dir), out, _Counting(**SMALL), shard_rows=2)
    assert summary["ranks"][0]["resumed_from"] == {"parts": 2, "rows": 4, "from_checkpoint": True}
    assert summary["ranks"][0]["rows_featurized"] == 8 and summary["parts_skipped"] == 2
    assert _Counting.rows_seen == single["text"][4:]  # rows before the checkpoint were not featurized again
    assert _digest(out, [part_name(0), part_name(1)]) == before
    assert not (out / checkpoint_name(0, 1)).exists() and (out / STREAM_MARKER).is_file()
    _assert_same(load_any(out), single)


def test_two_ranks_on_memory_url_resume_and_equal_the_single_stream(pool_dir, single):
    url = "memory://ranks-test/out"
    try:
        _Counting.rows_seen, _Counting.fail_after = [], 2
        with pytest.raises(RuntimeError, match="crash"):
            featurize_streaming(str(pool_dir), url, _Counting(**SMALL), shard_rows=2, rank=1, world_size=2)
        with pytest.raises(IncompleteOutputError, match=STREAM_MARKER):
            load_any(url)  # the pending file is there, the completion marker is not
        _Counting.rows_seen, _Counting.fail_after = [], None
        mine = featurize_streaming(str(pool_dir), url, _Counting(**SMALL), shard_rows=2, rank=1, world_size=2)
        assert mine["resumed_from"] == {"parts": 1, "rows": 2, "from_checkpoint": True}
        assert _Counting.rows_seen == single["text"][1::2][2:]  # rank 1 holds rows 1, 3, 5, ...
        summary = featurize_streaming(str(pool_dir), url, NAGFeaturizer(**SMALL), shard_rows=2, rank=0, world_size=2,
                                      wait_timeout=60, poll_interval=0.1)
        assert (summary["parts"], summary["world_size"], summary["report"]["rows"]) == (6, 2, 12)
        names = location.list_names(url)
        assert PENDING not in names and not [n for n in names if n.startswith("_checkpoint")]
        got = load_any(url)
        assert got["text"][:] == single["text"][0::2] + single["text"][1::2]  # rank-major
        order = [single["text"][:].index(t) for t in got["text"]]
        _assert_same(got.select(np.argsort(order)), single, max_rows_differing=2)
    finally:
        location.remove("memory://ranks-test", recursive=True)


def test_ranks_refuse_overwrite_and_parts_of_another_world_size(pool_dir, tmp_path):
    with pytest.raises(ValueError, match="overwrite with several ranks"):
        featurize_streaming(str(pool_dir), tmp_path / "o", NAGFeaturizer(**SMALL), shard_rows=2, rank=0, world_size=2,
                            overwrite=True)
    out = tmp_path / "out"
    out.mkdir()
    (out / part_name(0)).write_bytes(b"")  # a single-process run's part
    with pytest.raises(ShardError, match="another number of ranks"):
        featurize_streaming(str(pool_dir), out, NAGFeaturizer(**SMALL), shard_rows=2, rank=1, world_size=2)
    assert [p.name for p in out.iterdir() if not p.name.endswith(".lock")] == [part_name(0)]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", SLEEP_ENV):
        env.pop(k, None)
    repo = str(Path(__file__).resolve().parents[2])
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([repo, env.get("PYTHONPATH", "")]), **extra)
    return env


def _torchrun(pool: Path, out: Path, *, hooked: bool = False) -> list[str]:
    entry = [str(HOOKED_CLI)] if hooked else ["-m", "nag_datasets.cli"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            *entry, "featurize", str(pool), str(out), "--streaming", "--shard-rows", "2",
            *SMALL_ARGS]


def test_torchrun_two_ranks_equal_the_single_stream_and_resume_after_sigkill(pool_dir, single, tmp_path):
    # An uninterrupted two-rank run: the single process's rows, rank after rank.
    ref = tmp_path / "ref"
    run = subprocess.run(_torchrun(pool_dir, ref), check=False, env=_env(), capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    done = json.loads((ref / STREAM_MARKER).read_text())
    assert [(r["rank"], r["rows"], r["parts"]) for r in done["ranks"]] == [(0, 6, 3), (1, 6, 3)]
    two = load_any(ref)
    assert two["text"][:] == single["text"][0::2] + single["text"][1::2]
    order = [single["text"][:].index(t) for t in two["text"]]
    _assert_same(two.select(np.argsort(order)), single, max_rows_differing=2)

    # Both ranks stop after their second part (checkpoint written); rank 1 is SIGKILLed there.
    out, log = tmp_path / "out", tmp_path / "log.txt"
    with open(log, "w") as f:
        proc = subprocess.Popen(_torchrun(pool_dir, out, hooked=True), env=_env(**{SLEEP_ENV: "1:600"}), stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            sleeping = {int(line.split()[4]): int(line.split()[6]) for line in log.read_text().splitlines()
                        if "finished shard 1; sleeping" in line and "rank" in line}
            if len(sleeping) == 2:
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the ranks never reached their second part"
            time.sleep(0.5)
        os.kill(sleeping[1], signal.SIGKILL)
        proc.wait(timeout=120)  # torchrun sees the dead rank and stops the other one
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0 and not (out / STREAM_MARKER).exists()
    for r in (0, 1):
        ckpt = json.loads((out / checkpoint_name(r, 2)).read_text())
        assert (ckpt["parts"], ckpt["rows"], ckpt["complete"]) == (2, 4, False)
        assert ckpt["state_dict"]  # the stream's position, from IterableDataset.state_dict()
    kept = [part_name(i, r, 2) for r in (0, 1) for i in (0, 1)]
    assert sorted(p.name for p in out.glob("part-*")) == sorted(kept)
    before = _digest(out, kept)

    rerun = subprocess.run(_torchrun(pool_dir, out), check=False, env=_env(), capture_output=True, text=True,
                           timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads((out / STREAM_MARKER).read_text())
    for r in summary["ranks"]:
        assert r["resumed_from"] == {"parts": 2, "rows": 4, "from_checkpoint": True}
        assert (r["rows_featurized"], r["rows"]) == (2, 6)  # only the rows after the checkpoint were featurized
    assert summary["parts_skipped"] == 4 and _digest(out, kept) == before
    _assert_same(load_any(out), two)  # same ranks, same parts, same batches: identical to the uninterrupted run
    assert not list(out.glob("_checkpoint-*"))
    assert load_from_disk(str(pool_dir))["text"][:] == single["text"][:]
