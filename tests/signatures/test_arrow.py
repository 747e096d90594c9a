"""Arrow access to `datasets` tables: the null check of validity bitmaps, signature blocks, row order."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, Value
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.errors import InvalidArgumentError, MissingColumnError, WrongTypeError
from nag_datasets.signatures.arrow import (
    add_row_column,
    dataset_blocks,
    first_row_with_unset_bits,
    numeric_column,
    row_indices,
    signature_blocks,
    stream_blocks,
    table_column,
    table_length,
)
from nag_datasets.signatures.spec import SpecError

pytestmark = pytest.mark.fast


def test_first_row_with_unset_bits_matches_brute_force():
    rng = np.random.default_rng(3)
    for width in (1, 3, 8, 20, 600):
        for offset in (0, 5, 13):
            n = 40
            bits = rng.random(offset + n * width + 7) > 0.002
            valid = rng.random(n) > 0.3
            packed = np.packbits(bits, bitorder="little")
            rows = bits[offset : offset + n * width].reshape(n, width)
            bad = np.flatnonzero(valid & ~rows.all(axis=1))
            assert first_row_with_unset_bits(packed, offset, width, valid) == (int(bad[0]) if len(bad) else -1)


def _pool(n=20, seed=0, null_rows=()):
    spec = make_spec()
    sigs = random_signatures(n, spec, seed)
    return spec, sigs, make_signature_dataset(sigs, spec, {"x": [float(i) for i in range(n)]}, null_rows=null_rows)


def test_signature_blocks_are_zero_copy_views_of_the_table():
    spec, sigs, ds = _pool(null_rows=[4])
    ((block, valid),) = list(signature_blocks(table_column(ds, "nag_fwd_up"), spec))
    assert block.shape == (20, spec.num_layers, spec.top_k) and not block.flags.owndata
    np.testing.assert_array_equal(block[valid], sigs[valid])
    assert valid.tolist() == [i != 4 for i in range(20)]


def test_signature_blocks_refuse_another_shape():
    spec, _, ds = _pool()
    with pytest.raises(SpecError, match=r"shape \(3, 4\) but its spec says \(3, 5\)"):
        list(signature_blocks(table_column(ds, "nag_fwd_up"), spec.replace(top_k=5)))


@pytest.mark.parametrize("rows", [[7, 2, 2, 19, 0], list(range(19, -1, -3)), []])
def test_dataset_blocks_follow_the_row_order_of_a_selection(rows):
    spec, sigs, ds = _pool()
    sub = ds.select(rows)
    seen = np.zeros((len(rows), spec.num_layers, spec.top_k), sigs.dtype)
    count = 0
    for positions, block, _ in dataset_blocks(sub, "nag_fwd_up", spec):
        seen[positions] = block
        count += len(positions)
    assert count == len(rows)
    np.testing.assert_array_equal(seen, sigs[rows])
    idx = row_indices(sub)
    assert (idx is None if not rows else idx.tolist() == rows) and row_indices(ds) is None


def test_stream_blocks_equal_dataset_blocks():
    spec, sigs, ds = _pool(null_rows=[3])
    streamed = list(stream_blocks(ds.to_iterable_dataset(num_shards=2), "nag_fwd_up", spec, batch_size=7))
    positions = np.concatenate([p for p, _, _ in streamed])
    assert positions.tolist() == list(range(20))
    valid = np.concatenate([np.ones(len(p), bool) if v is None else v for p, _, v in streamed])
    np.testing.assert_array_equal(np.concatenate([b for _, b, _ in streamed])[valid], sigs[valid])
    assert valid.tolist() == [i != 3 for i in range(20)]


def test_numeric_column_reads_nulls_as_nan_in_row_order():
    ds = Dataset.from_dict({"x": [1, None, 3], "s": ["a", "b", "c"]}).select([2, 1])
    np.testing.assert_array_equal(numeric_column(ds, "x"), [3.0, np.nan])
    with pytest.raises(WrongTypeError, match="column 's' must be numeric"):
        numeric_column(ds, "s")
    with pytest.raises(MissingColumnError, match="column 'y' not in dataset"):
        numeric_column(ds, "y")


def test_add_row_column_keeps_the_selection_and_its_rows():
    ds = Dataset.from_dict({"x": [10, 11, 12, 13]}).select([3, 1])
    out = add_row_column(ds, "y", np.array([1.5, 2.5]), Value("float64"), "fp", null_mask=np.array([False, True]))
    assert out["x"][:] == [13, 11] and out["y"][:] == [1.5, None]
    assert row_indices(out).tolist() == [3, 1] and table_length(out) == 4  # written beside the table, not copied
    with pytest.raises(InvalidArgumentError, match="need 2 values for column 'y', got 3"):
        add_row_column(ds, "y", np.zeros(3), Value("float64"), "fp")
