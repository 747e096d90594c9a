"""Streaming featurization: an input stream in, ``OUT/part-*.parquet`` out; resumable; one process or several ranks.

:func:`featurize_streaming` reads the input as an `IterableDataset` and writes one parquet part of ``shard_rows``
rows at a time (features, spec included, in each part's metadata plus a ``nag_spec.json`` sidecar), so a pool
larger than memory or disk cache can be processed. ``OUT`` is a local folder or an fsspec URL.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1) rank ``r`` streams its own split,
``datasets.distributed.split_dataset_by_node(stream, r, W)``: whole input shards per rank when their number is a
multiple of ``W``, else every ``W``-th row (rows ``r, r+W, ...``). Either way the ranks' rows together are the
stream's rows, each exactly once. No process group is needed; rank 0 polls the folder for the others.

What ``OUT`` holds:

* ``part-000000.parquet``, ... (one process) or ``part-r0000r-of-0000W-000000.parquet``, ... (rank ``r`` of ``W``):
  read back in name order, i.e. rank after rank, each rank's rows in its stream order.
* ``_checkpoint-r0000r-of-0000W.json`` while a rank runs: written after each part (the part first), it records the
  parts written, their summed counts and the stream's ``IterableDataset.state_dict()``. A rerun of the same
  command loads that state (``load_state_dict``) and continues after the last part, so rows already featurized
  are neither featurized nor yielded again (`datasets` restarts inside the current input file from its stored
  offset). A part written after the last checkpoint is deleted and redone.
* ``_SUCCESS.json`` last (rank 0, once every rank's final checkpoint is there); the checkpoints are deleted after it.
  A remote ``OUT`` also holds ``.nag_pending.json`` from the first write until then: readers refuse it meanwhile.

>>> part_name(3), part_name(3, rank=1, world_size=2), checkpoint_name(1, 2)
('part-000003.parquet', 'part-r00001-of-00002-000003.parquet', '_checkpoint-r00001-of-00002.json')
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections import Counter
from typing import Any

from ..errors import InvalidArgumentError, OutputExistsError
from ..signatures.columns import spec_from_feature
from ..signatures.formats import SIDECAR, load_any
from ..storage import atomic as _atomic
from ..storage import location
from ..storage.atomic import PENDING, atomic_write_text, check_replaceable, lock_dir, write_pending
from .ranks import FORMAT_VERSION, ShardError, featurizer_specs, now, read_json, resolve_world, wait_for_ranks
from .report import NULL_STATUSES, FeaturizeReport, sum_reports

__all__ = ["STREAM_MARKER", "checkpoint_name", "featurize_streaming", "part_name"]

STREAM_FORMAT = "nag_datasets.featurize_stream"
CHECKPOINT_FORMAT = "nag_datasets.featurize_stream_checkpoint"
STREAM_MARKER = "_SUCCESS.json"


def part_name(index: int, rank: int = 0, world_size: int = 1) -> str:
    """File name of part ``index`` of ``rank`` (the single-process name when ``world_size`` is 1)."""
    if world_size == 1:
        return f"part-{index:06d}.parquet"
    return f"part-r{rank:05d}-of-{world_size:05d}-{index:06d}.parquet"


def checkpoint_name(rank: int, world_size: int) -> str:
    """File name of ``rank``'s checkpoint."""
    return f"_checkpoint-r{rank:05d}-of-{world_size:05d}.json"


def _part_index(name: str, rank: int, world: int) -> int | None:
    pattern = r"part-(\d{6})\.parquet" if world == 1 else rf"part-r{rank:05d}-of-{world:05d}-(\d{{6}})\.parquet"
    m = re.fullmatch(pattern, name)
    return int(m.group(1)) if m else None


def _ours(name: str) -> bool:
    """Our files, and the hidden temporary files of atomic writes that another rank may have in flight."""
    return (name.startswith(("part-", ".part-", "_checkpoint-", "._checkpoint-", ".rank-", f".{SIDECAR}.",
                              f".{STREAM_MARKER}."))
            or name in (SIDECAR, STREAM_MARKER, PENDING))


