"""Selection beyond one machine on Ray Data: score parquet shards in parallel, find the exact global cut, write.

The rule is :func:`nag_datasets.selection.budgeted.select_indices` with ``method="exact"``: rank the pool by similarity
(descending), ties by global row position (ascending), keep the prefix within ``fraction`` of the pool's tokens,
stopping at the first document that would overflow. On Ray:

1. one task per parquet row group reads the signature and token columns (zero-copy) and scores them with the
   profile's kernel in ``map_batches``, emitting ``(position, score, tokens)``: 20 bytes per document;
2. the pool rows are sorted by ``(score desc, position asc)`` (Ray's distributed sort) and the driver walks the
   sorted stream only until the budget overflows, which fixes the last kept ``(score*, position*)``;
3. one task per file keeps the rows with ``score > score*`` or ``score == score*`` and ``position <= position*``
   (exactly the greedy prefix) and writes ``OUT/part-NNNNNN.parquet`` (selected rows in their original order, the
   files' features and spec kept), plus ``nag_spec.json`` and ``selection.json`` (the report).

Needs ``pip install 'nag-datasets[ray]'``. Inputs are parquet files or folders of them, e.g. the output of
``nag-datasets featurize --streaming``; ``ray.init()`` is called (locally) unless Ray is already initialised.
Inputs and ``OUT`` may be fsspec URLs (``s3://``, ``gs://``, ...): every Ray task opens them through fsspec itself,
so they must be reachable from every worker (not ``memory://``). A remote ``OUT`` is written in place, parts first
and ``selection.json`` (the completion marker) last.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputNotFoundError, InvalidArgumentError, MissingColumnError, NAGError
from ..storage import location
from ..storage.atomic import atomic_write_text, check_replaceable, lock_dir, remote_dir
from .reports import RaySelectionReport

__all__ = ["RaySelectionError", "select_top_fraction_ray"]


class RaySelectionError(NAGError, RuntimeError):
    """The rows the Ray tasks wrote are not the rows of the cut (the input changed while the selection ran)."""


def _files(source: Any) -> list[str]:
    """Paths (local) or URLs (remote) of the input's parquet files, sorted."""
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    files: list[str] = []
    for s in sources:
        if location.is_remote(s):
            from ..storage.atomic import check_complete

            if location.isdir(s):
                check_complete(s)
            files += location.glob(s, "**/*.parquet") if location.isdir(s) else [os.fspath(s)]
        else:
            p = location.local_path(s)
            files += [str(f) for f in sorted(p.rglob("*.parquet"))] if p.is_dir() else [str(p)]
    if not files or not all(location.isfile(f) for f in files):
        raise InputNotFoundError(f"no parquet files found in {source}")
    return files


def _open(path: str, mode: str = "rb") -> Any:
    """A binary file object for a local path or an fsspec URL (opened in whichever process runs this)."""
    if location.is_remote(path):
        fs, p = location.get_fs(path)
        return fs.open(p, mode)
    return open(path, mode)


def _sidecars(path: str) -> list[str]:
    folder = path.rsplit("/", 1)[0] if location.is_remote(path) else str(Path(path).parent)
    return [path + ".spec.json", location.join(folder, "nag_spec.json")]


def _file_spec(path: str, column: str) -> Any:
    """The spec (signature or embedding) of ``column`` in a parquet file: its typed feature's, else its sidecar's."""
    import pyarrow.parquet as pq
    from datasets import Features

    from ..signatures.columns import spec_from_feature
    from ..signatures.embedding_column import EMBEDDING_FIX, embedding_spec_from_feature
    from ..signatures.embedding_spec import spec_from_dict
    from ..signatures.spec import SpecError

    with _open(path) as f:
        feats = Features.from_arrow_schema(pq.read_schema(f))
    if column not in feats:
        hint = f": {EMBEDDING_FIX}" if column == "nag_embedding" else ""
        raise MissingColumnError(f"column {column!r} not in {path}; columns: {list(feats)}{hint}")
    spec = spec_from_feature(feats[column]) or embedding_spec_from_feature(feats[column])
    if spec is None:
        for sidecar in _sidecars(path):
            if location.isfile(sidecar):
                d = json.loads(location.read_text(sidecar)).get(column)
                if d:
                    return spec_from_dict(d)
        raise SpecError(f"{path}: column {column!r} carries no spec and no sidecar names one")
    return spec


