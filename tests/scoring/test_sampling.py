"""Seeded bottom-k samples: keys from (seed, position) alone, so any batching of one pass picks the same rows."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from nag_datasets.scoring import sampling
from nag_datasets.scoring.sampling import sample_keys, smallest_keys

pytestmark = pytest.mark.fast


def test_doctests():
    result = doctest.testmod(sampling)
    assert result.attempted > 0 and result.failed == 0


def test_keys_depend_on_seed_and_position_only():
    positions = np.arange(1000)
    keys = sample_keys(positions, seed=7)
    assert keys.dtype == np.uint64 and len(np.unique(keys)) == 1000
    np.testing.assert_array_equal(sample_keys(positions[::-1], seed=7), keys[::-1])
    np.testing.assert_array_equal(sample_keys(positions[500:], seed=7), keys[500:])
    assert not np.array_equal(sample_keys(positions, seed=8), keys)
    assert sample_keys(np.array([3]), seed=-1).dtype == np.uint64  # negative seeds wrap, they do not fail


def test_keys_look_uniform():
    keys = sample_keys(np.arange(20_000), seed=0).astype(np.float64) / 2.0**64
    counts, _ = np.histogram(keys, bins=10, range=(0, 1))
    assert counts.min() > 1800 and counts.max() < 2200  # 2000 expected per bin


@pytest.mark.parametrize("n", [0, 1, 5, 40, 50])
def test_smallest_keys_is_a_sorted_lexsort_prefix(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 6, 40).astype(np.uint64)  # many ties: broken by position
    positions = rng.permutation(40)
    got = smallest_keys(keys, positions, n)
    want = np.lexsort((positions, keys))[:n]
    np.testing.assert_array_equal(got, want)


def test_bottom_k_over_chunks_equals_bottom_k_over_the_whole():
    positions = np.arange(1000)
    keys = sample_keys(positions, seed=3)
    whole = positions[smallest_keys(keys, positions, 25)]
    kept_keys, kept_pos = np.empty(0, np.uint64), np.empty(0, np.int64)
    for lo in range(0, 1000, 137):
        chunk = positions[lo:lo + 137]
        k = np.concatenate([kept_keys, sample_keys(chunk, seed=3)])
        p = np.concatenate([kept_pos, chunk])
        keep = smallest_keys(k, p, 25)
        kept_keys, kept_pos = k[keep], p[keep]
    np.testing.assert_array_equal(kept_pos, whole)
