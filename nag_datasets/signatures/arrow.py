"""Arrow-level access to `datasets` tables without copies: signature blocks, numeric columns, added columns.

>>> from datasets import Dataset
>>> ds = Dataset.from_dict({"x": [3, 1, 2]}).select([2, 0])
>>> numeric_column(ds, "x")
array([2., 3.])
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from ..compiled import jit
from ..errors import InvalidArgumentError, MissingColumnError, WrongTypeError
from .spec import SignatureSpec, SpecError

__all__ = ["add_row_column", "dataset_blocks", "first_row_with_unset_bits", "numeric_column", "row_indices",
           "signature_blocks", "stream_blocks", "table_column", "table_length"]


def table_column(ds: Any, column: str) -> pa.ChunkedArray:
    """The underlying Arrow column of ``ds`` (ignoring any indices mapping; see :func:`row_indices`)."""
    return ds.data.table.column(column) if hasattr(ds.data, "table") else ds.data.column(column)


def row_indices(ds: Any) -> np.ndarray | None:
    """The dataset's indices mapping (after ``select``/``filter``/``shuffle``), or None when rows are direct."""
    indices = getattr(ds, "_indices", None)
    if indices is None:
        return None
    return indices.column(0).to_numpy()


def table_length(ds: Any) -> int:
    """Rows of the dataset's underlying Arrow table (ignoring any indices mapping)."""
    return ds.data.num_rows


@jit(nogil=True)
def _first_unset(bitmap, bit_offset, width, row_valid):  # type: ignore[no-untyped-def]
    for i in range(row_valid.shape[0]):
        if not row_valid[i]:
            continue
        b = bit_offset + i * width
        end = b + width
        while b < end and (b & 7) != 0:
            if not (bitmap[b >> 3] >> (b & 7)) & 1:
                return i
            b += 1
        while b + 8 <= end:
            if bitmap[b >> 3] != 255:
                return i
            b += 8
        while b < end:
            if not (bitmap[b >> 3] >> (b & 7)) & 1:
                return i
            b += 1
    return -1


def first_row_with_unset_bits(bitmap: np.ndarray, bit_offset: int, width: int, row_valid: np.ndarray) -> int:
    """First row ``i`` with ``row_valid[i]`` whose bits ``[bit_offset + i*width, +width)`` are not all set, or -1.

    Used on Arrow validity bitmaps: a valid signature must not contain null entries.

    >>> first_row_with_unset_bits(np.array([0xFF, 0x0F], np.uint8), 0, 4, np.array([True, True, True, False]))
    -1
    >>> first_row_with_unset_bits(np.array([0xFF, 0x0F], np.uint8), 0, 4, np.array([True, True, True, True]))
    3
    """
    return int(_first_unset(np.ascontiguousarray(bitmap, dtype=np.uint8), int(bit_offset), int(width),
                            np.ascontiguousarray(row_valid, dtype=np.bool_)))


def _children(arr: pa.Array) -> pa.Array:
    size = arr.type.list_size
    return arr.values.slice(arr.offset * size, len(arr) * size)


def _check_no_nulls_under_valid_rows(level: pa.Array, width: int, row_valid: np.ndarray, what: str) -> None:
    if level.null_count == 0:
        return
    bitmap = np.frombuffer(level.buffers()[0], dtype=np.uint8)
    row = first_row_with_unset_bits(bitmap, level.offset, width, row_valid)
    if row >= 0:
        raise SpecError(f"signature column has null entries inside the signature of row {row} ({what})")


def _as_fixed_size(chunk: pa.Array, L: int, K: int, dtype: np.dtype) -> pa.Array:
    """A variable-length ``list<list<int>>`` chunk (what a plain ``map`` or a foreign parquet writer leaves) as the
    fixed-size ``(L, K)`` layout, copied once; a fixed-size chunk is returned as is."""
    t = chunk.type
    if pa.types.is_fixed_size_list(t) or not (pa.types.is_list(t) or pa.types.is_large_list(t)):
        return chunk
    if not (pa.types.is_list(t.value_type) or pa.types.is_large_list(t.value_type)
            or pa.types.is_fixed_size_list(t.value_type)):
        raise SpecError(f"signature column must hold (L, K) lists of integers per row, got {t}")
    target = pa.list_(pa.list_(pa.from_numpy_dtype(dtype), K), L)
    try:
        return chunk.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise SpecError(f"signature column rows are not all ({L}, {K}) lists of {dtype} neuron indices: {e}") from None


