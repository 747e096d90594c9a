"""The contrastive weightings: each formula against its definition, the registry, parameters and their refusals."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from nag_datasets.errors import NAGError
from nag_datasets.scoring import weighting
from nag_datasets.scoring.weighting import (
    WEIGHTINGS,
    Difference,
    Lift,
    LogOdds,
    Shrinkage,
    TfIdf,
    Weighting,
    WeightingError,
    get_weighting,
)

pytestmark = pytest.mark.fast

C_T, N_T = np.array([[4, 1, 0, 2]]), 4
C_B, N_B = np.array([[10, 0, 10, 3]]), 10


def test_doctests():
    result = doctest.testmod(weighting, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_log_odds_formula_on_tiny_counts():
    c_t, c_b = np.array([[3, 0, 1]]), np.array([[2, 8, 0]])
    got = LogOdds(alpha=0.25).table(c_t, 4, c_b, 10)
    want = np.log((c_t + 0.25) / 4.5) - np.log((c_b + 0.25) / 10.5)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    shrunk = Shrinkage(m=20, alpha=0.5).table(c_t, 4, c_b, 10)
    p_b = (c_b + 0.5) / 11
    np.testing.assert_allclose(shrunk, np.log((c_t + 20 * p_b) / 24) - np.log(p_b), rtol=0, atol=1e-15)


def test_weighting_errors():
    with pytest.raises(WeightingError, match="unknown weighting 'nope'"):
        get_weighting("nope")
    with pytest.raises(WeightingError, match="takes"):
        get_weighting("difference", alpha=1)
    with pytest.raises(WeightingError, match="alpha must be a finite number > 0"):
        get_weighting("log_odds", alpha=0)
    assert issubclass(WeightingError, NAGError) and issubclass(WeightingError, ValueError)


@pytest.mark.parametrize(("w", "want"), [
    (Difference(), C_T / N_T - C_B / N_B),
    (Lift(eps=0.05), np.log((C_T / N_T + 0.05) / (C_B / N_B + 0.05))),
    (TfIdf(), C_T / N_T * np.log((N_B + 1) / (C_B + 1))),
])
def test_every_formula_matches_its_definition(w, want):
    got = w.table(C_T, N_T, C_B, N_B)
    assert got.dtype == np.float64 and got.shape == C_T.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_weighting_is_finite_on_empty_and_full_neurons(name):
    table = get_weighting(name).table(np.array([[0, 4, 2]]), 4, np.array([[0, 10, 10]]), 10)
    assert np.isfinite(table).all()


def test_more_target_share_never_weighs_less():
    """With the background fixed, a neuron more of the targets hold gets at least the weight of one fewer hold."""
    c_b = np.full((1, 5), 3)
    c_t = np.array([[0, 1, 2, 3, 4]])
    for name in WEIGHTINGS:
        table = get_weighting(name).table(c_t, 4, c_b, 10)[0]
        assert np.all(np.diff(table) >= 0), name


def test_registry_and_round_trip():
    assert set(WEIGHTINGS) == {"log_odds", "shrinkage", "difference", "lift", "tfidf"}
    for name, cls in WEIGHTINGS.items():
        w = get_weighting(name)
        assert isinstance(w, cls) and issubclass(cls, Weighting) and w.name == name
        assert get_weighting(w.to_dict()) == w and get_weighting(w) is w
    assert get_weighting("shrinkage", m=10).describe() == "shrinkage(m=10.0, alpha=0.5)"


def test_parameters_go_on_the_instance():
    with pytest.raises(WeightingError, match="set them on it"):
        get_weighting(LogOdds(), alpha=1.0)
    with pytest.raises(WeightingError, match="m must be a finite number > 0"):
        Shrinkage(m=float("inf"))
    with pytest.raises(WeightingError, match="unknown weighting 'frequency'"):
        get_weighting("frequency")  # the paper's profile: no weighting at all (NAGProfile.contrast handles it)
