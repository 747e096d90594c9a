"""The scoring kernel: a row's score is the mean of a per-neuron table at its signature's neurons.

Two tables, one loop shape:

- the paper's profile holds integer counts ``c[l, k]`` (how many target documents have neuron ``k`` in their
  layer-``l`` NAG). A row's score is ``sum_{l,j} c[l, sig[l, j]] / (L * K * |D|)``: the sum is exact in int64 and
  divided once in float64, then rounded to float32.
- a contrastive profile holds float32 weights ``w[l, k]`` that are multiples of ``2**-20`` (see
  :func:`quantize_weights`). A row's score is ``sum_{l,j} w[l, sig[l, j]] / (L * K)``; the kernel sums the weights
  as the integers ``w * 2**20`` in int64, which is exact, so it runs the very loop of the count table.

A float32 table is converted to those integers on every call; :func:`prepare_table` does it once, and an int32
table is taken as already converted (what a contrastive profile hands the kernel, so that a ``map`` batch does not
pay for the conversion).

Either way the sum is exact, so every entry point (whole table, chunks, ``map`` batches, numpy reference) gives
bit-identical scores whatever the order of the additions. The compiled kernel is serial and releases the GIL; rows
are spread over threads here, which keeps it safe under ``ds.map(num_proc=...)`` (fork) and concurrent callers.

>>> import numpy as np
>>> counts = np.array([[2, 1, 0, 1], [0, 2, 2, 0]], dtype=np.uint16)   # L=2, N=4, |D|=2, K=2
>>> sigs = np.array([[[0, 1], [1, 2]], [[2, 3], [0, 3]]], dtype=np.uint16)
>>> score_signatures(sigs, counts, num_targets=2)
array([0.875, 0.125], dtype=float32)
>>> weights = np.array([[1.0, -1.0, 0.0, 0.5], [0.0, 2.0, 0.0, -2.0]], dtype=np.float32)
>>> score_signatures(sigs, weights)
array([ 0.5  , -0.375], dtype=float32)
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..errors import NAGError

__all__ = [
    "WEIGHT_SCALE",
    "SignatureIndexError",
    "counts_dtype",
    "first_row_with_unset_bits",
    "prepare_table",
    "quantize_weights",
    "score_blocks",
    "score_signatures",
    "score_signatures_numpy",
]

#: Weights are multiples of ``1 / WEIGHT_SCALE``: the kernel sums them exactly as integers.
WEIGHT_SCALE = 2**20
#: Largest weight magnitude a table may hold (its integers must fit int32).
MAX_WEIGHT = (2**31 - 1) / WEIGHT_SCALE

#: Below this many rows, threads cost more than they save.
_MIN_ROWS_PER_THREAD = 16_384


class SignatureIndexError(NAGError, ValueError):
    """A signature holds a neuron index outside ``0 .. neurons_per_layer - 1``."""


def _jit(**options: Any) -> Any:
    """``numba.njit`` with an on-disk cache when a cache folder is writable, without one otherwise."""
    from numba import njit

    def decorate(fn: Any) -> Any:
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:
            # numba raises at decoration when neither __pycache__, NUMBA_CACHE_DIR nor the user cache is
            # writable; compiling on each start is slower but correct.
            return njit(cache=False, **options)(fn)

    return decorate


@_jit(nogil=True)
def _score_range(sigs, counts, valid, use_valid, denom, out, start, stop, out_start):  # type: ignore[no-untyped-def]
    L = sigs.shape[1]
    K = sigs.shape[2]
    N = counts.shape[1]
    nbad = 0
    for i in range(start, stop):
        o = out_start + i - start
        if use_valid and not valid[i]:
            out[o] = np.nan
            continue
        s = 0
        bad = False
        for l in range(L):
            for k in range(K):
                idx = sigs[i, l, k]
                # Checked per element: never read outside the counts table, at a cost lost in memory latency.
                if idx < N:
                    s += counts[l, idx]
                else:
                    bad = True
        if bad:
            out[o] = np.nan
            nbad += 1
        else:
            out[o] = np.float32(s / denom)
    return nbad


@_jit(nogil=True)
def _first_unset(bitmap, bit_offset, width, row_valid):  # type: ignore[no-untyped-def]
    for i in range(row_valid.shape[0]):
        if not row_valid[i]:
            continue
        b = bit_offset + i * width
        end = b + width
        while b < end and (b & 7) != 0:
            if not (bitmap[b >> 3] >> (b & 7)) & 1:
                return i
            b += 1
        while b + 8 <= end:
            if bitmap[b >> 3] != 255:
                return i
            b += 8
        while b < end:
            if not (bitmap[b >> 3] >> (b & 7)) & 1:
                return i
            b += 1
    return -1


def first_row_with_unset_bits(bitmap: np.ndarray, bit_offset: int, width: int, row_valid: np.ndarray) -> int:
    """First row ``i`` with ``row_valid[i]`` whose bits ``[bit_offset + i*width, +width)`` are not all set, or -1.

    Used on Arrow validity bitmaps: a valid signature must not contain null entries.

    >>> first_row_with_unset_bits(np.array([0xFF, 0x0F], np.uint8), 0, 4, np.array([True, True, True, False]))
    -1
    >>> first_row_with_unset_bits(np.array([0xFF, 0x0F], np.uint8), 0, 4, np.array([True, True, True, True]))
    3
    """
    return int(_first_unset(np.ascontiguousarray(bitmap, dtype=np.uint8), int(bit_offset), int(width),
                            np.ascontiguousarray(row_valid, dtype=np.bool_)))


def counts_dtype(num_targets: int) -> np.dtype:
    """Smallest unsigned type that holds a count of up to ``num_targets``."""
    return np.dtype(np.uint16) if num_targets < 65536 else np.dtype(np.uint32)


def quantize_weights(weights: np.ndarray) -> np.ndarray:
    """Float weights rounded to a multiple of ``2**-20`` and stored as float32 (a float32 of magnitude 8 or more
    is such a multiple anyway; below 8 the multiple is exact). Scoring with them is then an exact integer sum.

    >>> quantize_weights(np.array([0.1, -1 / 3])).tolist()
    [0.10000038146972656, -0.33333301544189453]
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all():
        raise ValueError("weights must be finite")
    if w.size and np.abs(w).max() > MAX_WEIGHT:
        raise ValueError(f"weights must lie within +-{MAX_WEIGHT:.0f}, got {np.abs(w).max():.3g}")
    return (np.round(w * WEIGHT_SCALE) / WEIGHT_SCALE).astype(np.float32)


