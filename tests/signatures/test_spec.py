"""The signature spec: validation, JSON round trip, the fingerprint of the compared fields, named mismatches."""

from __future__ import annotations

import json
import re
import warnings

import pytest
from helpers import make_spec

from nag_datasets.signatures.spec import (
    COMPARED_FIELDS,
    IMPACT_VERSION,
    RECORDED_FIELDS,
    SignatureSpec,
    SpecError,
    SpecMismatchError,
)

pytestmark = pytest.mark.fast

#: A value different from make_spec()'s for every field that a comparison checks.
OTHER = {"model_fingerprint": "m2", "tokenizer_fingerprint": "t2", "neuron_type": "att_v", "top_k": 5,
         "layers": (0, 2), "max_length": 99, "add_special_tokens": True, "neurons_per_layer": 40,
         "impact_version": "2"}


def test_every_compared_field_has_another_value_here():
    assert set(OTHER) == set(COMPARED_FIELDS) and not set(COMPARED_FIELDS) & set(RECORDED_FIELDS)


def test_json_round_trip_keeps_every_field():
    spec = make_spec(model_name="m", dtype="float32", attn_implementation="sdpa", library_version="x")
    assert SignatureSpec.from_json(spec.to_json()) == spec
    assert SignatureSpec.from_dict(json.loads(spec.to_json())) == spec
    assert spec.to_dict()["layers"] == [0, 1, 2] and spec.impact_version == IMPACT_VERSION


def test_layers_become_a_tuple_of_ints():
    spec = make_spec(layers=[2.0, 5])
    assert spec.layers == (2, 5) and spec.num_layers == 2


@pytest.mark.parametrize(("changes", "pattern"), [
    ({"neuron_type": "mlp"}, "unknown neuron type 'mlp'"),
    ({"top_k": 0}, r"top_k=0 must be in 1\.\.neurons_per_layer=32"),
    ({"top_k": 33}, r"top_k=33 must be in 1\.\.neurons_per_layer=32"),
    ({"layers": ()}, "at least one layer"),
])
def test_invalid_specs_are_refused(changes, pattern):
    with pytest.raises(SpecError, match=pattern):
        make_spec(**changes)


@pytest.mark.parametrize(("text", "pattern"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must be a JSON object, got list"),
    ('{"model_fingerprint": "m"}', "lacks fields: tokenizer_fingerprint"),
])
def test_malformed_json_is_a_spec_error(text, pattern):
    with pytest.raises(SpecError, match=pattern):
        SignatureSpec.from_json(text)


def test_unknown_and_mistyped_fields_are_refused():
    d = make_spec().to_dict()
    with pytest.raises(SpecError, match="unknown fields: colour"):
        SignatureSpec.from_dict({**d, "colour": "red"})
    with pytest.raises(SpecError, match="malformed signature spec"):
        SignatureSpec.from_dict({**d, "top_k": "four"})


def test_index_dtype_holds_every_neuron_index():
    assert make_spec(neurons_per_layer=65536).index_dtype == "uint16"
    assert make_spec(neurons_per_layer=65537).index_dtype == "uint32"


@pytest.mark.parametrize("field", COMPARED_FIELDS)
def test_fingerprint_changes_with_every_compared_field(field):
    spec = make_spec()
    other = spec.replace(**{field: OTHER[field]})
    assert other.fingerprint != spec.fingerprint
    assert [m.field for m in spec.mismatches(other)] == [field]
    named = f"{field}: profile={spec.to_dict()[field]!r} vs signatures={other.to_dict()[field]!r}"
    with pytest.raises(SpecMismatchError, match=re.escape(named)):
        spec.check_compatible(other)


@pytest.mark.parametrize("field", RECORDED_FIELDS)
def test_recorded_fields_never_change_the_fingerprint(field):
    spec = make_spec()
    other = spec.replace(**{field: "something else"})
    assert other.fingerprint == spec.fingerprint and spec.mismatches(other) == []


def test_check_compatible_names_every_field_and_warns_on_dtype():
    spec = make_spec(dtype="float32")
    with pytest.raises(SpecMismatchError) as err:
        spec.check_compatible(spec.replace(top_k=2, max_length=8), what="pool", against="target")
    assert str(err.value).startswith("cannot compare pool with target: signature specs differ in top_k: target=4 vs "
                                     "pool=2; max_length: target=16 vs pool=8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        spec.check_compatible(spec.replace(dtype="bfloat16"))
        spec.check_compatible(spec.replace(dtype=""))  # unknown dtype: nothing to warn about
    assert [str(w.message) for w in caught] == [
        "profile was computed in float32 and signatures in bfloat16: near-tied neurons may flip"]


def test_fingerprint_is_a_read_only_property_computed_once_with_the_same_value():
    import hashlib
    import pickle

    spec = make_spec()
    d = spec.to_dict()
    old_formula = hashlib.sha256(json.dumps({k: d[k] for k in COMPARED_FIELDS}, sort_keys=True,
                                            separators=(",", ":")).encode()).hexdigest()[:16]
    assert isinstance(spec.fingerprint, str) and spec.fingerprint == old_formula  # saved values do not change
    assert spec.fingerprint is spec.fingerprint  # computed once
    with pytest.raises(AttributeError):
        spec.fingerprint = "x"
    assert "fingerprint" not in pickle.loads(pickle.dumps(spec)).__dict__  # the cache does not travel
    assert pickle.loads(pickle.dumps(spec)).fingerprint == old_formula
