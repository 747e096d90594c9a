from __future__ import annotations

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

from nag_datasets.scoring.kernel import (
    SignatureIndexError,
    counts_dtype,
    prepare_table,
    quantize_weights,
    score_blocks,
    score_signatures,
    score_signatures_numpy,
)

pytestmark = pytest.mark.fast


def _random_counts(L: int, N: int, K: int, num_targets: int, dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    counts = np.zeros((L, N), np.int64)
    for _ in range(num_targets):
        for layer in range(L):
            counts[layer, rng.choice(N, K, replace=False)] += 1
    return counts.astype(dtype)


@pytest.mark.parametrize("sig_dtype", [np.uint16, np.uint32, np.int64])
@pytest.mark.parametrize("count_dtype", [np.uint16, np.uint32])
def test_compiled_equals_numpy_and_formula(sig_dtype, count_dtype):
    L, K, N, D = 4, 5, 70, 9
    counts = _random_counts(L, N, K, D, count_dtype)
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, N, (300, L, K)).astype(sig_dtype)
    fast = score_signatures(sigs, counts, D)
    slow = score_signatures_numpy(sigs, counts, D)
    assert fast.dtype == np.float32
    assert fast.tobytes() == slow.tobytes()
    integer = np.array([sum(int(counts[l, s[l, k]]) for l in range(L) for k in range(K)) for s in sigs])
    expected = (integer.astype(np.float64) / (L * K * D)).astype(np.float32)
    assert fast.tobytes() == expected.tobytes()


def test_invalid_rows_are_nan_and_never_read():
    counts = _random_counts(2, 8, 2, 3, np.uint16)
    sigs = np.zeros((4, 2, 2), np.uint16)
    sigs[1] = 60000  # garbage under a null row must be ignored
    valid = np.array([True, False, True, True])
    out = score_signatures(sigs, counts, 3, valid)
    assert np.isnan(out[1]) and not np.isnan(out[[0, 2, 3]]).any()
    assert out.tobytes() == score_signatures_numpy(sigs, counts, 3, valid).tobytes()


def test_chunking_and_threads_do_not_change_a_bit():
    L, K, N, D = 3, 4, 50, 7
    counts = _random_counts(L, N, K, D, np.uint16)
    rng = np.random.default_rng(2)
    sigs = rng.integers(0, N, (70_000, L, K)).astype(np.uint16)
    valid = rng.random(len(sigs)) > 0.1
    whole = score_signatures(sigs, counts, D, valid, num_threads=1)
    threaded = score_signatures(sigs, counts, D, valid, num_threads=2)
    cuts = [0, 1, 999, 1000, 33_333, 70_000]
    blocks = [(sigs[a:b], valid[a:b]) for a, b in itertools.pairwise(cuts)]
    chunked = score_blocks(blocks, counts, D, num_threads=2)
    assert whole.tobytes() == threaded.tobytes() == chunked.tobytes()


def test_out_of_range_index_raises_with_row():
    counts = _random_counts(2, 8, 2, 1, np.uint16)
    sigs = np.zeros((50_000, 2, 2), np.uint16)
    sigs[40_123, 1, 0] = 8
    with pytest.raises(SignatureIndexError, match=r"row 40123 has neuron index 8 .*neurons_per_layer=8"):
        score_signatures(sigs, counts, 1, num_threads=2)
    with pytest.raises(SignatureIndexError, match="row 40123"):
        score_signatures_numpy(sigs, counts, 1)
    blocks = [(sigs[:40_000], None), (sigs[40_000:], None)]
    with pytest.raises(SignatureIndexError, match="row 40123"):
        score_blocks(blocks, counts, 1)
    with pytest.raises(SignatureIndexError, match="negative"):
        score_signatures(np.full((1, 2, 2), -1, np.int64), counts, 1)


def test_shape_and_type_errors():
    counts = _random_counts(2, 8, 2, 1, np.uint16)
    with pytest.raises(ValueError, match="layers"):
        score_signatures(np.zeros((1, 3, 2), np.uint16), counts, 1)
    with pytest.raises(TypeError):
        score_signatures(np.zeros((1, 2, 2), np.float32), counts, 1)
    with pytest.raises(TypeError):
        score_signatures(np.zeros((1, 2, 2), np.uint16), counts.astype(np.int64), 1)
    assert score_signatures(np.zeros((0, 2, 2), np.uint16), counts, 1).shape == (0,)