def prepare_table(counts: np.ndarray) -> np.ndarray:
    """The table as the kernel sums it: uint16/uint32 counts as they are, float32 weights as the int32 integers
    ``w * 2**20``; an int32 table is taken as weights already converted (this function's own output).

    >>> prepare_table(np.array([[0.5, -1.0]], dtype=np.float32)).tolist()
    [[524288, -1048576]]
    """
    if counts.ndim != 2:
        raise ValueError(f"counts must be an (L, N) array, got shape {counts.shape}")
    if counts.dtype == np.float32:
        scaled = counts.astype(np.float64) * WEIGHT_SCALE
        if not (np.isfinite(scaled).all() and np.array_equal(scaled, np.round(scaled))) or \
                (scaled.size and np.abs(scaled).max() > 2**31 - 1):
            raise ValueError("float32 weights must be multiples of 2**-20 within +-2047: pass them through "
                             "nag_datasets.scoring.kernel.quantize_weights")
        return np.ascontiguousarray(scaled.astype(np.int32))
    if counts.dtype not in (np.uint16, np.uint32, np.int32):
        raise TypeError(f"the table must hold uint16 or uint32 counts, float32 weights or int32 prepared weights, "
                        f"got {counts.dtype}")
    return np.ascontiguousarray(counts)