class _Out:
    """The output folder: local (parts renamed into place, a lock per writer) or remote (objects written whole)."""

    def __init__(self, output: Any) -> None:
        self.remote = location.is_remote(output)
        self.root: Any = os.fspath(output).rstrip("/") if self.remote else location.local_path(output)

    def path(self, name: str) -> Any:
        return location.join(self.root, name) if self.remote else self.root / name

    def names(self) -> list[str]:
        if self.remote:
            return location.list_names(self.root)
        return sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []

    def exists(self, name: str) -> bool:
        return location.exists(self.path(name)) if self.remote else self.path(name).exists()
    def read_json(self, name: str) -> dict[str, Any] | None:
        return read_json(self.path(name))

    def write_json(self, name: str, obj: Any) -> None:
        text = json.dumps(obj, indent=1, sort_keys=True)
        (location.write_text if self.remote else atomic_write_text)(self.path(name), text)

    def write_part(self, name: str, ds: Any) -> None:
        if self.remote:
            ds.to_parquet(self.path(name))
            return
        tmp = self.root / f".{name}.tmp"
        ds.to_parquet(str(tmp))
        os.replace(tmp, self.root / name)

    def remove(self, name: str) -> None:
        if self.remote:
            location.remove(self.path(name))
        else:
            self.path(name).unlink(missing_ok=True)

    def open(self, name: str) -> Any:
        if not self.remote:
            return open(self.path(name), "rb")
        fs, path = location.get_fs(self.path(name))
        return fs.open(path, "rb")

    def part_rows(self, name: str, features: Any) -> int | None:
        """Rows of a readable part whose features are ``features`` (None: not checked); None if unusable."""
        import pyarrow.parquet as pq
        from datasets import Features

        try:
            with self.open(name) as f:
                meta = pq.ParquetFile(f).metadata
                schema = meta.schema.to_arrow_schema()
        except (OSError, ValueError):
            return None
        if features is not None and Features.from_arrow_schema(schema) != features:
            return None
        return meta.num_rows

    def part_report(self, name: str) -> dict[str, Any]:
        import numpy as np
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        with self.open(name) as f:
            table = pq.read_table(f, columns=["nag_status", "nag_tokens"])
        status = Counter(table.column("nag_status").to_pylist())
        nulls = {k: status[k] for k in NULL_STATUSES if status.get(k)}
        tokens = pc.sum(table.column("nag_tokens")).as_py() or 0
        return {"rows": table.num_rows, "featurized_rows": status.get("ok", 0) + status.get("truncated", 0),
                "truncated_rows": status.get("truncated", 0), "null_rows": sum(nulls.values()),
                "null_by_reason": nulls, "tokens": int(np.int64(tokens))}


def _open_stream(source: Any) -> Any:
    """An `IterableDataset` over ``source`` (a path :func:`load_any` accepts, a Dataset or an IterableDataset)."""
    import datasets

    if isinstance(source, datasets.IterableDataset):
        return source
    if isinstance(source, datasets.Dataset):
        return source.to_iterable_dataset()
    return load_any(source, streaming=True)


def _run_key(featurizer: Any, source: Any, shard_rows: int, batch_size: int, world: int) -> dict[str, Any]:
    """What a checkpoint must share with this run to be resumed from."""
    if isinstance(source, (str, os.PathLike)):
        identity: Any = os.fspath(source)
    else:
        identity = getattr(source, "_fingerprint", None) or type(source).__name__
    return {"input": identity, "shard_rows": shard_rows, "map_batch_size": batch_size, "world_size": world,
            "text_column": featurizer.text_column, "on_invalid": featurizer.on_invalid,
            "specs": featurizer_specs(featurizer)}


def _checkpoint_ok(ckpt: dict[str, Any] | None, key: dict[str, Any], rank: int, out: _Out, world: int,
                   features: Any) -> bool:
    """Whether ``ckpt`` belongs to this run and every part it counts is in place with the rows it says."""
    if not ckpt or ckpt.get("format") != CHECKPOINT_FORMAT or ckpt.get("version") != FORMAT_VERSION:
        return False
    if ckpt.get("run") != key or ckpt.get("rank") != rank or not isinstance(ckpt.get("state_dict"), dict):
        return False
    parts, rows, shard_rows = int(ckpt["parts"]), int(ckpt["rows"]), key["shard_rows"]
    for i in range(parts):
        expect = shard_rows if i < parts - 1 else rows - shard_rows * (parts - 1)
        if out.part_rows(part_name(i, rank, world), features) != expect:
            return False
    return True


