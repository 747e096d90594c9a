"""The embedding spec: compared and provenance fields, serialisation, the pairing with a signature spec, registry."""

from __future__ import annotations

import pytest
from helpers import make_embedding_spec, make_spec

from nag_datasets.signatures.embedding_spec import (
    EMBEDDING_COMPARED_FIELDS,
    EmbeddingSpec,
    spec_from_dict,
)
from nag_datasets.signatures.spec import SignatureSpec, SpecError, SpecMismatchError


def test_round_trip_and_kind():
    spec = make_embedding_spec()
    d = spec.to_dict()
    assert d["kind"] == "embedding" and d["pooling"] == "mean" and d["norm"] == "final" and d["dtype"] == "float16"
    assert EmbeddingSpec.from_json(spec.to_json()) == spec
    assert spec_from_dict(d) == spec
    assert isinstance(spec_from_dict(make_spec().to_dict()), SignatureSpec)


def test_fingerprint_covers_compared_fields_only_and_never_equals_a_signature_spec():
    spec = make_embedding_spec()
    assert spec.replace(model_name="x", layer_name="mid", library_version="v").fingerprint() == spec.fingerprint()
    changed = {"layer": 1, "hidden_size": 16, "max_length": 8, "tokenizer_fingerprint": "t2"}
    for field, value in changed.items():
        assert spec.replace(**{field: value}).fingerprint() != spec.fingerprint(), field
    assert set(changed) <= set(EMBEDDING_COMPARED_FIELDS)
    assert spec.fingerprint() != make_spec().fingerprint()


def test_mismatches_name_every_field():
    spec = make_embedding_spec()
    with pytest.raises(SpecMismatchError, match=r"layer: profile=2 vs column 'e'=1; hidden_size: profile=8 vs column "
                                                r"'e'=16"):
        spec.check_compatible(spec.replace(layer=1, hidden_size=16), what="column 'e'")
    assert [m.field for m in spec.mismatches(make_spec())] == ["kind"]


def test_pairs_only_with_the_signatures_of_the_same_inputs():
    sig = make_spec()
    make_embedding_spec(sig).check_pairs_with(sig)
    with pytest.raises(SpecMismatchError, match="max_length: the signature column=16 vs the embedding column=32"):
        make_embedding_spec(sig, max_length=32).check_pairs_with(sig)
    with pytest.raises(SpecMismatchError, match="model_fingerprint"):
        make_embedding_spec(sig, model_fingerprint="other").check_pairs_with(sig)


@pytest.mark.parametrize("bad", [{"pooling": "max"}, {"dtype": "float32"}, {"layer": -1}, {"hidden_size": 0}])
def test_refuses_definitions_it_does_not_write(bad):
    with pytest.raises(SpecError):
        make_embedding_spec(**bad)


def test_from_dict_refuses_missing_unknown_and_foreign():
    d = make_embedding_spec().to_dict()
    with pytest.raises(SpecError, match="lacks fields: layer"):
        EmbeddingSpec.from_dict({k: v for k, v in d.items() if k != "layer"})
    with pytest.raises(SpecError, match="unknown fields: extra"):
        EmbeddingSpec.from_dict({**d, "extra": 1})
    with pytest.raises(SpecError, match="not an embedding spec"):
        EmbeddingSpec.from_dict(make_spec().to_dict())


def test_registry_keeps_embedding_specs(tmp_path, monkeypatch):
    from nag_datasets.signatures.registry import known_spec, register_spec

    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path))
    spec = make_embedding_spec()
    assert known_spec(spec.fingerprint()) is None
    register_spec(spec)
    assert known_spec(spec.fingerprint()) == spec