def _denominator(table: np.ndarray, K: int, num_targets: int | None) -> float:
    """What a row's integer sum is divided by: ``L * K * |D|`` for counts, ``L * K * 2**20`` for weights."""
    L = table.shape[0]
    if table.dtype == np.int32:
        return float(L * K * WEIGHT_SCALE)
    if num_targets is None or int(num_targets) < 1:
        raise ValueError(f"scoring with a count table needs num_targets >= 1, got {num_targets}")
    return float(L * K * int(num_targets))


def _as_index_array(sigs: np.ndarray, valid: np.ndarray | None, num_neurons: int) -> np.ndarray:
    """``sigs`` as a C-contiguous uint16/uint32 array; other integer types are range-checked and converted."""
    sigs = np.asarray(sigs)
    if sigs.ndim != 3:
        raise ValueError(f"signatures must be an (n, L, K) array, got shape {sigs.shape}")
    if sigs.dtype in (np.uint16, np.uint32):
        return np.ascontiguousarray(sigs)
    if sigs.dtype.kind not in "iu":
        raise TypeError(f"signatures must hold integers, got {sigs.dtype}")
    if valid is not None:
        # Values under invalid rows are undefined; zero them so they pass the range check.
        sigs = np.where(valid[:, None, None], sigs, 0)
    if sigs.size and sigs.min() < 0:
        row = int(np.flatnonzero((sigs < 0).any(axis=(1, 2)))[0])
        raise SignatureIndexError(f"signature row {row} has a negative neuron index")
    if sigs.size and sigs.max() >= num_neurons:
        _raise_index_error(sigs, None, num_neurons, 0)
    return np.ascontiguousarray(sigs.astype(np.uint16 if num_neurons <= 65536 else np.uint32))


def _raise_index_error(sigs: np.ndarray, valid: np.ndarray | None, num_neurons: int, row_offset: int) -> None:
    rows = np.flatnonzero(sigs.reshape(len(sigs), -1).max(axis=1) >= num_neurons)
    if valid is not None:
        rows = rows[valid[rows]]
    row = int(rows[0])
    raise SignatureIndexError(
        f"signature row {row_offset + row} has neuron index {int(sigs[row].max())} but the profile has "
        f"neurons_per_layer={num_neurons} (valid indices 0..{num_neurons - 1}): these signatures were not "
        "computed with the profile's spec"
    )


