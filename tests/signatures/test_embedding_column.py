"""The embedding column: its typed feature survives what a signature column survives, zero-copy blocks, batch
arrays, and the checks that refuse a missing or different column with a message naming the fix or the fields."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasets import Dataset, load_dataset
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.errors import MissingColumnError
from nag_datasets.signatures.embedding_column import (
    EMBEDDING_COLUMN,
    check_embedding_column,
    dataset_embedding_spec,
    embedding_array,
    embedding_blocks,
    embedding_columns,
    embedding_feature,
    embedding_spec_from_feature,
    gather_embeddings,
)
from nag_datasets.signatures.spec import SpecError, SpecMismatchError

SPEC = make_spec()
EMB = make_embedding_spec(SPEC)


@pytest.fixture()
def ds():
    return make_fused_dataset(random_signatures(6, SPEC), random_embeddings(6), SPEC, EMB,
                              {"n": [1, 2, 3, 4, 5, 6]}, null_rows=[4])


def test_feature_round_trip():
    feature = embedding_feature(EMB)
    assert feature.length == 8 and feature.feature.dtype == "float16"
    assert embedding_spec_from_feature(feature) == EMB
    assert embedding_spec_from_feature(make_fused_dataset(random_signatures(1, SPEC), random_embeddings(1), SPEC,
                                                          EMB).features["nag_fwd_up"]) is None


def test_spec_survives_map_filter_select_save_and_parquet(ds, tmp_path):
    mapped = ds.map(lambda b: {"m": b["n"]}, batched=True)
    copies = [mapped, ds.filter(lambda r: r["n"] > 1), ds.select([5, 0, 2])]
    ds.save_to_disk(str(tmp_path / "saved"))
    from datasets import load_from_disk

    copies.append(load_from_disk(str(tmp_path / "saved")))
    ds.to_parquet(str(tmp_path / "p.parquet"))
    copies.append(load_dataset("parquet", data_files=str(tmp_path / "p.parquet"), split="train"))
    for copy in copies:
        assert embedding_columns(copy) == {EMBEDDING_COLUMN: EMB}
    original = np.asarray(ds[EMBEDDING_COLUMN][0], np.float16)
    assert np.array_equal(np.asarray(copies[-1][EMBEDDING_COLUMN][0], np.float16), original)


def test_a_plain_map_column_is_checked_through_nag_spec(ds):
    plain = Dataset.from_dict({EMBEDDING_COLUMN: ds[EMBEDDING_COLUMN], "nag_spec": ds["nag_spec"]})
    assert embedding_spec_from_feature(plain.features[EMBEDDING_COLUMN]) is None
    assert dataset_embedding_spec(plain) == EMB
    check_embedding_column(plain, EMBEDDING_COLUMN, EMB)
    with pytest.raises(SpecMismatchError, match="layer: profile=1 vs column 'nag_embedding'=2"):
        check_embedding_column(plain, EMBEDDING_COLUMN, EMB.replace(layer=1))
    blocks = list(embedding_blocks(plain.data.column(EMBEDDING_COLUMN), EMB))
    assert np.array_equal(np.concatenate([b for b, _ in blocks])[:4], np.asarray(ds[EMBEDDING_COLUMN][:4], np.float16))


def test_missing_or_other_column_is_refused_naming_the_fix(ds):
    without = ds.remove_columns(EMBEDDING_COLUMN)
    with pytest.raises(MissingColumnError, match=r"embedding='last'.*--embedding last"):
        check_embedding_column(without, EMBEDDING_COLUMN, EMB)
    with pytest.raises(SpecMismatchError, match="hidden_size: profile=16 vs column 'nag_embedding'=8"):
        check_embedding_column(ds, EMBEDDING_COLUMN, EMB.replace(hidden_size=16))
    untyped = Dataset.from_dict({EMBEDDING_COLUMN: [[0.0] * 8]})
    with pytest.raises(SpecError, match="no embedding spec"):
        check_embedding_column(untyped, EMBEDDING_COLUMN, EMB)


def test_blocks_are_zero_copy_with_validity(ds):
    (block, valid), = list(embedding_blocks(ds.data.column(EMBEDDING_COLUMN), EMB))
    assert block.dtype == np.float16 and block.shape == (6, 8) and not block.flags.owndata
    assert valid.tolist() == [True, True, True, True, False, True]
    assert np.array_equal(gather_embeddings(ds, EMBEDDING_COLUMN, EMB, np.array([5, 0])), block[[5, 0]])
    with pytest.raises(SpecError, match="null embedding"):
        gather_embeddings(ds, EMBEDDING_COLUMN, EMB, np.array([4]))


def test_blocks_refuse_a_null_value_inside_a_row():
    values = pa.array([1.0, None, 2.0, 3.0], type=pa.float16())
    with pytest.raises(SpecError, match="null value inside row 0"):
        list(embedding_blocks(pa.FixedSizeListArray.from_arrays(values, 2), make_embedding_spec(hidden_size=2)))


def test_batch_arrays_from_lists_numpy_and_arrow_agree(ds):
    want, valid = embedding_array(ds.data.column(EMBEDDING_COLUMN), 8)
    assert valid.tolist() == [True, True, True, True, False, True] and not want[4].any()
    got, got_valid = embedding_array(ds[EMBEDDING_COLUMN], 8)
    assert np.array_equal(got, want) and np.array_equal(got_valid, valid)
    with pytest.raises(Exception, match=r"shape \(3,\)"):
        embedding_array([[1.0, 2.0, 3.0]], 8)


def test_sidecar_reattaches_both_specs(ds, tmp_path):
    import json

    from nag_datasets.signatures.formats import load_any, save_any

    save_any(ds, tmp_path / "p.parquet")
    sidecar = json.loads((tmp_path / "p.parquet.spec.json").read_text())
    assert sidecar[EMBEDDING_COLUMN]["kind"] == "embedding" and "kind" not in sidecar["nag_fwd_up"]
    import pyarrow.parquet as pq

    table = pq.read_table(str(tmp_path / "p.parquet")).replace_schema_metadata(None)
    pq.write_table(table, str(tmp_path / "foreign.parquet"))  # what a foreign writer leaves
    (tmp_path / "foreign.parquet.spec.json").write_text(json.dumps(sidecar))
    assert embedding_columns(load_any(tmp_path / "foreign.parquet")) == {EMBEDDING_COLUMN: EMB}
