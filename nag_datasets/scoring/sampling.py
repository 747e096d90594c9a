"""Seeded uniform samples that do not depend on how the rows arrive (whole table, chunks or a stream).

Every row position gets a 64-bit key from a counter-based mix of ``(seed, position)``; a sample of ``n`` rows is
the ``n`` smallest keys (ties by position). Any pass over the same rows in the same order, whatever its batching,
picks the same rows, and a stream needs only the ``n`` current best rows in memory (bottom-k sampling).

>>> sample_keys(np.arange(3), seed=0).dtype
dtype('uint64')
>>> keep = smallest_keys(sample_keys(np.arange(10), seed=1), np.arange(10), 3)
>>> len(keep), bool(np.all(keep == smallest_keys(sample_keys(np.arange(10), seed=1), np.arange(10), 3)))
(3, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_keys", "smallest_keys"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def sample_keys(positions: np.ndarray, seed: int) -> np.ndarray:
    """A pseudo-random uint64 key per row position (splitmix64 of ``position + seed * golden ratio``)."""
    x = np.asarray(positions).astype(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(int(seed) & 0xFFFFFFFFFFFFFFFF) * _GOLDEN + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _MIX1
        x = (x ^ (x >> np.uint64(27))) * _MIX2
        x = x ^ (x >> np.uint64(31))
    return x


def smallest_keys(keys: np.ndarray, positions: np.ndarray, n: int) -> np.ndarray:
    """Indices (into ``keys``) of the ``n`` smallest ``(key, position)`` pairs, in ascending key order."""
    if n >= len(keys):
        return np.lexsort((positions, keys))
    cut = np.argpartition(keys, n - 1)[:n] if n > 0 else np.empty(0, np.intp)
    # Entries equal to the n-th key may sit on either side of the partition: take them all, then order exactly.
    if n > 0:
        kth = keys[cut].max()
        cut = np.union1d(cut, np.flatnonzero(keys == kth))
    order = np.lexsort((positions[cut], keys[cut]))
    return cut[order][:n]
