"""Neuron counts of signature blocks: exact against a brute-force count, refusals of bad signatures, and the seeded
background sample (the same rows whether the pool is in memory, selected, or streamed in any batching)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from helpers import random_signatures

from nag_datasets.errors import WrongTypeError
from nag_datasets.scoring import counting
from nag_datasets.scoring.counting import CountAccumulator, Reservoir, count_rows
from nag_datasets.scoring.kernel import SignatureIndexError
from nag_datasets.scoring.sampling import sample_keys
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError

pytestmark = pytest.mark.fast


def _brute_force(sigs: np.ndarray, spec, weights=None) -> np.ndarray:
    counts = np.zeros((spec.num_layers, spec.neurons_per_layer), np.int64)
    for i, sig in enumerate(sigs):
        for layer in range(spec.num_layers):
            for neuron in sig[layer]:
                counts[layer, neuron] += 1 if weights is None else weights[i]
    return counts


def test_doctests():
    result = doctest.testmod(counting)
    assert result.attempted > 0 and result.failed == 0


def test_counts_equal_a_brute_force_count_in_any_blocking(spec, monkeypatch):
    sigs = random_signatures(50, spec, seed=4)
    valid = np.arange(50) % 7 != 0
    monkeypatch.setattr(CountAccumulator, "_ROWS", 8)  # several inner blocks per add
    acc = CountAccumulator(spec)
    acc.add(sigs[:30], valid[:30])
    acc.add(sigs[30:], valid[30:])
    np.testing.assert_array_equal(acc.counts(), _brute_force(sigs[valid], spec))
    assert acc.num_targets == int(valid.sum()) and acc.skipped_null == int((~valid).sum())
    weights = np.arange(50) % 3
    weighted = CountAccumulator(spec)
    weighted.add(sigs, weight=weights)
    np.testing.assert_array_equal(weighted.counts(), _brute_force(sigs, spec, weights))
    assert weighted.num_targets == int(weights.sum())


def test_bad_signatures_are_refused(spec):
    sigs = random_signatures(3, spec)
    out_of_range = sigs.astype(np.int64)
    out_of_range[1, 0, 0] = spec.neurons_per_layer
    with pytest.raises(SignatureIndexError, match="neuron index 32 outside 0..31"):
        CountAccumulator(spec).add(out_of_range)
    repeated = sigs.copy()
    repeated[2, 1, 1] = repeated[2, 1, 0]
    with pytest.raises(ProfileError, match="target row 2 repeats a neuron in layer 1"):
        CountAccumulator(spec).add(repeated)
    empty = CountAccumulator(spec)
    empty.add(sigs, np.zeros(3, bool))
    with pytest.raises(ProfileError, match=r"no valid target signatures \(3 null rows skipped\)"):
        empty.counts()


def test_reservoir_keeps_the_rows_with_the_smallest_keys(spec):
    sigs = random_signatures(100, spec, seed=5)
    valid = np.arange(100) % 9 != 0
    reservoir = Reservoir(10, 6, spec)
    for lo in range(0, 100, 13):
        reservoir.add(np.arange(lo, min(lo + 13, 100)), sigs[lo:lo + 13], valid[lo:lo + 13])
    rows = np.flatnonzero(valid)
    chosen = rows[np.argsort(sample_keys(rows, 6), kind="stable")[:10]]
    np.testing.assert_array_equal(reservoir.accumulator().counts(), _brute_force(sigs[chosen], spec))
    assert reservoir.info() == {"size": 10, "seed": 6, "rows_with_signature": int(valid.sum()), "sampled": 10}
    assert reservoir.accumulator().skipped_null == int((~valid).sum())


def test_count_rows_refuses_other_containers(spec):
    with pytest.raises(WrongTypeError, match="needs a datasets.Dataset or IterableDataset, got list"):
        count_rows([], "nag_fwd_up", spec)


def test_background_sample_is_uniform_over_valid_rows_and_seeded(pool):
    _, ds = pool
    a = NAGProfile.from_dataset(ds, "nag_fwd_up", sample=50, seed=1)
    b = NAGProfile.from_dataset(ds, "nag_fwd_up", sample=50, seed=1)
    c = NAGProfile.from_dataset(ds, "nag_fwd_up", sample=50, seed=2)
    assert a == b and a.num_targets == 50 and not np.array_equal(a.counts, c.counts)
    assert a.sample_info == {"size": 50, "seed": 1, "rows_with_signature": 397, "sampled": 50}
    whole = NAGProfile.from_dataset(ds, "nag_fwd_up", sample=10_000)
    assert np.array_equal(whole.counts, NAGProfile.from_dataset(ds, "nag_fwd_up").counts)
    assert whole.num_targets == 397 and whole.skipped_null == 3


def test_streamed_background_equals_in_memory(pool, tmp_path):
    _, ds = pool
    in_memory = NAGProfile.from_dataset(ds, "nag_fwd_up", sample=60, seed=4)
    streamed = NAGProfile.from_dataset(ds.to_iterable_dataset(num_shards=3), "nag_fwd_up", sample=60, seed=4,
                                       batch_size=17)
    assert np.array_equal(streamed.counts, in_memory.counts) and streamed.sample_info == in_memory.sample_info
    ds.to_parquet(str(tmp_path / "pool.parquet"))
    from datasets import load_dataset

    from nag_datasets.signatures.columns import attach_spec, get_spec

    from_parquet = load_dataset("parquet", data_files=str(tmp_path / "pool.parquet"), split="train", streaming=True)
    if "nag_fwd_up" not in from_parquet.features or from_parquet.features["nag_fwd_up"] != ds.features["nag_fwd_up"]:
        from_parquet = attach_spec(from_parquet, get_spec(ds, "nag_fwd_up"))
    parquet_profile = NAGProfile.from_dataset(from_parquet, "nag_fwd_up", sample=60, seed=4, batch_size=50)
    assert np.array_equal(parquet_profile.counts, in_memory.counts)
    full_stream = NAGProfile.from_dataset(ds.to_iterable_dataset(), "nag_fwd_up")
    assert np.array_equal(full_stream.counts, NAGProfile.from_dataset(ds, "nag_fwd_up").counts)


def test_background_of_a_selection_samples_its_rows(pool):
    _, ds = pool
    sub = ds.select(list(range(399, -1, -2)))
    sampled = NAGProfile.from_dataset(sub, "nag_fwd_up", sample=30, seed=0)
    flat = NAGProfile.from_dataset(sub.flatten_indices(), "nag_fwd_up", sample=30, seed=0)
    assert np.array_equal(sampled.counts, flat.counts)


def test_sample_must_be_positive(pool):
    with pytest.raises(ProfileError, match="sample must be >= 1"):
        NAGProfile.from_dataset(pool[1], "nag_fwd_up", sample=0)
