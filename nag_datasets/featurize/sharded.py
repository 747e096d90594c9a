"""Featurizing beyond one process: launcher ranks with resumable shards (streaming runs: :mod:`.streaming`).

Three ways to spread featurization, from simplest to largest:

* ``featurizer.apply(ds, num_proc=N)``: `datasets` worker processes on one machine (see :class:`NAGFeaturizer`).
* :func:`featurize_sharded`: one process per GPU or node under ``torchrun`` / ``accelerate launch`` (rank and world
  size from ``RANK`` / ``WORLD_SIZE``). Rank ``r`` takes the ``r``-th contiguous slice of the rows, cuts it into
  shards of ``shard_rows`` rows and writes each shard atomically under ``OUT.shards/rank-0000r-of-0000W/`` with a
  JSON completion marker (row range, spec, counts, sha256 of the Arrow files). A rerun skips every shard whose
  marker validates, so a killed job resumes where it stopped. Rank 0 then waits for all ranks' markers (polling
  the shared folder: no process group needed) and assembles the shards, in the original row order, into ``OUT``.
* :func:`~.streaming.featurize_streaming`: reads the input as a stream and writes ``OUT/part-000000.parquet`` ...
  one shard at a time (features, spec included, in each file's metadata plus a ``nag_spec.json`` sidecar), so a pool
  larger than memory or disk cache can be processed; under a launcher each rank streams its own split of the input
  and resumes from ``IterableDataset.state_dict()`` checkpoints (see :mod:`.streaming`).

Length bucketing happens inside every ``map`` batch (rows are sorted by token count before the forward batches),
so no padding-heavy batches are formed whichever path is used.

>>> contiguous_range(10, world_size=3, rank=0), contiguous_range(10, world_size=3, rank=2)
((0, 4), (7, 10))
>>> shard_ranges(0, 10, shard_rows=4)
[(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, OutputExistsError, argument
from ..signatures.formats import load_any, save_any
from ..storage import atomic as _atomic
from ..storage import location
from ..storage.atomic import atomic_dir, atomic_write_text, lock_dir
from ..storage.cache import cache_root
from ..storage.checksums import sha256_file
from .featurizer import InvalidTextError
from .ranks import FORMAT_VERSION, ShardError, featurizer_specs, now, read_json, resolve_world, wait_for_ranks
from .report import FeaturizeReport, sum_reports

__all__ = ["contiguous_range", "featurize_sharded", "shard_ranges", "shards_dir"]

SHARD_FORMAT = "nag_datasets.featurize_shard"
RANK_FORMAT = "nag_datasets.featurize_rank"
RANK_MARKER = "complete.json"


# -- plan ------------------------------------------------------------------------------------------------------


def contiguous_range(num_rows: int, world_size: int, rank: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``rank``: the same split as ``ds.shard(world_size, rank, contiguous=True)``."""
    div, mod = divmod(num_rows, world_size)
    start = div * rank + min(rank, mod)
    return start, start + div + (1 if rank < mod else 0)


def shard_ranges(start: int, stop: int, shard_rows: int | None) -> list[tuple[int, int]]:
    """``[start, stop)`` cut into consecutive pieces of ``shard_rows`` rows (one piece when None)."""
    if stop <= start:
        return []
    if not shard_rows:
        return [(start, stop)]
    if shard_rows < 1:
        raise InvalidArgumentError(f"shard_rows must be >= 1, got {shard_rows}")
    return [(a, min(a + shard_rows, stop)) for a in range(start, stop, shard_rows)]


def shards_dir(output: str | os.PathLike[str]) -> Path:
    """The folder that holds the ranks' shards of ``output``: ``OUT.shards`` beside a local ``OUT``; for a remote
    ``OUT`` (fsspec URL) a folder under the cache root named after the URL (set ``$NAG_DATASETS_CACHE`` to a
    filesystem all nodes share when ranks run on several machines)."""
    if location.is_remote(output):
        digest = hashlib.sha256(os.fspath(output).encode()).hexdigest()[:16]
        return cache_root() / "shards" / f"{os.fspath(output).rstrip('/').rsplit('/', 1)[-1]}-{digest}.shards"
    p = location.local_path(output)
    return p.with_name(p.name + ".shards")


def _rank_dir(root: Path, rank: int, world: int) -> Path:
    return root / f"rank-{rank:05d}-of-{world:05d}"


