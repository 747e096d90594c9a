from __future__ import annotations

import numpy as np
import pytest

from nag_datasets.distill.ngrams import char_ngram_counts, normalize_text

pytestmark = pytest.mark.fast


M64 = 2**64


def _bucket(gram: bytes, n_features: int) -> int:
    """The module's hash restated in Python integers: the polynomial over the bytes (base FNV's 64-bit prime),
    xor a per-length salt, MurmurHash3's 64-bit finaliser, the low bits."""
    h = 0
    for byte in gram:
        h = (h * 1099511628211 + byte) % M64
    h ^= (len(gram) * 0x9E3779B97F4A7C15) % M64
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h ^= h >> 33
        h = (h * mult) % M64
    h ^= h >> 33
    return h & (n_features - 1)


def _reference(text: str, n_min: int, n_max: int, n_features: int) -> np.ndarray:
    out = np.zeros(n_features, np.float32)
    b = normalize_text(text).encode("utf-8")
    for n in range(n_min, n_max + 1):
        for s in range(len(b) - n + 1):
            out[_bucket(b[s:s + n], n_features)] += 1
    return out


def test_counts_do_not_depend_on_the_batch():
    texts = ["The cell membrane", "", "Photosynthesis in plants\nand algae", "ümlaut café", "x" * 7, "The cell"]
    whole = char_ngram_counts(texts, n_min=2, n_max=4, n_features=2**12).toarray()
    one_by_one = np.vstack([char_ngram_counts([t], n_min=2, n_max=4, n_features=2**12).toarray() for t in texts])
    np.testing.assert_array_equal(whole, one_by_one)
    reversed_batch = char_ngram_counts(texts[::-1], n_min=2, n_max=4, n_features=2**12).toarray()
    np.testing.assert_array_equal(whole, reversed_batch[::-1])


def test_counts_are_the_number_of_byte_ngrams():
    texts = ["abc abc", "Ab  C", "é"]
    m = char_ngram_counts(texts, n_min=1, n_max=3, n_features=2**16)
    for i, t in enumerate(texts):
        nbytes = len(normalize_text(t).encode("utf-8"))
        assert m[i].sum() == sum(max(0, nbytes - n + 1) for n in (1, 2, 3))
    # a repeated n-gram is counted, not just marked: " abc abc " holds "abc" twice
    single = char_ngram_counts(["abc"], n_min=3, n_max=3, n_features=2**16).toarray()[0]
    double = char_ngram_counts(["abc abc"], n_min=3, n_max=3, n_features=2**16).toarray()[0]
    assert double.max() == 2.0 and single.max() == 1.0
    # case and whitespace runs do not matter; NUL inside a text is a space, never a text boundary
    np.testing.assert_array_equal(char_ngram_counts(["Ab  C"]).toarray(), char_ngram_counts(["ab c"]).toarray())
    np.testing.assert_array_equal(char_ngram_counts(["a\x00b"]).toarray(), char_ngram_counts(["a b"]).toarray())


def test_equals_the_hash_restated_in_python():
    """Saved models index their weights by these buckets: the vectorised hash must be exactly the documented one."""
    texts = ["Neuron-activated graphs", "", "ümlaut café\tnaïve", "a"]
    got = char_ngram_counts(texts, n_min=2, n_max=5, n_features=2**18).toarray()
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(got[i], _reference(t, 2, 5, 2**18))


def test_bad_arguments():
    with pytest.raises(ValueError, match="power of two"):
        char_ngram_counts(["a"], n_features=1000)
    with pytest.raises(ValueError, match="n_min"):
        char_ngram_counts(["a"], n_min=4, n_max=3)
    assert char_ngram_counts([], n_features=2**4).shape == (0, 16)