def signature_blocks(
    table_column: pa.ChunkedArray, spec: SignatureSpec
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield ``(signatures (n, L, K), valid (n,) bool or None)`` per Arrow chunk, zero-copy.

    A null row may carry null children (pyarrow writes them for ``None`` rows); only nulls inside a valid row are
    refused. Values under null rows are undefined.
    """
    L, K = spec.num_layers, spec.top_k
    dtype = np.dtype(spec.index_dtype)
    for chunk in table_column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        chunk = _as_fixed_size(chunk, L, K, dtype)
        if not (pa.types.is_fixed_size_list(chunk.type) and pa.types.is_fixed_size_list(chunk.type.value_type)):
            raise SpecError(f"signature column must be nested fixed-size lists, got {chunk.type}")
        if chunk.type.list_size != L or chunk.type.value_type.list_size != K:
            raise SpecError(
                f"signature column has shape ({chunk.type.list_size}, {chunk.type.value_type.list_size}) "
                f"but its spec says ({L}, {K})"
            )
        layers = _children(chunk)
        values = _children(layers)
        if values.type != pa.from_numpy_dtype(dtype):
            raise SpecError(f"signature values are {values.type}, expected {spec.index_dtype}")
        valid = None
        if chunk.null_count:
            valid = chunk.is_valid().to_numpy(zero_copy_only=False)
        row_valid = valid if valid is not None else np.ones(n, np.bool_)
        _check_no_nulls_under_valid_rows(layers, L, row_valid, "a null layer")
        _check_no_nulls_under_valid_rows(values, L * K, row_valid, "a null neuron index")
        data = values.buffers()[1]
        flat = np.frombuffer(data, dtype=dtype, count=n * L * K, offset=values.offset * dtype.itemsize)
        yield flat.reshape(n, L, K), valid


def dataset_blocks(ds: Any, column: str, spec: SignatureSpec
                   ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(positions, signatures, valid)`` blocks of a Dataset's signature column: ``positions`` are the rows of
    ``ds`` (after any ``select``/``filter``) that the block's signatures belong to. Zero-copy when rows are direct;
    with an indices mapping each Arrow chunk's referenced rows are gathered (a row referenced twice comes twice)."""
    idx = row_indices(ds)
    blocks = signature_blocks(table_column(ds, column), spec)
    if idx is None:
        start = 0
        for sigs, valid in blocks:
            yield np.arange(start, start + len(sigs), dtype=np.int64), sigs, valid
            start += len(sigs)
        return
    order = np.argsort(idx, kind="stable")
    sorted_idx = idx[order]
    start = 0
    for sigs, valid in blocks:
        lo, hi = np.searchsorted(sorted_idx, [start, start + len(sigs)])
        if hi > lo:
            local = sorted_idx[lo:hi] - start
            yield order[lo:hi].astype(np.int64), sigs[local], None if valid is None else valid[local]
        start += len(sigs)


def stream_blocks(ds: Any, column: str, spec: SignatureSpec, batch_size: int
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """``(positions, signatures, valid)`` blocks of an IterableDataset's signature column, in one streamed pass."""
    from .columns import signature_feature

    stream = ds.select_columns([column]).cast_column(column, signature_feature(spec)).with_format("arrow")
    start = 0
    for table in stream.iter(batch_size=batch_size):
        for sigs, valid in signature_blocks(table.column(column), spec):
            yield np.arange(start, start + len(sigs), dtype=np.int64), sigs, valid
            start += len(sigs)


def numeric_column(ds: Any, name: str) -> np.ndarray:
    """Column ``name`` of ``ds`` in its row order as float64 (nulls -> NaN), read from Arrow, not via Python."""
    if name not in (ds.column_names or []):
        raise MissingColumnError(f"column {name!r} not in dataset; columns: {ds.column_names}")
    col = ds.data.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise WrongTypeError(f"column {name!r} must be numeric, got {col.type}")
    if col.null_count:
        col = col.cast(pa.float64()).fill_null(float("nan"))
    values = col.to_numpy().astype(np.float64, copy=False)
    idx = row_indices(ds)
    return values if idx is None else values[idx]


def add_row_column(
    ds: Any, name: str, values: np.ndarray, feature: Any, fingerprint: str, *, null_mask: np.ndarray | None = None
) -> Any:
    """``ds`` with a new column holding ``values`` (one per row of ``ds``), without flattening its indices mapping.

    ``Dataset.add_column`` first copies every selected row into memory; here the new column is written against the
    underlying table instead (rows not referenced get 0, or null with ``null_mask``) and the indices mapping is
    kept. A row referenced twice keeps the value of its first reference. ``null_mask`` marks rows stored as null.
    """
    from datasets import Dataset, Features
    from datasets.arrow_dataset import update_metadata_with_features
    from datasets.table import InMemoryTable, concat_tables

    if name in ds.column_names:
        ds = ds.remove_columns(name)
    values = np.asarray(values)
    if len(values) != len(ds):
        raise InvalidArgumentError(f"need {len(ds)} values for column {name!r}, got {len(values)}")
    idx = row_indices(ds)
    if idx is not None:
        full = np.zeros(table_length(ds), dtype=values.dtype)
        rows, first = np.unique(idx, return_index=True)
        full[rows] = values[first]
        values = full
        if null_mask is not None:
            full_mask = np.ones(len(full), np.bool_)
            full_mask[rows] = np.asarray(null_mask, np.bool_)[first]
            null_mask = full_mask
    schema = Features({name: feature}).arrow_schema
    array = pa.array(values, type=schema.field(name).type, mask=null_mask)
    column_table = InMemoryTable(pa.table({name: array}, schema=schema))
    if table_length(ds) == 0:
        # An empty ConcatenationTable has no blocks to align the new column with (an empty selection gives one).
        table = InMemoryTable(ds.data.table.append_column(schema.field(name), array))
    else:
        table = concat_tables([ds.data, column_table], axis=1)
    info = ds.info.copy()
    info.features.update(Features({name: feature}))
    table = update_metadata_with_features(table, info.features)
    out = Dataset(table, info=info, split=ds.split, indices_table=ds._indices, fingerprint=fingerprint)
    fmt = ds.format
    if fmt["type"] is not None or fmt["columns"] is not None:
        cols = None if fmt["columns"] is None else [*fmt["columns"], name]
        out.set_format(fmt["type"], columns=cols, output_all_columns=fmt["output_all_columns"],
                       **fmt["format_kwargs"])
    return out
