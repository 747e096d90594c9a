"""The embedding signal: centred unit features against a numpy reference, per-row scores that no batch changes, the
centred and learned models against the retrieval harness's, refusals."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from helpers import random_embeddings
from nag_research.evaluate import fusion as harness

from nag_datasets.scoring import embedding_model
from nag_datasets.scoring.embedding_model import (
    EmbeddingModel,
    background_mean,
    centred_features,
    centred_features_numpy,
    fit_embedding_model,
)
from nag_datasets.scoring.profile_files import ProfileError

TARGET = random_embeddings(12, 16, shift=0.6, seed=1)
BACKGROUND = random_embeddings(50, 16, seed=2)


def test_doctests():
    result = doctest.testmod(embedding_model)
    assert result.attempted > 0 and result.failed == 0


def test_features_equal_the_numpy_reference_and_keep_zero_rows():
    rows = np.vstack([BACKGROUND, np.zeros((1, 16), np.float16)])
    mu = background_mean(BACKGROUND)
    np.testing.assert_allclose(mu, harness._unit_rows(harness.as_float16(BACKGROUND)).mean(axis=0), rtol=0,
                               atol=1e-15)
    got = centred_features(rows, mu)
    np.testing.assert_allclose(got, centred_features_numpy(rows, mu), rtol=0, atol=1e-14)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(got[-1], -mu / np.linalg.norm(mu), atol=1e-14)  # zero row: u = 0, f = -mu / |mu|


def test_a_rows_score_does_not_depend_on_its_batch():
    model = fit_embedding_model(TARGET, BACKGROUND)
    rows = random_embeddings(300, 16, seed=3)
    whole = model.scores(rows)
    for size in (1, 2, 7, 64):
        parts = np.concatenate([model.scores(rows[i:i + size]) for i in range(0, len(rows), size)])
        assert np.array_equal(parts, whole), size
    order = np.random.default_rng(0).permutation(len(rows))
    assert np.array_equal(model.scores(rows[order]), whole[order])
    # and each score is f(x) . coef + intercept, up to rounding
    np.testing.assert_allclose(whole, centred_features_numpy(rows, model.mu_b) @ model.coef + model.intercept,
                               rtol=0, atol=1e-12)


def test_null_rows_score_nan():
    model = fit_embedding_model(TARGET, BACKGROUND, kind="centred")
    valid = np.array([True, False, True])
    out = model.scores(BACKGROUND[:3], valid)
    assert np.isnan(out[1]) and np.array_equal(out[[0, 2]], model.scores(BACKGROUND[[0, 2]]))


def test_centred_model_is_the_harness_centred_contrastive_embedding():
    model = fit_embedding_model(TARGET, BACKGROUND, kind="centred")
    pool = random_embeddings(40, 16, seed=4)
    ref = harness.centred_embedding_scores(pool, TARGET, BACKGROUND)
    np.testing.assert_allclose(model.scores(pool), ref, rtol=0, atol=1e-12)
    assert model.intercept == 0.0 and model.C is None


def test_learned_model_is_the_harness_learned_model():
    model = fit_embedding_model(TARGET, BACKGROUND)
    ref = harness.fit_learned(harness.embedding_block(TARGET, BACKGROUND),
                              harness.embedding_block(BACKGROUND, BACKGROUND))
    assert model.C == ref.C and model.kind == "learned"
    np.testing.assert_allclose(model.coef, ref.coef, rtol=0, atol=1e-9)
    assert abs(model.intercept - ref.intercept) < 1e-9
    pool = random_embeddings(40, 16, seed=4)
    np.testing.assert_allclose(model.scores(pool), ref.score(harness.embedding_block(pool, BACKGROUND)), atol=1e-9)
    # a refit gives the same bytes
    again = fit_embedding_model(TARGET, BACKGROUND)
    assert again == model and again.digest() == model.digest()


def test_refusals():
    with pytest.raises(ProfileError, match="needs at least 3 target and 3 background rows"):
        fit_embedding_model(TARGET[:2], BACKGROUND)
    with pytest.raises(Exception, match="unknown embedding model"):
        fit_embedding_model(TARGET, BACKGROUND, kind="knn")
    model = fit_embedding_model(TARGET[:2], BACKGROUND, kind="centred")  # the centred model needs no folds
    with pytest.raises(Exception, match=r"the profile expects \(n, 16\)"):
        model.scores(np.zeros((2, 8), np.float16))
    with pytest.raises(ProfileError, match="non-finite"):
        EmbeddingModel("centred", np.zeros(2), np.array([np.nan, 0.0]), 0.0)
