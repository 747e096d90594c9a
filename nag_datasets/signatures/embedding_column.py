"""The embedding column ``nag_embedding``: its `datasets` feature (spec inside), its checks, zero-copy reading.

The column is a fixed-size list of ``hidden_size`` float16 values per row (2 bytes a value, no offsets), null for
rows without a signature. Its :class:`~.embedding_spec.EmbeddingSpec` rides in the ``id`` of the inner ``Value``, as
a signature column's spec does, so `datasets` keeps it through ``map``, ``filter``, ``select``, ``save_to_disk`` and
its parquet writer; after a plain ``map`` (the type inferred as a variable-length list) the per-row ``nag_spec``
string still names it (``nag_embedding=<fingerprint>``), checked against the local registry.

>>> from nag_datasets.signatures.embedding_spec import EmbeddingSpec
>>> spec = EmbeddingSpec(model_fingerprint="m", tokenizer_fingerprint="t", layer=1, max_length=8,
...                      add_special_tokens=False, hidden_size=3)
>>> embedding_spec_from_feature(embedding_feature(spec)) == spec
True
>>> import numpy as np
>>> vectors, valid = embedding_array([[1.0, 2.0, 3.0], None], 3)
>>> vectors.dtype, vectors.tolist(), valid.tolist()
(dtype('float16'), [[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], [True, False])
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidArgumentError, MissingColumnError
from .arrow import row_indices, table_column, table_length
from .embedding_spec import EmbeddingSpec
from .spec import SpecError
from .spec_column import SPEC_COLUMN, _fingerprints, check_spec_values, require_dataset, spec_values_of

__all__ = ["EMBEDDING_COLUMN", "EMBEDDING_FIX", "EMBEDDING_ID_PREFIX", "attach_embedding_spec",
           "check_embedding_batch", "check_embedding_column", "dataset_embedding_spec", "embedding_array",
           "embedding_blocks", "embedding_columns", "embedding_feature", "embedding_spec_from_feature",
           "gather_embeddings", "require_embedding_column"]

EMBEDDING_COLUMN = "nag_embedding"
EMBEDDING_ID_PREFIX = "nag_datasets.embedding:"
#: How to get an embedding column (appended to refusals of a pool without one).
EMBEDDING_FIX = ("featurize with NAGFeaturizer(..., embedding='last') (command line: featurize --embedding last), "
                 "which adds it from the same forward pass")


def embedding_feature(spec: EmbeddingSpec) -> Any:
    """The `datasets` feature of an embedding column, carrying ``spec`` in its ``Value.id``."""
    from datasets import List, Value

    return List(Value("float16", id=EMBEDDING_ID_PREFIX + spec.to_json()), length=spec.hidden_size)


def embedding_spec_from_feature(feature: Any) -> EmbeddingSpec | None:
    """The embedding spec stored in a feature, or None if the feature carries none."""
    inner = getattr(feature, "feature", None)
    ident = getattr(inner, "id", None)
    if not ident or not str(ident).startswith(EMBEDDING_ID_PREFIX):
        return None
    return EmbeddingSpec.from_json(str(ident)[len(EMBEDDING_ID_PREFIX):])


def embedding_columns(ds: Any) -> dict[str, EmbeddingSpec]:
    """All columns of ``ds`` whose feature carries an embedding spec, by name."""
    out = {}
    for name, feature in (ds.features or {}).items():
        spec = embedding_spec_from_feature(feature)
        if spec is not None:
            out[name] = spec
    return out


def attach_embedding_spec(ds: Any, spec: EmbeddingSpec, column: str = EMBEDDING_COLUMN) -> Any:
    """``ds`` with ``spec`` attached to its embedding ``column`` (a cast; the values are unchanged)."""
    if column not in (ds.features or {}):
        raise MissingColumnError(f"column {column!r} not in dataset; columns: {list(ds.features or {})}")
    features = ds.features.copy()
    features[column] = embedding_feature(spec)
    return ds.cast(features)


def require_embedding_column(columns: Any, column: str, what: str) -> None:
    """Refuse data without the embedding ``column``, saying how to get one."""
    if column not in list(columns or ()):
        raise MissingColumnError(f"{what} needs the embedding column {column!r}, which this data lacks (columns: "
                                 f"{list(columns or ())}): {EMBEDDING_FIX}")


def dataset_embedding_spec(ds: Any, column: str = EMBEDDING_COLUMN) -> EmbeddingSpec:
    """The spec of ``ds[column]``: its typed feature's, else the one its ``nag_spec`` column names (registered);
    when both exist they must agree."""
    from .registry import known_spec, spec_path
    from .spec_column import FIX_HINT

    require_dataset(ds, "reading embeddings")
    require_embedding_column(ds.features or {}, column, "this")
    typed = embedding_spec_from_feature(ds.features[column])
    values = spec_values_of(ds)
    if typed is not None:
        if values is not None:
            check_spec_values(values, column, typed, against="its typed feature")
        return typed
    if values is None:
        raise SpecError(f"column {column!r} carries no embedding spec and the data has no {SPEC_COLUMN} column; "
                        f"{EMBEDDING_FIX}")
    found = _fingerprints(values, column)
    if len(found) != 1:
        raise SpecError(f"column {column!r} mixes rows of {len(found)} embedding specs ({', '.join(sorted(found))})")
    fingerprint = found.pop()
    spec = known_spec(fingerprint)
    if not isinstance(spec, EmbeddingSpec):
        raise SpecError(f"column {column!r} carries no typed spec and its {SPEC_COLUMN} names spec {fingerprint}, "
                        f"which is unknown here as an embedding spec (no {spec_path(fingerprint)}); {FIX_HINT}")
    return spec


def check_embedding_column(ds: Any, column: str, expected: EmbeddingSpec) -> None:
    """Refuse ``ds[column]`` unless it exists and its spec (typed, or named by ``nag_spec``) is ``expected``."""
    require_dataset(ds, "scoring")
    features = ds.features or {}
    require_embedding_column(features, column, "a profile with the embedding signal")
    typed = embedding_spec_from_feature(features[column])
    values = spec_values_of(ds)
    if typed is None and values is None:
        raise SpecError(f"column {column!r} carries no embedding spec and the data has no {SPEC_COLUMN} column, so "
                        f"it cannot be checked; {EMBEDDING_FIX}")
    if typed is not None:
        expected.check_compatible(typed, what=f"column {column!r}", against="profile")
    if values is not None:
        check_spec_values(values, column, expected)


def check_embedding_batch(batch: Mapping[str, Any], column: str, expected: EmbeddingSpec, *, required: bool) -> None:
    """A ``map`` batch's check of its embedding column: present, and named by ``nag_spec`` as ``expected``."""
    from .spec_column import check_batch

    require_embedding_column(batch.keys(), column, "a profile with the embedding signal")
    check_batch(batch, column, expected, required=required)  # type: ignore[arg-type]