def _check_file_spec(path: str, column: str, expected: Any) -> None:
    """Refuse a file whose ``column`` was not computed with ``expected``: by its typed spec (or sidecar) and, when the
    file has the featurizer's ``nag_spec`` column (a plain ``map`` written by any parquet writer), by its values."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from ..signatures.spec import SpecError
    from ..signatures.spec_column import SPEC_COLUMN, check_spec_values

    with _open(path) as f:
        names = pq.read_schema(f).names
    if column not in names:
        from ..signatures.embedding_column import EMBEDDING_FIX

        hint = f": {EMBEDDING_FIX}" if column == "nag_embedding" else ""
        raise MissingColumnError(f"column {column!r} not in {path}; columns: {names}{hint}")
    has_values = SPEC_COLUMN in names
    if has_values:
        with _open(path) as f:
            values = pc.unique(pq.read_table(f, columns=[SPEC_COLUMN]).column(0)).to_pylist()
        check_spec_values(values, column, expected, against="profile")
    try:
        typed = _file_spec(path, column)
    except SpecError:
        if has_values:
            return
        raise
    expected.check_compatible(typed, what=f"{path.rsplit('/', 1)[-1]}:{column}", against="profile")


def _scores(table: Any, profile: Any, column: str, token_column: str) -> tuple[np.ndarray, np.ndarray]:
    """The profile's scores (float32, NaN = null signature or embedding) and token counts of a parquet table's rows
    (:meth:`Profile.score_arrow <nag_datasets.scoring.profile_base.Profile.score_arrow>`: the kernel, and for a fused
    profile the embedding model too)."""
    scores = profile.score_arrow(table, column)
    tokens = table.column(token_column)
    if tokens.null_count:
        raise InvalidArgumentError(f"token column {token_column!r} has {tokens.null_count} missing values")
    return scores, tokens.to_numpy().astype(np.int64)


def _score_items(batch: dict[str, np.ndarray], **kw: Any) -> dict[str, np.ndarray]:
    """``map_batches`` function: for each (file, row group, offset) item, its rows' positions, scores and tokens."""
    import pyarrow.parquet as pq

    pos, score, tokens = [], [], []
    for path, group, offset in zip(batch["file"], batch["row_group"], batch["offset"]):
        with _open(str(path)) as f:
            table = pq.ParquetFile(f).read_row_group(
                int(group), columns=[*kw["profile"].arrow_columns(kw["column"]), kw["token_column"]])
        s, t = _scores(table, **kw)
        pos.append(np.arange(int(offset), int(offset) + len(s), dtype=np.int64))
        score.append(s)
        tokens.append(t)
    n = sum(len(p) for p in pos)
    return {"pos": np.concatenate(pos), "score": np.concatenate(score), "tokens": np.concatenate(tokens),
            "pid": np.full(n, os.getpid(), np.int64)}


