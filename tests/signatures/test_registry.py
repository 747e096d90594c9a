"""The local spec registry: specs by fingerprint, so that a refusal can name what differs; never a point of failure."""

from __future__ import annotations

import pytest
from helpers import make_spec

from nag_datasets.signatures.registry import known_spec, register_spec, spec_path
from nag_datasets.storage.cache import CACHE_ENV

pytestmark = pytest.mark.fast


@pytest.fixture(autouse=True)
def cache(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_registered_specs_come_back_by_fingerprint(cache):
    spec = make_spec(model_name="m")
    assert known_spec(spec.fingerprint) is None
    register_spec(spec)
    assert spec_path(spec.fingerprint) == cache / "specs" / f"{spec.fingerprint}.json"
    assert known_spec(spec.fingerprint) == spec
    register_spec(spec.replace(model_name="renamed"))  # same fingerprint: the first registration stays
    assert known_spec(spec.fingerprint).model_name == "m"


def test_damaged_or_foreign_files_are_unknown_specs():
    spec, other = make_spec(), make_spec(top_k=2)
    register_spec(spec)
    spec_path(spec.fingerprint).write_text("{broken")
    assert known_spec(spec.fingerprint) is None
    spec_path(spec.fingerprint).write_text(other.to_json())  # a file that does not hash to its name
    assert known_spec(spec.fingerprint) is None
    assert spec_path("../../etc/passwd").name == "passwd.json"  # a fingerprint never leaves the folder


def test_an_unwritable_cache_only_loses_the_detail(cache):
    cache.mkdir()
    (cache / "specs").write_text("a file where the folder should be")
    register_spec(make_spec())  # no error
    assert known_spec(make_spec().fingerprint) is None
