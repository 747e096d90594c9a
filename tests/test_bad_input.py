"""Regression tests of the second hardening pass (issue 17): the natural call is safe, nothing a user owns is lost."""

from __future__ import annotations

import hashlib

import pytest


@pytest.mark.slow
def test_tokenizer_padding_and_truncation_state_do_not_change_the_spec(featurizer):
    before = featurizer.spec()
    tokenizer = featurizer._ensure_loaded()["tokenizer"]
    tokenizer(["a short text", "and a somewhat longer one"], padding=True, truncation=True, max_length=4)
    assert tokenizer.backend_tokenizer.truncation is not None  # the runtime state really changed
    assert featurizer.spec() == before


@pytest.mark.slow
def test_tokenizer_fingerprint_of_an_untouched_tokenizer_keeps_its_old_value():
    from transformers import AutoTokenizer

    from nag_datasets.models import converted_bundled_dir, tokenizer_fingerprint

    fresh = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    old = "tok-sha256:" + hashlib.sha256(fresh.backend_tokenizer.to_str().encode()).hexdigest()[:32]
    assert tokenizer_fingerprint(fresh) == old  # profiles and datasets written before still match