def featurize_streaming(
    input: Any,
    output: str | os.PathLike[str],
    featurizer: Any,
    *,
    shard_rows: int = 10_000,
    map_batch_size: int | None = None,
    overwrite: bool = False,
    rank: int | None = None,
    world_size: int | None = None,
    wait_timeout: float | None = None,
    poll_interval: float = 2.0,
) -> dict[str, Any]:
    """Stream ``input`` through ``featurizer`` into parquet parts of ``shard_rows`` rows under ``output``.

    Only one part is held in memory at a time. ``output`` is a local folder or an fsspec URL; ``input`` a path or
    URL :func:`nag_datasets.signatures.formats.load_any` reads, a Dataset or an IterableDataset. ``rank`` /
    ``world_size`` default to the launcher's environment (see the module docstring for the split, the layout and
    the order of rows). Rows are featurized in ``map`` batches of ``map_batch_size`` (default as
    ``featurizer.apply``), so with ``shard_rows`` a multiple of it a single process's result equals
    ``featurizer.apply`` on the whole dataset. A rerun resumes from the rank's checkpoint, or, without one, keeps
    the complete prefix of parts and skips their rows. Rank 0 waits up to ``wait_timeout`` seconds (None: forever)
    for the other ranks. ``overwrite`` replaces a previous streaming output (one process only). Returns the
    summary (``_SUCCESS.json``'s content; a rank other than 0 returns its own part of it).

    >>> import tempfile
    >>> from datasets import Dataset
    >>> from nag_datasets.featurize.featurizer import NAGFeaturizer
    >>> f = NAGFeaturizer(layers=[0], max_length=16)
    >>> s = featurize_streaming(Dataset.from_dict({"text": ["a b", "c d", "e"]}), "memory://doc/stream", f,
    ...                         shard_rows=2)
    >>> s["parts"], s["report"]["rows"]
    (2, 3)
    """
    from datasets import Dataset

    if shard_rows < 1:
        raise InvalidArgumentError(f"shard_rows must be >= 1, got {shard_rows}")
    rank, world, _ = resolve_world(rank, world_size)
    if world > 1 and overwrite:
        raise InvalidArgumentError("overwrite with several ranks would let one rank delete another's parts: delete the "
                                   "output first (or overwrite it from a single process)")
    out = _Out(output)
    if (location.isfile(out.root) if out.remote else out.root.is_file()):
        raise OutputExistsError(f"{out.root} exists and is not a folder")
    stream = _open_stream(input)
    if world > 1:
        from datasets.distributed import split_dataset_by_node

        stream = split_dataset_by_node(stream, rank=rank, world_size=world)
    batch_size = map_batch_size or max(featurizer.batch_size * 8, 64)
    key = _run_key(featurizer, input, shard_rows, batch_size, world)
    ckpt_name = checkpoint_name(rank, world)
    if out.remote:
        guard: Any = contextlib.nullcontext()  # no locks on object stores: one run per output
    else:
        guard = lock_dir(out.root if world == 1 else out.root / f".rank-{rank:05d}-of-{world:05d}")
    with guard:
        if out.exists(STREAM_MARKER) and not overwrite:
            raise OutputExistsError(f"{out.root} holds a complete result; pass overwrite=True (--overwrite) to redo it")
        if overwrite and out.names():
            # Only a folder of our parts is replaced; anything else in it is the user's.
            check_replaceable(out.root, overwrite=True, marker=None, what="streaming output", ours=_ours)
            if out.remote:
                location.remove(out.root, recursive=True)
            else:
                shutil.rmtree(out.root)
        if not out.remote:
            out.root.mkdir(parents=True, exist_ok=True)
        stray = [n for n in out.names() if not _ours(n)]
        if stray:
            raise OutputExistsError(f"{out.root} holds files that are not streaming parts ({', '.join(stray[:5])})")
        others = [n for n in out.names() if n.startswith("part-") and not any(
            _part_index(n, r, world) is not None for r in range(world))]
        if others:
            raise ShardError(f"{out.root} holds parts of a run with another number of ranks ({others[0]}); delete "
                             "it or overwrite it from a single process")
        if out.remote:
            write_pending(out.root, marker=STREAM_MARKER, what="streaming output")
        else:
            prefix = ".part-" if world == 1 else f".part-r{rank:05d}-of-{world:05d}-"
            for tmp in out.root.glob(f"{prefix}*"):  # of a killed run of this rank (we hold its lock)
                tmp.unlink()
        features = featurizer.output_features(stream.features) if stream.features is not None else None
        if features is not None:
            _write_sidecar(out, features)

        ckpt = out.read_json(ckpt_name)
        resumed = _checkpoint_ok(ckpt, key, rank, out, world, features)
        if resumed:
            assert ckpt is not None
            kept, rows, skip, done = int(ckpt["parts"]), int(ckpt["rows"]), int(ckpt["skip"]), bool(ckpt["complete"])
            reports = [ckpt["report"]]
            source = stream.skip(skip) if skip else stream
            source.load_state_dict(ckpt["state_dict"])
        else:  # no checkpoint (e.g. parts of an older version): keep the complete prefix, skip its rows
            kept = 0
            while features is not None and out.part_rows(part_name(kept, rank, world), features) == shard_rows:
                kept += 1
            rows = skip = kept * shard_rows
            done = False
            reports = [out.part_report(part_name(i, rank, world)) for i in range(kept)]
            source = stream.skip(skip) if skip else stream
        for name in out.names():
            index = _part_index(name, rank, world)
            if index is not None and index >= kept:
                out.remove(name)  # written after the last checkpoint: redone
        resumed_from = {"parts": kept, "rows": rows, "from_checkpoint": resumed}
        index, featurized = kept, 0

        def checkpoint(complete: bool) -> None:
            out.write_json(ckpt_name, {
                "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION, "rank": rank, "world_size": world, "run": key,
                "parts": index, "rows": rows, "skip": skip, "report": sum_reports(reports),
                "state_dict": source.state_dict(), "complete": complete, "resumed_from": resumed_from,
                "rows_featurized": featurized, "created": now()})

        for chunk in ([] if done else source.iter(batch_size=shard_rows)):
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
            if features is None:  # the source declares no features (e.g. JSON lines): infer from the first part
                features = featurizer.output_features(Dataset.from_dict(dict(chunk)).features)
                _write_sidecar(out, features)
            ds = Dataset.from_dict(merged, features=features)
            out.write_part(part_name(index, rank, world), ds)  # the part first, then the checkpoint that counts it
            reports.append(FeaturizeReport.from_dataset(ds).to_dict())
            rows, featurized, index = rows + n, featurized + n, index + 1
            checkpoint(complete=False)
            _atomic.stage_reached("shard:done", index=index - 1, rank=rank if world > 1 else None)
            if n < shard_rows:
                break
        if not done:
            checkpoint(complete=True)
        mine = {"rank": rank, "parts": index, "rows": rows, "resumed_from": resumed_from,
                "rows_featurized": featurized, "report": sum_reports(reports)}
        if world == 1:
            return _finish(out, [mine], key, shard_rows)
    if rank != 0:
        return {"format": STREAM_FORMAT, "output": str(out.root), "world_size": world, **mine}
    ranks = wait_for_ranks(lambda r: _final_checkpoint(out, r, world, key), world, timeout=wait_timeout,
                           poll=poll_interval, where=f"checkpoints under {out.root}")
    return _finish(out, ranks, key, shard_rows)