def _num_threads(requested: int | None) -> int:
    if requested is not None:
        return max(1, int(requested))
    env = os.environ.get("NAG_DATASETS_NUM_THREADS")
    if env:
        return max(1, int(env))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def score_blocks(
    blocks: list[tuple[np.ndarray, np.ndarray | None]],
    counts: np.ndarray,
    num_targets: int | None = None,
    *,
    num_threads: int | None = None,
    row_offsets: list[int] | None = None,
) -> np.ndarray:
    """Scores of several ``(signatures (n, L, K), valid (n,) or None)`` blocks, concatenated (float32, NaN = invalid).

    ``counts`` is an integer count table (then ``num_targets`` is required) or a float32 weight table (then
    ``num_targets`` is ignored); see the module docstring. Blocks are typically the zero-copy Arrow chunks of one
    column. ``row_offsets`` only serve error messages.

    >>> counts = np.array([[1, 1, 0]], dtype=np.uint16)
    >>> a = np.array([[[0]], [[2]]], dtype=np.uint16)
    >>> score_blocks([(a, None), (a, np.array([False, True]))], counts, num_targets=1)
    array([ 1.,  0., nan,  0.], dtype=float32)
    """
    counts = prepare_table(counts)
    L, N = counts.shape
    prepared = []
    for sigs, valid in blocks:
        if valid is not None:
            valid = np.ascontiguousarray(valid, dtype=np.bool_)
        sigs = _as_index_array(sigs, valid, N)
        if sigs.shape[1] != L:
            raise ValueError(f"signatures have {sigs.shape[1]} layers but the profile has {L}")
        if valid is not None and valid.shape != (len(sigs),):
            raise ValueError(f"validity mask has shape {valid.shape}, expected ({len(sigs)},)")
        prepared.append((sigs, valid))
    if not prepared:
        return np.empty(0, np.float32)
    K = prepared[0][0].shape[2]
    if any(s.shape[2] != K for s, _ in prepared):
        raise ValueError("signature blocks have different top_k")
    denom = _denominator(counts, K, num_targets)
    starts = np.cumsum([0] + [len(s) for s, _ in prepared])
    total = int(starts[-1])
    out = np.empty(total, np.float32)
    no_mask = np.ones(1, np.bool_)

    # Work items of bounded size, grouped per thread in row order so each thread walks memory forward.
    threads = min(_num_threads(num_threads), max(1, total // _MIN_ROWS_PER_THREAD))
    piece = max(1024, -(-total // (threads * 4)))
    items = []
    for b, (sigs, _) in enumerate(prepared):
        for lo in range(0, len(sigs), piece):
            items.append((b, lo, min(lo + piece, len(sigs))))

    def run(group: list[tuple[int, int, int]]) -> int:
        bad = 0
        for b, lo, hi in group:
            sigs, valid = prepared[b]
            use = valid is not None
            bad += _score_range(sigs, counts, valid if use else no_mask, use, denom, out, lo, hi, int(starts[b]) + lo)
        return bad

    if threads == 1:
        nbad = run(items)
    else:
        groups: list[list[tuple[int, int, int]]] = [[] for _ in range(threads)]
        per = -(-total // threads)
        for b, lo, hi in items:
            groups[min(threads - 1, int(starts[b] + lo) // per)].append((b, lo, hi))
        with ThreadPoolExecutor(threads) as pool:
            nbad = sum(pool.map(run, [g for g in groups if g]))
    if nbad:
        for b, (sigs, valid) in enumerate(prepared):
            base = row_offsets[b] if row_offsets is not None else int(starts[b])
            block_out = out[starts[b] : starts[b + 1]]
            suspect = np.isnan(block_out) if valid is None else np.isnan(block_out) & valid
            if suspect.any():
                _raise_index_error(sigs, valid, N, base)
    return out


def score_signatures(
    sigs: np.ndarray,
    counts: np.ndarray,
    num_targets: int | None = None,
    valid: np.ndarray | None = None,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Scores of one ``(n, L, K)`` block; see the module docstring for the formula."""
    return score_blocks([(sigs, valid)], counts, num_targets, num_threads=num_threads)


def score_signatures_numpy(
    sigs: np.ndarray, counts: np.ndarray, num_targets: int | None = None, valid: np.ndarray | None = None
) -> np.ndarray:
    """Plain numpy version of :func:`score_signatures` (same exact integer sum, same rounding), for checking.

    >>> counts = np.array([[1, 1, 0]], dtype=np.uint16)
    >>> score_signatures_numpy(np.array([[[0]], [[2]]]), counts, num_targets=1)
    array([1., 0.], dtype=float32)
    """
    counts = prepare_table(counts)
    L, N = counts.shape
    if valid is not None:
        valid = np.asarray(valid, dtype=np.bool_)
    sigs = _as_index_array(sigs, valid, N)
    n, _, K = sigs.shape
    checked = sigs if valid is None else sigs[valid]
    if checked.size and checked.max() >= N:
        _raise_index_error(sigs, valid, N, 0)
    safe = sigs if valid is None else np.where(valid[:, None, None], sigs, 0)
    isums = np.zeros(n, np.int64)
    for lo in range(0, n, 65536):
        part = safe[lo : lo + 65536].astype(np.intp)
        isums[lo : lo + 65536] = counts[np.arange(L)[None, :, None], part].sum(axis=(1, 2), dtype=np.int64)
    out = (isums.astype(np.float64) / _denominator(counts, K, num_targets)).astype(np.float32)
    if valid is not None:
        out[~valid] = np.nan
    return out