def _write_files(batch: dict[str, np.ndarray], *, out: str, cut_score: float | None, cut_pos: int,
                 **kw: Any) -> dict[str, np.ndarray]:
    """``map_batches`` function: keep each file's rows inside the cut and write them as one parquet part."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, tokens = [], []
    for path, index, offset in zip(batch["file"], batch["index"], batch["offset"]):
        with _open(str(path)) as f:
            table = pq.read_table(f)
        s, t = _scores(table, **kw)
        if cut_score is None:
            keep = np.zeros(table.num_rows, np.bool_)
        else:
            cut = np.float32(cut_score)
            pos = np.arange(int(offset), int(offset) + table.num_rows)
            keep = (s > cut) | ((s == cut) & (pos <= cut_pos))  # NaN (null) rows compare False
        rows.append(int(keep.sum()))
        tokens.append(int(t[keep].sum()))
        if keep.any():
            name = f"part-{int(index):06d}.parquet"
            if location.is_remote(out):  # one object: appears whole; the driver writes the marker after all parts
                with _open(location.join(out, name), "wb") as f:
                    pq.write_table(table.filter(pa.array(keep)), f)
                continue
            tmp = Path(out) / f".{name}.tmp"
            pq.write_table(table.filter(pa.array(keep)), str(tmp))  # schema metadata (features, spec) kept
            os.replace(tmp, Path(out) / name)
    return {"rows": np.array(rows, np.int64), "tokens": np.array(tokens, np.int64)}


def _partial_sums(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    pool = ~np.isnan(batch["score"])
    return {"pool_docs": [int(pool.sum())], "pool_tokens": [int(batch["tokens"][pool].sum())],
            "null_rows": [int((~pool).sum())], "null_tokens": [int(batch["tokens"][~pool].sum())],
            "pids": [",".join(str(p) for p in np.unique(batch["pid"]))]}


def _drop_null(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    keep = ~np.isnan(batch["score"])
    return {k: v[keep] for k, v in batch.items()}


def select_top_fraction_ray(
    source: Any,
    output: str | os.PathLike[str],
    profile: Any,
    fraction: float,
    *,
    token_column: str,
    column: str | None = None,
    overwrite: bool = False,
    walk_batch_rows: int = 1 << 16,
) -> RaySelectionReport:
    """Exact token-budget selection of parquet shards on Ray Data; returns the report (also in ``selection.json``).

    Equals ``select_top_fraction(ds, fraction, token_column=..., profile=..., method="exact")`` on the
    concatenated files (same rows, same threshold and totals), except that rows are written in their original
    order rather than best first.
    """
    import pyarrow.parquet as pq
    import ray

    if not 0.0 <= fraction <= 1.0:
        raise InvalidArgumentError(f"fraction must be within [0, 1], got {fraction}")
    files = _files(source)
    column = profile.arrow_columns(column)[0] if column is None else column
    for f in files:
        for col, spec in profile.column_specs(column).items():
            _check_file_spec(f, col, spec)
    items, file_items, offset = [], [], 0
    for i, f in enumerate(files):
        with _open(f) as handle:
            meta = pq.ParquetFile(handle).metadata
        file_items.append({"file": f, "index": i, "offset": offset})
        for g in range(meta.num_row_groups):
            items.append({"file": f, "row_group": g, "offset": offset})
            offset += meta.row_group(g).num_rows
    remote = location.is_remote(output)
    out: Any = os.fspath(output) if remote else location.local_path(output)
    ours = lambda n: n.startswith("part-") or n == "nag_spec.json"
    if not ray.is_initialized():
        ray.init(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    previous_order = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True
    kw = {"profile": profile, "column": column, "token_column": token_column}
    try:
        guard = (remote_dir(out, marker="selection.json", overwrite=overwrite, ours=ours, what="Ray selection")
                 if remote else lock_dir(out))
        with guard:
            if not remote and out.exists():
                # Only an earlier Ray selection (parts, nag_spec.json, selection.json) is replaced.
                check_replaceable(out, overwrite=overwrite, marker="selection.json", what="Ray selection", ours=ours)
                shutil.rmtree(out)
            scored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
                _score_items, fn_kwargs=kw, batch_size=1).materialize()
            stats = scored.map_batches(_partial_sums, batch_size=None).take_all()
            pool_docs = sum(int(s["pool_docs"]) for s in stats)
            pool_tokens = sum(int(s["pool_tokens"]) for s in stats)
            null_rows = sum(int(s["null_rows"]) for s in stats)
            null_tokens = sum(int(s["null_tokens"]) for s in stats)
            pids = {p for s in stats for p in str(s["pids"]).split(",") if p}
            budget = fraction * pool_tokens
            cut_score, cut_pos, kept, kept_tokens = None, -1, 0, 0
            ranked = scored.map_batches(_drop_null, batch_size=None).sort(["score", "pos"], descending=[True, False])
            for batch in ranked.iter_batches(batch_size=walk_batch_rows, batch_format="numpy"):
                cumulative = kept_tokens + np.cumsum(batch["tokens"])
                n = int(np.searchsorted(cumulative, budget, side="right"))
                if n:
                    cut_score, cut_pos = float(batch["score"][n - 1]), int(batch["pos"][n - 1])
                    kept, kept_tokens = kept + n, int(cumulative[n - 1])
                if n < len(cumulative):
                    break  # the first document that overflows: the walk stops here
            if remote:
                tmp = out  # no rename on object stores: parts in place, selection.json last
            else:
                tmp = out.with_name(f".{out.name}.tmp-ray")
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir(parents=True)
            write = location.write_text if remote else atomic_write_text
            written = ray.data.from_items(file_items, override_num_blocks=len(file_items)).map_batches(
                _write_files, batch_size=1,
                fn_kwargs={**kw, "out": str(tmp), "cut_score": cut_score, "cut_pos": cut_pos}).take_all()
            rows_written = sum(int(w["rows"]) for w in written)
            tokens_written = sum(int(w["tokens"]) for w in written)
            if (rows_written, tokens_written) != (kept, kept_tokens):
                raise RaySelectionError(f"wrote {rows_written} rows / {tokens_written} tokens, the cut kept {kept} / "
                                        f"{kept_tokens}")
            specs = {c: sp.to_dict() for c, sp in profile.column_specs(column).items()}
            write(location.join(tmp, "nag_spec.json"), json.dumps(specs, indent=1))
            report = RaySelectionReport(
                method="exact", fraction=float(fraction), documents_selected=kept,
                tokens_selected=kept_tokens, pool_documents=pool_docs, pool_tokens=pool_tokens,
                achieved_fraction=kept_tokens / pool_tokens if pool_tokens else 0.0, threshold=cut_score,
                last_position=cut_pos if kept else None, null_rows_skipped=null_rows,
                null_tokens_skipped=null_tokens, signature_column=column, spec=profile.spec.to_dict(),
                profile_fingerprint=profile.fingerprint(), profile_description=profile.description,
                profile_num_targets=profile.num_targets, input_files=len(files), score_blocks=len(items),
                score_worker_processes=len(pids), score_kind=profile.score_kind, profile=profile.summary(),
            )
            write(location.join(tmp, "selection.json"), json.dumps(report.to_dict(), indent=1))
            if not remote:
                os.replace(tmp, out)
    finally:
        ctx.execution_options.preserve_order = previous_order
    return report