def _final_checkpoint(out: _Out, rank: int, world: int, key: dict[str, Any]) -> dict[str, Any] | None:
    """Rank ``rank``'s part of the summary once its final checkpoint is written (None before)."""
    c = out.read_json(checkpoint_name(rank, world))
    if c is None or not c.get("complete"):
        return None
    if c.get("run") != key:
        raise ShardError(f"rank {rank} streamed a different input or with different settings than rank 0 "
                         f"(compare {out.path(checkpoint_name(rank, world))})")
    return {k: c[k] for k in ("rank", "parts", "rows", "resumed_from", "rows_featurized", "report")}


def _finish(out: _Out, ranks: list[dict[str, Any]], key: dict[str, Any], shard_rows: int) -> dict[str, Any]:
    """Write ``_SUCCESS.json`` (the completion marker) last, then drop the checkpoints and the pending file."""
    world = len(ranks)
    summary = {"format": STREAM_FORMAT, "version": FORMAT_VERSION, "output": str(out.root),
               "parts": sum(r["parts"] for r in ranks), "parts_skipped": sum(r["resumed_from"]["parts"] for r in ranks),
               "shard_rows": shard_rows, "world_size": world, "report": sum_reports([r["report"] for r in ranks]),
               "ranks": ranks, "created": now()}
    out.write_json(STREAM_MARKER, summary)
    for r in range(world):
        out.remove(checkpoint_name(r, world))
    if out.remote:
        out.remove(PENDING)
    return summary


def _write_sidecar(out: _Out, features: Any) -> None:
    from ..signatures.embedding_column import embedding_spec_from_feature

    specs = {}
    for name, f in features.items():
        spec = spec_from_feature(f) or embedding_spec_from_feature(f)
        if spec is not None:
            specs[name] = spec.to_dict()
    out.write_json(SIDECAR, specs)
