"""The exact greedy token-budget cut without sorting the pool: O(N) passes and ~4 bytes per document.

Ranking a pool best first (score, then row position) and keeping documents until the first one that would
overflow the budget keeps exactly: every document strictly better than a boundary score, then the documents at
the boundary score in row order up to the first overflow. The boundary is found by bisection over order-preserving
integer keys of the scores (32 passes for float32), each pass a compiled masked sum; only the kept rows are sorted.

>>> import numpy as np
>>> scores = np.array([0.5, 0.9, 0.5, 0.7, np.nan], dtype=np.float32)
>>> tokens = np.array([10, 10, 10, 10, 10])
>>> budget_cut(scores, tokens, budget=25.0)   # 0.9, then 0.7; the next (0.5) would overflow
array([1, 3])
"""

from __future__ import annotations

import numpy as np

from ..compiled import jit


@jit(nogil=True)
def _tokens_at_least(keys, tokens, k):  # type: ignore[no-untyped-def]
    total = 0
    for i in range(keys.shape[0]):
        if keys[i] >= k:
            total += tokens[i]
    return total


def goodness_keys(scores: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Unsigned keys ordered like the scores' goodness (bigger = better); NaN (missing) maps to 0.

    Every real score maps to a key >= 2**23 - 1 (float32) or 2**52 - 1 (float64), so 0 never collides.
    """
    scores = np.asarray(scores)
    if scores.dtype == np.float32:
        unsigned, sign = np.uint32, np.uint32(1 << 31)
    else:
        scores = scores.astype(np.float64, copy=False)
        unsigned, sign = np.uint64, np.uint64(1 << 63)
    # Adding +0.0 makes the copy we turn into keys and folds -0.0 into +0.0 (equal scores must tie).
    keys = (scores + scores.dtype.type(0.0)).view(unsigned)
    negative = (keys & sign) != 0
    # IEEE order as unsigned integers: flip all bits of negatives, set the sign bit of non-negatives.
    np.invert(keys, out=keys, where=negative)
    np.bitwise_or(keys, sign, out=keys, where=~negative)
    del negative
    if not higher_is_better:
        np.invert(keys, out=keys)
    keys[np.isnan(scores)] = 0
    return keys


def budget_cut(scores: np.ndarray, tokens: np.ndarray, budget: float, *, higher_is_better: bool = True) -> np.ndarray:
    """Row positions the greedy walk keeps within ``budget`` tokens, best first (ties by position).

    Rows with NaN scores are not considered. ``tokens`` must be non-negative integers.
    """
    keys = goodness_keys(scores, higher_is_better)
    tokens = np.ascontiguousarray(tokens)
    if tokens.dtype.kind not in "iu":
        tokens = tokens.astype(np.int64)
    if len(keys) == 0 or _tokens_at_least(keys, tokens, keys.dtype.type(1)) <= budget:
        boundary = keys.dtype.type(1)  # everything present fits
        strict = np.flatnonzero(keys >= boundary)
        at_boundary = np.zeros(0, dtype=np.int64)
    else:
        # Invariant: tokens(keys >= lo) > budget >= tokens(keys >= hi).
        lo, hi = 1, int(keys.max()) + 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _tokens_at_least(keys, tokens, keys.dtype.type(mid)) > budget:
                lo = mid
            else:
                hi = mid
        strict = np.flatnonzero(keys >= keys.dtype.type(hi))
        room = budget - int(tokens[strict].sum())
        tied = np.flatnonzero(keys == keys.dtype.type(lo))
        cumulative = np.cumsum(tokens[tied], dtype=np.int64)
        at_boundary = tied[: int(np.searchsorted(cumulative, room, side="right"))]
    # Best first; flatnonzero gives ascending positions, so a stable sort on inverted keys breaks ties by position.
    ranked = strict[np.argsort(np.invert(keys[strict]), kind="stable")]
    return np.concatenate([ranked, at_boundary]).astype(np.int64, copy=False)
