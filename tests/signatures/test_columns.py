"""Signature columns: the typed feature carries the spec, through datasets' operations and its own files."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, Value, concatenate_datasets, load_from_disk
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.errors import MissingColumnError
from nag_datasets.signatures.columns import (
    SPEC_ID_PREFIX,
    attach_spec,
    column_name,
    get_spec,
    signature_columns,
    signature_feature,
    spec_from_feature,
)
from nag_datasets.signatures.spec import SpecError

pytestmark = pytest.mark.fast


def test_feature_shape_type_and_spec():
    spec = make_spec(neurons_per_layer=70_000)
    feature = signature_feature(spec)
    assert feature.length == spec.num_layers and feature.feature.length == spec.top_k
    inner = feature.feature.feature
    assert inner.dtype == "uint32" and inner.id == SPEC_ID_PREFIX + spec.to_json()
    assert spec_from_feature(feature) == spec
    assert spec_from_feature(Value("int64")) is None and spec_from_feature(Value("string", id="other")) is None
    assert column_name("att_o") == "nag_att_o"


def test_a_feature_written_before_the_move_still_carries_its_spec():
    """The id stored in every saved signature feature is a format, not a module path: it never changes."""
    spec = make_spec()
    assert SPEC_ID_PREFIX == "nag_datasets.spec:"
    old = Value(spec.index_dtype, id="nag_datasets.spec:" + spec.to_json())
    assert spec_from_feature(old) == spec


def test_spec_survives_map_filter_select_concat_and_save(tmp_path):
    spec = make_spec()
    ds = make_signature_dataset(random_signatures(6, spec), spec, {"n": list(range(6))})
    kept = ds.map(lambda b: {"n": [x + 1 for x in b["n"]]}, batched=True).filter(lambda r: r["n"] % 2 == 0)
    kept = concatenate_datasets([kept.select([1, 0]), ds.select([5])])
    kept.save_to_disk(str(tmp_path / "ds"))
    assert get_spec(load_from_disk(str(tmp_path / "ds")), "nag_fwd_up") == spec
    assert signature_columns(kept) == {"nag_fwd_up": spec}


def test_get_spec_names_what_is_missing():
    spec = make_spec()
    ds = make_signature_dataset(random_signatures(2, spec), spec, {"text": ["a", "b"]})
    with pytest.raises(MissingColumnError, match=r"column 'nag_att_q' not in dataset; columns: \['nag_fwd_up', "
                                                 r"'text'\]"):
        get_spec(ds, "nag_att_q")
    plain = Dataset.from_dict({"nag_fwd_up": random_signatures(2, spec).tolist()})
    with pytest.raises(SpecError, match="carries no NAG signature spec .*attach_spec"):
        get_spec(plain, "nag_fwd_up")
    assert signature_columns(plain) == {}


def test_attach_spec_types_a_plain_column_without_changing_values():
    spec = make_spec()
    sigs = random_signatures(3, spec)
    plain = Dataset.from_dict({"nag_fwd_up": sigs.tolist(), "text": ["a", "b", "c"]})
    typed = attach_spec(plain, spec)
    assert get_spec(typed, "nag_fwd_up") == spec
    np.testing.assert_array_equal(np.asarray(typed["nag_fwd_up"][:]), sigs)
    with pytest.raises(MissingColumnError, match="column 'nag_att_k' not in dataset"):
        attach_spec(plain, spec, "nag_att_k")