# -- helpers ---------------------------------------------------------------------------------------------------


def _prepare(featurizer: Any, local_rank: int) -> Any:
    """A copy of ``featurizer`` pinned to this rank's GPU (``cuda:LOCAL_RANK``) when CUDA exists and no device is
    set."""
    featurizer = copy.copy(featurizer)
    if featurizer.device is None:
        import torch

        if torch.cuda.is_available():
            featurizer.device = f"cuda:{local_rank % torch.cuda.device_count()}"
    return featurizer


def _run_key(featurizer: Any, ds: Any) -> dict[str, Any]:
    """What a shard must share with this run to be reused: input identity, the text settings and the specs."""
    return {
        "input": {"fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds), "columns": list(ds.column_names)},
        "text_column": featurizer.text_column,
        "on_invalid": featurizer.on_invalid,
        "specs": featurizer_specs(featurizer),
    }


# -- launcher shards -------------------------------------------------------------------------------------------


def _shard_marker_ok(marker: dict[str, Any] | None, folder: Path, expect: dict[str, Any]) -> bool:
    if not marker or marker.get("format") != SHARD_FORMAT or marker.get("version") != FORMAT_VERSION:
        return False
    if any(marker.get(k) != v for k, v in expect.items()):
        return False
    files = marker.get("files")
    if not isinstance(files, dict) or not files or not folder.is_dir():
        return False
    if sorted(p.name for p in folder.glob("*.arrow")) != sorted(files):
        return False
    return all(sha256_file(folder / name) == digest for name, digest in files.items())


def _load_shard(folder: Path, files: list[str]) -> Any:
    from datasets import Dataset, concatenate_datasets

    parts = [Dataset.from_file(str(folder / name)) for name in sorted(files)]
    return parts[0] if len(parts) == 1 else concatenate_datasets(parts)


def featurize_sharded(
    input: Any,
    output: str | os.PathLike[str],
    featurizer: Any,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    local_rank: int | None = None,
    shard_rows: int | None = None,
    overwrite: bool = False,
    keep_shards: bool = False,
    wait_timeout: float | None = None,
    poll_interval: float = 2.0,
    **map_kwargs: Any,
) -> dict[str, Any]:
    """Featurize this rank's contiguous slice of ``input`` shard by shard; rank 0 assembles ``output``.

    ``input`` is a path :func:`nag_datasets.signatures.formats.load_any` reads (every rank opens it; use a folder on a
    filesystem all nodes share, or an fsspec URL) or a `datasets.Dataset`. ``output`` may be an fsspec URL: the shards
    then stay local (:func:`shards_dir`) and rank 0 writes ``output`` remotely with ``save_any``.
    ``rank``/``world_size``/``local_rank`` default to the launcher's environment (:func:`~.ranks.world_from_env`).
    ``shard_rows`` cuts each rank's slice into resumable shards (None: one shard per rank). Shards whose marker
    validates (same input fingerprint, row range, settings, spec and sha256 of the Arrow files) are skipped, so
    rerunning the same command after a crash finishes the job. Rank 0 waits up to ``wait_timeout`` seconds (None:
    forever) for the other ranks, writes ``output`` with :func:`nag_datasets.signatures.formats.save_any` and removes
    ``OUT.shards`` unless ``keep_shards``. Extra keyword arguments go to ``featurizer.apply`` (e.g. ``num_proc``).
    Returns a summary (``report`` holds the counts of this rank, or of the whole output on rank 0).
    """
    rank, world, local = resolve_world(rank, world_size, local_rank)
    out_path: Any = os.fspath(output) if location.is_remote(output) else location.local_path(output)
    if location.occupied(out_path) and not overwrite:
        raise OutputExistsError(f"{out_path} exists; pass {argument('overwrite=True')} to replace it")
    ds = load_any(input) if isinstance(input, (str, os.PathLike)) else input
    featurizer = _prepare(featurizer, local)
    key = _run_key(featurizer, ds)
    start, stop = contiguous_range(len(ds), world, rank)
    pieces = shard_ranges(start, stop, shard_rows)
    root = shards_dir(out_path)
    rdir = _rank_dir(root, rank, world)
    done, skipped, shard_reports, shard_entries = 0, 0, [], []
    with lock_dir(rdir):
        rdir.mkdir(parents=True, exist_ok=True)
        for leftover in rdir.glob(".shard-*"):  # temporary folders of a killed run (we hold the rank's lock)
            shutil.rmtree(leftover, ignore_errors=True)
        rank_marker = rdir / RANK_MARKER
        if rank_marker.exists():
            rank_marker.unlink()  # rewritten below once every shard is verified
        for i, (a, b) in enumerate(pieces):
            folder, marker_path = rdir / f"shard-{i:05d}", rdir / f"shard-{i:05d}.json"
            expect = {"rank": rank, "world_size": world, "shard": i, "row_start": a, "row_stop": b, "run": key}
            marker = read_json(marker_path)
            if _shard_marker_ok(marker, folder, expect):
                skipped += 1
            else:
                if marker_path.exists():
                    marker_path.unlink()
                with atomic_dir(folder) as tmp:
                    sub = ds.select(range(a, b))
                    try:
                        out = featurizer.apply(sub, cache_file_name=str(tmp / "data.arrow"),
                                               load_from_cache_file=False, **map_kwargs)
                    except InvalidTextError as e:  # name the row of the whole input, not of this shard
                        if e.row is None:
                            raise
                        raise InvalidTextError(str(e).replace(f"at row {e.row} ", f"at row {a + e.row} ", 1),
                                               row=a + e.row) from None
                    report = FeaturizeReport.from_dataset(out).to_dict()
                    del out, sub
                    files = {p.name: sha256_file(p) for p in sorted(tmp.glob("*.arrow"))}
                marker = {"format": SHARD_FORMAT, "version": FORMAT_VERSION, **expect, "rows": b - a,
                          "report": report, "files": files, "created": now()}
                atomic_write_text(marker_path, json.dumps(marker, indent=1, sort_keys=True))
                done += 1
            assert marker is not None
            shard_reports.append(marker["report"])
            shard_entries.append({"shard": i, "row_start": a, "row_stop": b, "files": sorted(marker["files"]),
                                  "marker_sha256": sha256_file(marker_path)})
            _atomic.stage_reached("shard:done", index=i, rank=None)
        rank_report = sum_reports(shard_reports)
        atomic_write_text(rank_marker, json.dumps(
            {"format": RANK_FORMAT, "version": FORMAT_VERSION, "rank": rank, "world_size": world, "row_start": start,
             "row_stop": stop, "run": key, "shards": shard_entries, "report": rank_report, "created": now()},
            indent=1, sort_keys=True))
    summary: dict[str, Any] = {"rank": rank, "world_size": world, "rows": [start, stop], "shards_done": done,
                               "shards_skipped": skipped, "shards_dir": str(root), "report": rank_report}
    if rank != 0:
        return summary

    markers = wait_for_ranks(lambda r: _rank_marker(root, r, world, key), world, timeout=wait_timeout,
                             poll=poll_interval, where=f"markers under {root}")
    from datasets import concatenate_datasets

    parts = []
    for m in markers:
        rd = _rank_dir(root, m["rank"], world)
        for entry in m["shards"]:
            parts.append(_load_shard(rd / f"shard-{entry['shard']:05d}", entry["files"]))
    if parts:
        result = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    else:
        result = featurizer.apply(ds)  # an empty input: nothing to shard
    if len(result) != len(ds):
        raise ShardError(f"assembled {len(result)} rows from the shards, the input has {len(ds)}")
    save_any(result, out_path, overwrite=overwrite)  # atomic, under the output's lock
    del parts, result
    if not keep_shards:
        shutil.rmtree(root, ignore_errors=True)
    summary.update(output=str(out_path), report=sum_reports([m["report"] for m in markers]))
    return summary


def _rank_marker(root: Path, rank: int, world: int, key: dict[str, Any]) -> dict[str, Any] | None:
    """Rank ``rank``'s completion marker once it has finished (None while its folder is locked or it has none)."""
    folder = _rank_dir(root, rank, world)
    marker = None if _busy(folder) else read_json(folder / RANK_MARKER)
    if marker is None or marker.get("format") != RANK_FORMAT:
        return None
    if marker.get("run") != key:
        raise ShardError(f"rank {rank} featurized a different input or with different settings than rank 0 "
                         f"(compare {folder / RANK_MARKER})")
    return marker


def _busy(folder: Path) -> bool:
    """Whether a process holds the lock of a rank folder (it is still writing; its marker may be stale)."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder.with_name(folder.name + ".lock")))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False
