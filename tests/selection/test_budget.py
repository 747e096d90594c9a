"""The sort-free exact budget cut equals the sort-based greedy walk."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nag_datasets.selection.budget import budget_cut, goodness_keys


def _greedy_by_sort(scores, tokens, budget, higher_is_better=True):
    rows = [i for i in range(len(scores)) if not np.isnan(scores[i])]
    rows.sort(key=lambda i: (-scores[i] if higher_is_better else scores[i], i))
    kept, total = [], 0
    for i in rows:
        if total + tokens[i] > budget:
            break
        kept.append(i)
        total += tokens[i]
    return kept


@pytest.mark.fast
@settings(max_examples=200, deadline=None, database=None)
@given(
    data=st.lists(st.tuples(st.sampled_from([0.0, 0.25, 0.5, 0.5, 1.0, -0.0, -3.0, float("nan"), float("inf")]),
                            st.integers(0, 50)), min_size=0, max_size=40),
    fraction=st.floats(0.0, 1.0),
    higher=st.booleans(),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_budget_cut_equals_sorted_greedy_walk(data, fraction, higher, dtype):
    scores = np.array([d[0] for d in data], dtype=dtype)
    tokens = np.array([d[1] for d in data], dtype=np.int64)
    budget = fraction * int(tokens[~np.isnan(scores)].sum()) if len(data) else 0.0
    expected = _greedy_by_sort(scores.tolist(), tokens.tolist(), budget, higher)
    assert budget_cut(scores, tokens, budget, higher_is_better=higher).tolist() == expected


@pytest.mark.fast
def test_keys_order_like_scores_and_nan_is_zero():
    values = np.array([-np.inf, -2.5, -0.0, 0.0, 1e-30, 0.5, 3.0, np.inf, np.nan], dtype=np.float32)
    keys = goodness_keys(values)
    assert keys[-1] == 0 and (keys[:-1] > 0).all()
    assert keys[2] == keys[3]  # -0.0 ties +0.0
    assert (np.diff(keys[:-1].astype(np.int64)) >= 0).all()
    low = goodness_keys(values, higher_is_better=False)
    assert (np.diff(low[:-1].astype(np.int64)) <= 0).all() and low[-1] == 0


@pytest.mark.fast
def test_large_random_pool_matches_argsort():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(200_000), 3).astype(np.float32)  # many exact ties
    tokens = rng.integers(0, 300, size=200_000)
    budget = 0.2 * tokens.sum()
    order = np.lexsort((np.arange(len(scores)), -scores.astype(np.float64)))
    cumulative = np.cumsum(tokens[order])
    expected = order[: np.searchsorted(cumulative, budget, side="right")]
    assert np.array_equal(budget_cut(scores, tokens, budget), expected)
