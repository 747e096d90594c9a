"""Featurizing beyond one process: launcher ranks with resumable shards, and streaming parquet output.

Three ways to spread featurization, from simplest to largest:

* ``featurizer.apply(ds, num_proc=N)``: `datasets` worker processes on one machine (see :class:`NAGFeaturizer`).
* :func:`featurize_sharded`: one process per GPU or node under ``torchrun`` / ``accelerate launch`` (rank and world
  size from ``RANK`` / ``WORLD_SIZE``). Rank ``r`` takes the ``r``-th contiguous slice of the rows, cuts it into
  shards of ``shard_rows`` rows and writes each shard atomically under ``OUT.shards/rank-0000r-of-0000W/`` with a
  JSON completion marker (row range, spec, counts, sha256 of the Arrow files). A rerun skips every shard whose
  marker validates, so a killed job resumes where it stopped. Rank 0 then waits for all ranks' markers (polling
  the shared folder: no process group needed) and assembles the shards, in the original row order, into ``OUT``.
* :func:`featurize_streaming`: reads the input as a stream and writes ``OUT/part-000000.parquet`` ... one shard at
  a time (features, spec included, in each file's metadata plus a ``nag_spec.json`` sidecar), so a pool larger
  than memory or disk cache can be processed; it resumes the same way.

Length bucketing happens inside every ``map`` batch (rows are sorted by token count before the forward batches),
so no padding-heavy batches are formed whichever path is used.

>>> contiguous_range(10, world_size=3, rank=0), contiguous_range(10, world_size=3, rank=2)
((0, 4), (7, 10))
>>> shard_ranges(0, 10, shard_rows=4)
[(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import NAGError
from .atomic import atomic_dir, atomic_write_text, check_replaceable, lock_dir

__all__ = [
    "ShardError",
    "contiguous_range",
    "featurize_sharded",
    "featurize_streaming",
    "shard_ranges",
    "shards_dir",
    "world_from_env",
]

SHARD_FORMAT = "nag_datasets.featurize_shard"
RANK_FORMAT = "nag_datasets.featurize_rank"
STREAM_FORMAT = "nag_datasets.featurize_stream"
FORMAT_VERSION = 1
RANK_MARKER = "complete.json"
STREAM_MARKER = "_SUCCESS.json"
#: Test hook: ``"i"`` or ``"i:seconds"`` makes the process sleep after finishing shard (or part) ``i``.
SLEEP_ENV = "NAG_DATASETS_TEST_SLEEP_AFTER_SHARD"


class ShardError(NAGError, RuntimeError):
    """A shard folder or marker is inconsistent with this run (other input, settings or world size)."""


# -- plan ------------------------------------------------------------------------------------------------------


def world_from_env(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun``, ``accelerate launch`` or deepspeed (else 0, 1, 0)."""
    env = dict(os.environ if env is None else env)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"invalid launcher environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


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
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    return [(a, min(a + shard_rows, stop)) for a in range(start, stop, shard_rows)]


def shards_dir(output: str | os.PathLike[str]) -> Path:
    """The folder that holds the ranks' shards of ``output`` (``OUT.shards`` beside it)."""
    p = Path(output)
    return p.with_name(p.name + ".shards")


def _rank_dir(root: Path, rank: int, world: int) -> Path:
    return root / f"rank-{rank:05d}-of-{world:05d}"


# -- helpers ---------------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _sleep_hook(index: int) -> None:
    value = os.environ.get(SLEEP_ENV)
    if not value:
        return
    which, _, seconds = value.partition(":")
    if int(which) == index:
        print(f"[nag_datasets test hook] finished shard {index}; sleeping", flush=True)
        time.sleep(float(seconds or 3600))


def _add_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of shard or part reports (as stored in their markers), as a dict for the JSON summary."""
    from ..featurize.featurizer import FeaturizeReport

    return sum((FeaturizeReport.from_dict(r) for r in reports), FeaturizeReport.empty()).to_dict()


def _prepare(featurizer: Any, local_rank: int) -> Any:
    """A copy of ``featurizer`` pinned to this rank's GPU (``cuda:LOCAL_RANK``) when CUDA exists and no device is set."""
    featurizer = copy.copy(featurizer)
    if featurizer.device is None:
        import torch

        if torch.cuda.is_available():
            featurizer.device = f"cuda:{local_rank % torch.cuda.device_count()}"
    return featurizer