def test_weight_table_is_16_bit_and_scores_bit_equal_to_exact_float_sums():
    rng = np.random.default_rng(3)
    weights = quantize_weights(rng.normal(scale=3.0, size=(4, 50)))
    prepared = prepare_table(weights)
    # The count table's integer type: the kernel runs the same compiled loop on a table of the same size.
    assert prepared.table.dtype == np.uint16 and prepared.table.dtype == prepare_table(
        _random_counts(4, 50, 2, 1, np.uint16), 1).table.dtype
    assert np.array_equal(prepared.values(), weights.astype(np.float64))
    assert prepared.table.min() == 0 and prepared.offset == round(float(weights.min()) * prepared.divisor)
    assert prepare_table(prepared) is prepared
    sigs = rng.integers(0, 50, size=(300, 4, 6)).astype(np.uint16)
    valid = rng.random(300) > 0.1
    from_float = score_signatures(sigs, weights, valid=valid)
    from_prepared = score_signatures(sigs, prepared, valid=valid)
    assert np.array_equal(from_float.view(np.uint32), from_prepared.view(np.uint32))
    assert np.array_equal(from_prepared.view(np.uint32), score_signatures_numpy(sigs, prepared, valid=valid).view(np.uint32))
    # Multiples of 2**-s with small integers: the float64 sum is exact, so this is the exact mean, rounded once.
    exact = (weights.astype(np.float64)[np.arange(4)[None, :, None], sigs].sum(axis=(1, 2)) / 24).astype(np.float32)
    assert np.array_equal(from_float[valid].view(np.uint32), exact[valid].view(np.uint32))
    assert np.isnan(from_float[~valid]).all()


def test_quantize_weights_picks_the_finest_scale_with_a_16_bit_spread():
    rng = np.random.default_rng(4)
    w = rng.uniform(-1.0, 7.0, size=(3, 400))
    w[0, 0], w[0, 1] = -1.0, 7.0                      # spread exactly 8: 8 * 2**13 = 65536 > 65535, so s = 12
    q = quantize_weights(w).astype(np.float64)
    assert np.array_equal(q * 2**12, np.round(q * 2**12)) and not np.array_equal(q * 2**11, np.round(q * 2**11))
    assert np.abs(q - w).max() <= 2.0**-13
    assert prepare_table(quantize_weights(w)).divisor == 2**12
    narrow = quantize_weights(np.array([[0.25, 0.25 + 3 * 2**-20, 0.25 + 2**-22]]))   # tiny spread: capped at 2**-20
    assert prepare_table(narrow).divisor == 2**20 and narrow.tolist() == [[0.25, 0.25 + 3 * 2**-20, 0.25]]
    # Large weights with a small spread: w * 2**s stays below 2**24, so the float32 values are exact.
    big = quantize_weights(np.array([[1000.0, 1000.3]]))
    assert np.array_equal(prepare_table(big).values(), big.astype(np.float64))
    assert np.array_equal(quantize_weights(np.zeros((2, 3))), np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="spread"):
        quantize_weights(np.array([0.0, 70000.0]))
    with pytest.raises(ValueError, match="finite"):
        quantize_weights(np.array([0.0, np.inf]))


def test_prepare_table_refuses_tables_it_cannot_sum_exactly():
    with pytest.raises(ValueError, match="multiples"):
        prepare_table(np.array([[0.1]], dtype=np.float32))             # a multiple of 2**-27 only
    with pytest.raises(ValueError, match="spread"):
        prepare_table(np.array([[0.0, 100000.0]], dtype=np.float32))   # integers, but a 17-bit spread
    with pytest.raises(TypeError, match="uint16 or uint32 counts or float32 weights"):
        prepare_table(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="num_targets"):
        prepare_table(np.zeros((2, 3), np.uint16))
    with pytest.raises(ValueError, match=r"\(L, N\)"):
        prepare_table(np.zeros(3, np.float32))


def test_counts_dtype():
    assert counts_dtype(65535) == np.uint16 and counts_dtype(65536) == np.uint32


def test_unwritable_cache_falls_back_to_no_cache():
    # No cache locator accepts the file: numba would raise at decoration; the kernel must still work.
    code = (
        "import numpy as np\n"
        "from nag_datasets.scoring.kernel import score_signatures\n"
        "c = np.array([[1, 1, 0]], np.uint16)\n"
        "print(score_signatures(np.array([[[0]], [[2]]], np.uint16), c, 1).tolist())\n"
    )
    env = {**os.environ, "NUMBA_CACHE_LOCATOR_CLASSES": "ZipCacheLocator"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[1.0, 0.0]"
