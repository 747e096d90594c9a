"""Scale-out featurization: map workers, launcher ranks (torchrun), kill-and-resume, streaming parquet output."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, Features, Value, load_from_disk
from hooked_cli import SCRIPT as HOOKED_CLI
from hooked_cli import SLEEP_ENV

from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.featurize.ranks import world_from_env
from nag_datasets.featurize.sharded import contiguous_range, featurize_sharded, shard_ranges, shards_dir
from nag_datasets.featurize.streaming import featurize_streaming
from nag_datasets.signatures.formats import load_any

#: Small and quick on two cores: the bundled model's first two layers, 32 tokens.
SMALL = {"layers": [0, 1], "max_length": 32, "batch_size": 4}
SMALL_ARGS = ["--layers", "0,1", "--max-length", "32", "--batch-size", "4"]


def _sigs(ds: Dataset) -> np.ndarray:
    return np.stack(ds.with_format("numpy")["nag_fwd_up"])


def _assert_same(a: Dataset, b: Dataset, max_rows_differing: int = 0) -> None:
    assert a.features == b.features
    assert len(a) == len(b)
    for name in a.column_names:
        if name != "nag_fwd_up":
            assert a[name][:] == b[name][:], name
    assert (_sigs(a) != _sigs(b)).any(axis=-1).sum() <= max_rows_differing


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", SLEEP_ENV):
        env.pop(k, None)
    return env


def _cli(*args: str, hooked: bool = False) -> list[str]:
    """The featurize command; ``hooked``: through ``hooked_cli.py`` (the write-stage hook armed for kill tests)."""
    entry = [str(HOOKED_CLI)] if hooked else ["-m", "nag_datasets.cli"]
    return [sys.executable, *entry, "featurize", *args, *SMALL_ARGS]


@pytest.fixture(scope="module")
def small():
    return NAGFeaturizer(**SMALL)


@pytest.fixture(scope="module")
def reference(small, pool_dir):
    """The in-memory, single-process result (map batches of 4 rows)."""
    return small.apply(load_from_disk(str(pool_dir)), batch_size=4)


# -- plan ------------------------------------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize("n,world", [(10, 3), (12, 2), (4, 4), (0, 2), (7, 1)])
def test_contiguous_range_is_datasets_contiguous_shard(n, world):
    ds = Dataset.from_dict({"i": list(range(n))})
    assert contiguous_range(3, 4, 3) == (3, 3)  # more ranks than rows: the last ranks get nothing
    for rank in range(world):
        a, b = contiguous_range(n, world, rank)
        assert list(range(a, b)) == ds.shard(num_shards=world, index=rank, contiguous=True)["i"][:]


@pytest.mark.fast
def test_shard_ranges_and_env():
    assert shard_ranges(3, 10, 3) == [(3, 6), (6, 9), (9, 10)]
    assert shard_ranges(3, 10, None) == [(3, 10)]
    assert shard_ranges(5, 5, 2) == []
    assert world_from_env({}) == (0, 1, 0)
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == (3, 4, 1)
    with pytest.raises(ValueError, match="invalid launcher"):
        world_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    assert shards_dir("/x/out") == Path("/x/out.shards")


# -- map workers -----------------------------------------------------------------------------------------------


@pytest.mark.fast
def test_cuda_under_fork_raises_clear_error(monkeypatch):
    import multiprocess
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(multiprocess, "get_start_method", lambda allow_none=False: "fork")
    featurizer = NAGFeaturizer()
    assert featurizer._pick_device(3) == "cuda:1"
    with pytest.raises(RuntimeError, match="CUDA cannot be used in forked datasets workers.*spawn"):
        featurizer._ensure_loaded(rank=1)


class _CountingFeaturizer(NAGFeaturizer):
    """Stands in for the model: the 'signature' is the text length (enough to see which cache files map used)."""

    def output_features(self, input_features=None):
        feats = Features(dict(input_features or {}))
        feats["nag_tokens"] = Value("int32")
        feats["nag_status"] = Value("string")
        return feats

    def __call__(self, batch, *args):
        return {"nag_tokens": [len(t) for t in batch["text"]], "nag_status": ["ok"] * len(batch["text"])}


@pytest.mark.fast
def test_fresh_gives_each_num_proc_its_own_cache(tmp_path):
    Dataset.from_dict({"text": [f"doc {i}" * (i + 1) for i in range(8)]}).save_to_disk(str(tmp_path / "ds"))
    ds = load_from_disk(str(tmp_path / "ds"))
    f = _CountingFeaturizer()
    two = f.apply(ds, num_proc=2)
    assert len(two.cache_files) == 2
    # Without fresh, datasets reuses the 2-shard cache whatever num_proc says now.
    assert f.apply(ds, num_proc=4).cache_files == two.cache_files
    four = f.apply(ds, num_proc=4, fresh=True)
    assert len(four.cache_files) == 4
    again = f.apply(ds, num_proc=4, fresh=True)  # the fresh fingerprint is stable: a rerun hits its cache
    assert again.cache_files == four.cache_files
    assert four["nag_tokens"][:] == two["nag_tokens"][:] == [len(t) for t in ds["text"]]


@pytest.mark.slow
def test_rank_is_none_without_num_proc(small, pool_dir, reference):
    ds = load_from_disk(str(pool_dir))
    out = ds.map(small, batched=True, batch_size=4, with_rank=True, features=small.output_features(ds.features))
    _assert_same(out, reference)
    # What map passes with with_rank=True and num_proc None/1: (batch, rank=None) or (batch, indices, None).
    direct = small({"text": ["Water boils at 100 degrees."]}, None)
    assert direct["nag_status"] == ["ok"]
    assert (small({"text": ["Water boils at 100 degrees."]}, [7], None)["nag_fwd_up"][0] == direct["nag_fwd_up"][0]).all()


# -- launcher shards -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sharded_in_process_equals_apply_and_resumes(small, pool_dir, reference, tmp_path):
    out = tmp_path / "out"
    s = featurize_sharded(str(pool_dir), out, small, rank=0, world_size=1, shard_rows=4, keep_shards=True)
    assert (s["shards_done"], s["shards_skipped"], s["report"]["rows"]) == (3, 0, 12)
    _assert_same(load_any(out), reference)
    marker = json.loads((shards_dir(out) / "rank-00000-of-00001" / "shard-00001.json").read_text())
    assert (marker["row_start"], marker["row_stop"], marker["rows"]) == (4, 8, 4)
    assert marker["run"]["specs"]["nag_fwd_up"]["layers"] == [0, 1] and marker["files"]
    # A corrupted shard is redone, valid ones are kept.
    arrow = next((shards_dir(out) / "rank-00000-of-00001" / "shard-00002").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:-8] + b"corrupt!")
    s = featurize_sharded(str(pool_dir), out, small, rank=0, world_size=1, shard_rows=4, overwrite=True)
    assert (s["shards_done"], s["shards_skipped"]) == (1, 2)
    _assert_same(load_any(out), reference)
    assert not shards_dir(out).exists()  # removed once assembled (keep_shards=False)
    with pytest.raises(FileExistsError):
        featurize_sharded(str(pool_dir), out, small, rank=0, world_size=1)


@pytest.mark.slow
def test_torchrun_two_ranks_equal_single_process(pool_dir, reference, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nag_datasets.cli", "featurize", str(pool_dir), str(out), *SMALL_ARGS, "--keep-shards"]
    run = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    root = shards_dir(out)
    markers = [json.loads((root / f"rank-0000{r}-of-00002" / "complete.json").read_text()) for r in (0, 1)]
    assert [(m["row_start"], m["row_stop"]) for m in markers] == [(0, 6), (6, 12)]
    # Each rank batched its own rows: fp32 signatures agree except at near-ties.
    _assert_same(load_any(out), reference, max_rows_differing=2)


def _digest(folder: Path) -> dict[str, tuple[int, str]]:
    return {p.relative_to(folder).as_posix(): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_without_redoing_shards(pool_dir, tmp_path):
    out, log = tmp_path / "out", tmp_path / "log.txt"
    cmd = _cli(str(pool_dir), str(out), "--shard-rows", "4", "--keep-shards", hooked=True)
    rank_dir = shards_dir(out) / "rank-00000-of-00001"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env={**_env(), SLEEP_ENV: "1:600"}, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while "finished shard 1; sleeping" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the run never reached shard 1"
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert (rank_dir / "shard-00000.json").is_file() and (rank_dir / "shard-00001.json").is_file()
    assert not (rank_dir / "shard-00002.json").exists() and not (rank_dir / "complete.json").exists()
    assert not out.exists()
    before = {k: v for k, v in _digest(rank_dir).items() if k.startswith(("shard-00000", "shard-00001"))}
    assert {"shard-00000.json", "shard-00001.json", "shard-00000/data.arrow", "shard-00001/data.arrow"} <= set(before)

    rerun = subprocess.run(cmd, check=False, env=_env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout[rerun.stdout.index("{"):])
    assert (summary["shards_done"], summary["shards_skipped"]) == (1, 2)
    after = _digest(rank_dir)
    assert {k: after[k] for k in before} == before  # markers and shard data untouched (mtime and bytes)
    assert "shard-00002.json" in after and "complete.json" in after

    fresh = subprocess.run(_cli(str(pool_dir), str(tmp_path / "ref"), "--shard-rows", "4"), check=False, env=_env(),
                           capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    _assert_same(load_any(out), load_any(tmp_path / "ref"))  # same batches, same process setup: identical


# -- streaming -------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_iterable_map_equals_in_memory(small, pool_dir, reference):
    ds = load_from_disk(str(pool_dir))
    stream = ds.to_iterable_dataset().map(small, batched=True, batch_size=4,
                                          features=small.output_features(ds.features))
    _assert_same(Dataset.from_list(list(stream), features=stream.features), reference)


@pytest.mark.slow
def test_streaming_parts_equal_in_memory_and_resume(small, pool_dir, reference, tmp_path):
    out = tmp_path / "stream"
    s = featurize_streaming(str(pool_dir), out, small, shard_rows=4, map_batch_size=4)
    assert (s["parts"], s["report"]["rows"]) == (3, 12)
    assert sorted(p.name for p in out.iterdir()) == ["_SUCCESS.json", "nag_spec.json", "part-000000.parquet",
                                                     "part-000001.parquet", "part-000002.parquet"]
    _assert_same(load_any(out), reference)
    # Interrupted after two parts: they are kept as they are, the rest is redone.
    (out / "part-000002.parquet").unlink()
    (out / "_SUCCESS.json").unlink()
    kept = {p: _digest(out)[p] for p in ("part-000000.parquet", "part-000001.parquet")}
    s = featurize_streaming(str(pool_dir), out, small, shard_rows=4, map_batch_size=4)
    assert (s["parts"], s["parts_skipped"]) == (3, 2)
    assert {p: _digest(out)[p] for p in kept} == kept
    _assert_same(load_any(out), reference)
    with pytest.raises(FileExistsError, match="complete result"):
        featurize_streaming(str(pool_dir), out, small, shard_rows=4)


@pytest.mark.slow
def test_streaming_cli_from_jsonl_keeps_spec(pool_dir, reference, tmp_path):
    from nag_datasets.cli.app import main
    from nag_datasets.signatures.columns import get_spec

    load_from_disk(str(pool_dir)).to_json(str(tmp_path / "pool.jsonl"))
    out = tmp_path / "out"
    assert main(["featurize", str(tmp_path / "pool.jsonl"), str(out), "--streaming", "--shard-rows", "5",
                 *SMALL_ARGS]) == 0
    assert len(list(out.glob("part-*.parquet"))) == 3
    got = load_any(out)
    assert get_spec(got, "nag_fwd_up") == get_spec(reference, "nag_fwd_up")
    assert json.loads((out / "nag_spec.json").read_text())["nag_fwd_up"]["layers"] == [0, 1]
    # Map batches of 5 instead of 4: fp32 signatures agree except at near-ties.
    assert got["text"][:] == reference["text"][:] and got["nag_status"][:] == reference["nag_status"][:]
    assert (_sigs(got) != _sigs(reference)).any(axis=-1).sum() <= 2