def _run_key(featurizer: Any, ds: Any) -> dict[str, Any]:
    """What a shard must share with this run to be reused: input identity, the text settings and the specs."""
    specs = {}
    for t in featurizer.neuron_types:
        d = featurizer.spec(t).to_dict()
        d.pop("library_version", None)
        specs[f"nag_{t}"] = d
    return {
        "input": {"fingerprint": getattr(ds, "_fingerprint", None), "rows": len(ds), "columns": list(ds.column_names)},
        "text_column": featurizer.text_column,
        "on_invalid": featurizer.on_invalid,
        "specs": specs,
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    return all(_sha256(folder / name) == digest for name, digest in files.items())


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

    ``input`` is a path :func:`nag_datasets.storage.formats.load_any` reads (every rank opens it; use a folder on a filesystem
    all nodes share) or a `datasets.Dataset`. ``rank``/``world_size``/``local_rank`` default to the launcher's
    environment (:func:`world_from_env`). ``shard_rows`` cuts each rank's slice into resumable shards (None: one
    shard per rank). Shards whose marker validates (same input fingerprint, row range, settings, spec and
    sha256 of the Arrow files) are skipped, so rerunning the same command after a crash finishes the job. Rank 0
    waits up to ``wait_timeout`` seconds (None: forever) for the other ranks, writes ``output`` with
    :func:`nag_datasets.storage.formats.save_any` and removes ``OUT.shards`` unless ``keep_shards``. Extra keyword arguments
    go to ``featurizer.apply`` (e.g. ``num_proc``). Returns a summary (``report`` holds the counts of this rank,
    or of the whole output on rank 0).
    """
    from ..featurize.featurizer import FeaturizeReport, InvalidTextError
    from .formats import load_any, save_any

    env_rank, env_world, env_local = world_from_env()
    rank = env_rank if rank is None else int(rank)
    world = env_world if world_size is None else int(world_size)
    local = (env_local if rank == env_rank else rank) if local_rank is None else int(local_rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not within world_size {world}")
    out_path = Path(output)
    if out_path.exists() and not overwrite:
        raise FileExistsError(f"{out_path} exists; pass overwrite=True (--overwrite) to replace it")
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
            marker = _read_json(marker_path)
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
                    files = {p.name: _sha256(p) for p in sorted(tmp.glob("*.arrow"))}
                marker = {"format": SHARD_FORMAT, "version": FORMAT_VERSION, **expect, "rows": b - a,
                          "report": report, "files": files, "created": _now()}
                atomic_write_text(marker_path, json.dumps(marker, indent=1, sort_keys=True))
                done += 1
            assert marker is not None
            shard_reports.append(marker["report"])
            shard_entries.append({"shard": i, "row_start": a, "row_stop": b, "files": sorted(marker["files"]),
                                  "marker_sha256": _sha256(marker_path)})
            _sleep_hook(i)
        rank_report = _add_reports(shard_reports)
        atomic_write_text(rank_marker, json.dumps(
            {"format": RANK_FORMAT, "version": FORMAT_VERSION, "rank": rank, "world_size": world, "row_start": start,
             "row_stop": stop, "run": key, "shards": shard_entries, "report": rank_report, "created": _now()},
            indent=1, sort_keys=True))
    summary: dict[str, Any] = {"rank": rank, "world_size": world, "rows": [start, stop], "shards_done": done,
                               "shards_skipped": skipped, "shards_dir": str(root), "report": rank_report}
    if rank != 0:
        return summary

    markers = _wait_for_ranks(root, world, key, wait_timeout, poll_interval)
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
    summary.update(output=str(out_path), report=_add_reports([m["report"] for m in markers]))
    return summary


def _wait_for_ranks(root: Path, world: int, key: dict[str, Any], timeout: float | None,
                    poll: float) -> list[dict[str, Any]]:
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        markers, missing = [], []
        for r in range(world):
            m = _read_json(_rank_dir(root, r, world) / RANK_MARKER) if not _busy(_rank_dir(root, r, world)) else None
            if m is None or m.get("format") != RANK_FORMAT:
                missing.append(r)
                continue
            if m.get("run") != key:
                raise ShardError(f"rank {r} featurized a different input or with different settings than rank 0 "
                                 f"(compare {_rank_dir(root, r, world) / RANK_MARKER})")
            markers.append(m)
        if not missing:
            return markers
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"ranks {missing} of {world} did not finish within {timeout} s (markers under {root})")
        time.sleep(poll)


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


# -- streaming -------------------------------------------------------------------------------------------------


def _open_stream(source: Any) -> Any:
    """An `IterableDataset` over ``source`` (a path :func:`load_any` accepts, a Dataset or an IterableDataset)."""
    import datasets

    from .formats import load_any

    if isinstance(source, datasets.IterableDataset):
        return source
    if isinstance(source, datasets.Dataset):
        return source.to_iterable_dataset()
    return load_any(source, streaming=True)


def _part_ok(path: Path, rows: int, features: Any) -> bool:
    import pyarrow.parquet as pq
    from datasets import Features

    try:
        meta = pq.read_metadata(str(path))
        schema = pq.read_schema(str(path))
    except (OSError, ValueError):
        return False
    return meta.num_rows == rows and Features.from_arrow_schema(schema) == features


def featurize_streaming(
    input: Any,
    output: str | os.PathLike[str],
    featurizer: Any,
    *,
    shard_rows: int = 10_000,
    map_batch_size: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Stream ``input`` through ``featurizer`` into ``output/part-NNNNNN.parquet`` files of ``shard_rows`` rows.

    Only one shard is held in memory at a time. Every part carries the output features (spec included) in its
    parquet metadata; ``output/nag_spec.json`` holds the specs too, and ``output/_SUCCESS.json`` the counts once
    complete. Rerunning after an interruption keeps the complete parts (same row counts and features) and
    featurizes the rest. Rows are featurized in ``map`` batches of ``map_batch_size`` (default as
    ``featurizer.apply``), so with ``shard_rows`` a multiple of it the result equals ``featurizer.apply`` on the
    whole dataset. ``load_any(output)`` reads the folder back.
    """
    from datasets import Dataset

    from ..featurize.featurizer import FeaturizeReport
    from .formats import SIDECAR

    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    if world_from_env()[1] > 1:
        raise ValueError("streaming runs in one process; under a launcher (WORLD_SIZE > 1) use featurize_sharded "
                         "(nag-datasets featurize --sharded) instead")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    stream = _open_stream(input)
    batch_size = map_batch_size or max(featurizer.batch_size * 8, 64)
    with lock_dir(out):
        if (out / STREAM_MARKER).exists() and not overwrite:
            raise FileExistsError(f"{out} holds a complete result; pass overwrite=True (--overwrite) to redo it")
        if out.exists() and overwrite:
            # Only a folder of our parts is replaced; anything else in it is the user's.
            check_replaceable(out, overwrite=True, marker=None, what="streaming output",
                              ours=lambda n: n.startswith(("part-", ".part-")) or n in (SIDECAR, STREAM_MARKER))
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        stray = [p.name for p in out.iterdir() if not (p.name.startswith("part-") or p.name.startswith(".part-")
                                                        or p.name == SIDECAR)]
        if stray:
            raise FileExistsError(f"{out} holds files that are not streaming parts ({', '.join(stray[:5])})")
        for tmp in out.glob(".part-*"):
            tmp.unlink()
        in_features = stream.features
        features = featurizer.output_features(in_features) if in_features is not None else None
        if features is not None:
            _write_sidecar(out / SIDECAR, features)
        # Keep the complete prefix of parts; anything after the first bad one is redone.
        kept = 0
        if features is not None:
            while _part_ok(out / f"part-{kept:06d}.parquet", shard_rows, features):
                kept += 1
        for p in out.glob("part-*.parquet"):
            if int(p.stem.split("-")[1]) >= kept:
                p.unlink()
        reports = [_part_report(out / f"part-{i:06d}.parquet") for i in range(kept)]
        rows = kept * shard_rows
        index = kept
        for chunk in (stream.skip(rows) if rows else stream).iter(batch_size=shard_rows):
            n = len(next(iter(chunk.values()))) if chunk else 0
            if n == 0:
                break
            merged: dict[str, list[Any]] = {k: list(v) for k, v in chunk.items()}
            new: dict[str, list[Any]] = {}
            for lo in range(0, n, batch_size):
                part = featurizer({k: v[lo:lo + batch_size] for k, v in merged.items()})
                for k, v in part.items():
                    new.setdefault(k, []).extend(v)
            merged.update(new)
            if features is None:  # the source declares no features (e.g. JSON lines): infer from the first shard
                features = featurizer.output_features(Dataset.from_dict(dict(chunk)).features)
                _write_sidecar(out / SIDECAR, features)
            ds = Dataset.from_dict(merged, features=features)
            tmp = out / f".part-{index:06d}.tmp"
            ds.to_parquet(str(tmp))
            os.replace(tmp, out / f"part-{index:06d}.parquet")
            reports.append(FeaturizeReport.from_dataset(ds).to_dict())
            rows += n
            _sleep_hook(index)
            index += 1
            if n < shard_rows:
                break
        report = _add_reports(reports)
        summary = {"format": STREAM_FORMAT, "version": FORMAT_VERSION, "output": str(out), "parts": index,
                   "parts_skipped": kept, "shard_rows": shard_rows, "report": report, "created": _now()}
        atomic_write_text(out / STREAM_MARKER, json.dumps(summary, indent=1, sort_keys=True))
    return summary


def _write_sidecar(path: Path, features: Any) -> None:
    from ..columns import spec_from_feature

    specs = {name: spec_from_feature(f).to_dict() for name, f in features.items() if spec_from_feature(f) is not None}
    atomic_write_text(path, json.dumps(specs, indent=1, sort_keys=True))


def _part_report(path: Path) -> dict[str, Any]:
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..featurize.featurizer import NULL_STATUSES

    table = pq.read_table(str(path), columns=["nag_status", "nag_tokens"])
    status = Counter(table.column("nag_status").to_pylist())
    nulls = {k: status[k] for k in NULL_STATUSES if status.get(k)}
    tokens = pc.sum(table.column("nag_tokens")).as_py() or 0
    return {"rows": table.num_rows, "featurized_rows": status.get("ok", 0) + status.get("truncated", 0),
            "truncated_rows": status.get("truncated", 0), "null_rows": sum(nulls.values()), "null_by_reason": nulls,
            "tokens": int(np.int64(tokens))}