def _fixed_size(chunk: pa.Array, hidden: int) -> pa.Array:
    """A variable-length ``list<halffloat>`` chunk (plain ``map``, foreign parquet writers) as the fixed layout."""
    t = chunk.type
    if pa.types.is_fixed_size_list(t):
        if t.list_size != hidden:
            raise SpecError(f"embedding column has {t.list_size} values per row but its spec says {hidden}")
        return chunk if t.value_type == pa.float16() else _cast(chunk, hidden)
    if not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        raise SpecError(f"embedding column must hold a list of {hidden} floats per row, got {t}")
    return _cast(chunk, hidden)


def _cast(chunk: pa.Array, hidden: int) -> pa.Array:
    try:
        return chunk.cast(pa.list_(pa.float16(), hidden))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SpecError(f"embedding column rows are not all {hidden} float16 values: {e}") from None


def embedding_blocks(column: pa.ChunkedArray | pa.Array, spec: EmbeddingSpec
                     ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(embeddings (n, hidden) float16, valid (n,) bool or None)`` per Arrow chunk, zero-copy for the
    fixed-size layout. Values under null rows are undefined; a null value inside a valid row is refused."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    H = spec.hidden_size
    for chunk in chunks:
        n = len(chunk)
        if n == 0:
            continue
        chunk = _fixed_size(chunk, H)
        values = chunk.values.slice(chunk.offset * H, n * H)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
        if values.null_count:
            inner = values.is_null().to_numpy(zero_copy_only=False).reshape(n, H).any(axis=1)
            bad = inner if valid is None else inner & valid
            if bad.any():
                raise SpecError(f"embedding column has a null value inside row {int(np.flatnonzero(bad)[0])}")
        flat = np.frombuffer(values.buffers()[1], dtype=np.float16, count=n * H, offset=values.offset * 2)
        yield flat.reshape(n, H), valid


def gather_embeddings(ds: Any, column: str, spec: EmbeddingSpec, positions: np.ndarray) -> np.ndarray:
    """The embeddings of rows ``positions`` of ``ds`` (after any ``select``/``filter``), as float16 ``(n, hidden)``;
    a null row among them is refused."""
    idx = row_indices(ds)
    rows = np.asarray(positions, np.int64) if idx is None else idx[np.asarray(positions, np.int64)]
    col = table_column(ds, column)
    if len(rows) and (rows.min() < 0 or rows.max() >= table_length(ds)):
        raise InvalidArgumentError("row positions outside the dataset")
    taken = col.take(pa.array(rows))
    parts = list(embedding_blocks(taken, spec))
    if not parts:
        return np.zeros((0, spec.hidden_size), np.float16)
    for _, valid in parts:
        if valid is not None and not valid.all():
            raise SpecError("a row with a signature has a null embedding")
    return np.concatenate([e for e, _ in parts])


def embedding_array(values: Any, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """A batch's embedding column (lists, numpy, torch or Arrow) as float16 ``(n, hidden)`` plus a validity mask
    (zeros under null rows)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        spec_hidden = hidden
        out, valid = [], []
        chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
        for chunk in chunks:
            chunk = _fixed_size(chunk, spec_hidden)
            n = len(chunk)
            v = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else np.ones(n, np.bool_)
            flat = chunk.values.slice(chunk.offset * hidden, n * hidden).to_numpy(zero_copy_only=False)
            block = np.asarray(flat, np.float16).reshape(n, hidden).copy()
            block[~v] = 0
            out.append(block)
            valid.append(v)
        if not out:
            return np.zeros((0, hidden), np.float16), np.zeros(0, np.bool_)
        return np.concatenate(out), np.concatenate(valid)
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 2:
        if values.shape[1] != hidden:
            raise InvalidArgumentError(f"embeddings have {values.shape[1]} values per row, the profile expects {hidden}")
        return values.astype(np.float16, copy=False), np.ones(len(values), np.bool_)
    rows = list(values)
    valid = np.array([r is not None for r in rows], np.bool_)
    out = np.zeros((len(rows), hidden), np.float16)
    for i, r in enumerate(rows):
        if r is None:
            continue
        vec = np.asarray(r, dtype=np.float32)
        if vec.shape != (hidden,):
            raise InvalidArgumentError(f"an embedding in this batch has shape {vec.shape}, the profile expects "
                                       f"({hidden},)")
        out[i] = vec.astype(np.float16)
    return out, valid
