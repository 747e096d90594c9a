"""The scoring kernel: a row's score is the mean of a per-neuron table at its signature's neurons.

Two tables, one loop:

- the paper's profile holds integer counts ``c[l, k]`` (how many target documents have neuron ``k`` in their
  layer-``l`` NAG). A row's score is ``sum_{l,j} c[l, sig[l, j]] / (L * K * |D|)``: the sum is exact in int64 and
  divided once in float64, then rounded to float32.
- a contrastive profile holds float32 weights ``w[l, k]`` that are multiples of ``2**-s`` whose spread
  ``max(w) - min(w)`` is at most ``65535 * 2**-s`` (:func:`quantize_weights` picks the finest such ``s <= 20``:
  ``2**-13`` for a spread under 8, ``2**-12`` under 16). A row's score is ``sum_{l,j} w[l, sig[l, j]] / (L * K)``.
  The kernel sums the 16-bit unsigned integers ``q = w * 2**s - o`` (``o`` the smallest ``w * 2**s``) and adds
  ``L * K * o`` back: exact, and the very loop, table type and table size of a count table, hence the same speed.

Both are a :class:`KernelTable` (unsigned integers ``q``, an offset ``o`` and a divisor ``d``: entry value
``(q + o) / d``). :func:`prepare_table` builds one; a profile builds its own once (``scoring_table``), so that a
``map`` batch does not convert the table again.

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
from dataclasses import dataclass

import numpy as np

from ..compiled import jit
from ..errors import InvalidArgumentError, NAGError, WrongTypeError

__all__ = [
    "MAX_SCALE_BITS",
    "KernelTable",
    "SignatureIndexError",
    "counts_dtype",
    "prepare_table",
    "quantize_weights",
    "score_blocks",
    "score_signatures",
    "score_signatures_numpy",
]

#: Weights are multiples of ``2**-s`` with ``0 <= s <= MAX_SCALE_BITS``: the kernel sums them exactly as integers.
MAX_SCALE_BITS = 20
#: A weight table's integers ``w * 2**s - min`` are stored in 16 bits, like the counts of up to 65535 targets.
_MAX_SPREAD = 65535
#: ...and ``w * 2**s`` itself stays below 2**24, so that the float32 weights are those integers exactly.
_MAX_INT = 2**24 - 1

_NOT_QUANTIZED = ("float32 weights must be multiples of a power of two 2**-s (s <= 20) with a 16-bit spread: pass them "
                  "through nag_datasets.scoring.kernel.quantize_weights")

#: Below this many rows, threads cost more than they save.
_MIN_ROWS_PER_THREAD = 16_384


class SignatureIndexError(NAGError, ValueError):
    """A signature holds a neuron index outside ``0 .. neurons_per_layer - 1``."""


@jit(nogil=True)
def _score_range(sigs, counts, valid, use_valid, shift, denom, out, start, stop,  # type: ignore[no-untyped-def]
                 out_start):
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
            out[o] = np.float32((s + shift) / denom)
    return nbad


def counts_dtype(num_targets: int) -> np.dtype:
    """Smallest unsigned type that holds a count of up to ``num_targets``."""
    return np.dtype(np.uint16) if num_targets < 65536 else np.dtype(np.uint32)


@dataclass(frozen=True, eq=False)
class KernelTable:
    """A scoring table as the kernel sums it: entry ``[l, k]`` is worth ``(table[l, k] + offset) / divisor``.

    ``table`` holds uint16 (or, for counts of 65,536 targets or more, uint32) integers. A count table has
    ``offset=0`` and ``divisor=|D|``; a weight table ``offset=min(w) * 2**s`` and ``divisor=2**s``. Build it with
    :func:`prepare_table`.

    >>> t = prepare_table(np.array([[0.5, -1.0, 0.25]], dtype=np.float32))
    >>> t.table.tolist(), t.offset, t.divisor
    ([[6, 0, 5]], -4, 4)
    """

    table: np.ndarray
    offset: int
    divisor: int

    def values(self) -> np.ndarray:
        """The entries as float64 (``(table + offset) / divisor``)."""
        return (self.table.astype(np.float64) + self.offset) / self.divisor


def _scale_bits(w: np.ndarray) -> int:
    """The finest ``s <= MAX_SCALE_BITS`` at which ``round(w * 2**s)`` has a 16-bit spread and stays below 2**24."""
    if not w.size:
        return MAX_SCALE_BITS
    lo, hi, top = float(w.min()), float(w.max()), float(np.abs(w).max())
    for s in range(MAX_SCALE_BITS, -1, -1):
        f = 2.0**s
        if round(hi * f) - round(lo * f) <= _MAX_SPREAD and round(top * f) <= _MAX_INT:
            return s
    raise InvalidArgumentError(f"weights must have a spread max - min of at most {_MAX_SPREAD}, got {hi - lo:.3g}")


def quantize_weights(weights: np.ndarray) -> np.ndarray:
    """Float weights rounded to multiples of ``2**-s``, the finest power of two (``s <= 20``) at which their spread
    fits 16 bits (see the module docstring), as float32; scoring with them is then an exact integer sum.

    >>> quantize_weights(np.array([0.1, -1 / 3])).tolist()     # spread 0.43: multiples of 2**-17
    [0.09999847412109375, -0.33333587646484375]
    >>> quantize_weights(np.array([0.1, 7.9])).tolist()        # spread 7.8: multiples of 2**-13
    [0.0999755859375, 7.9000244140625]
    """
    w = np.asarray(weights, dtype=np.float64)
    if not np.isfinite(w).all():
        raise InvalidArgumentError("weights must be finite")
    f = 2.0 ** _scale_bits(w)
    return (np.round(w * f) / f).astype(np.float32)


def prepare_table(table: np.ndarray | KernelTable, num_targets: int | None = None) -> KernelTable:
    """The :class:`KernelTable` of a uint16/uint32 count table (``num_targets`` required) or of a float32 weight
    table (from :func:`quantize_weights`; ``num_targets`` ignored); a :class:`KernelTable` is returned as is.

    >>> prepare_table(np.array([[3, 1]], dtype=np.uint16), num_targets=2).values().tolist()
    [[1.5, 0.5]]
    """
    if isinstance(table, KernelTable):
        return table
    table = np.asarray(table)
    if table.ndim != 2:
        raise InvalidArgumentError(f"the table must be an (L, N) array, got shape {table.shape}")
    if table.dtype == np.float32:
        w = table.astype(np.float64)
        if not np.isfinite(w).all():
            raise InvalidArgumentError("float32 weights must be finite")
        for s in range(MAX_SCALE_BITS + 1):
            scaled = w * 2.0**s
            if np.array_equal(scaled, np.round(scaled)):
                break
        else:
            raise InvalidArgumentError(_NOT_QUANTIZED)
        ints = scaled.astype(np.int64)
        lo = int(ints.min()) if ints.size else 0
        q = ints - lo
        if q.size and (q.max() > _MAX_SPREAD or np.abs(ints).max() > _MAX_INT):
            raise InvalidArgumentError(_NOT_QUANTIZED)
        q16 = np.ascontiguousarray(q.astype(np.uint16))
        q16.flags.writeable = False
        return KernelTable(q16, lo, 2**s)
    if table.dtype not in (np.uint16, np.uint32):
        raise WrongTypeError(f"the table must hold uint16 or uint32 counts or float32 weights, got {table.dtype}")
    if num_targets is None or int(num_targets) < 1:
        raise InvalidArgumentError(f"scoring with a count table needs num_targets >= 1, got {num_targets}")
    return KernelTable(np.ascontiguousarray(table), 0, int(num_targets))


def _as_index_array(sigs: np.ndarray, valid: np.ndarray | None, num_neurons: int) -> np.ndarray:
    """``sigs`` as a C-contiguous uint16/uint32 array; other integer types are range-checked and converted."""
    sigs = np.asarray(sigs)
    if sigs.ndim != 3:
        raise InvalidArgumentError(f"signatures must be an (n, L, K) array, got shape {sigs.shape}")
    if sigs.dtype in (np.uint16, np.uint32):
        return np.ascontiguousarray(sigs)
    if sigs.dtype.kind not in "iu":
        raise WrongTypeError(f"signatures must hold integers, got {sigs.dtype}")
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
    counts: np.ndarray | KernelTable,
    num_targets: int | None = None,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Scores of several ``(signatures (n, L, K), valid (n,) or None)`` blocks, concatenated (float32, NaN = invalid).

    ``counts`` is an integer count table (then ``num_targets`` is required), a float32 weight table (then
    ``num_targets`` is ignored) or a :class:`KernelTable`; see the module docstring. Blocks are typically the
    zero-copy Arrow chunks of one column; an error names a row by its position in the concatenation.

    >>> counts = np.array([[1, 1, 0]], dtype=np.uint16)
    >>> a = np.array([[[0]], [[2]]], dtype=np.uint16)
    >>> score_blocks([(a, None), (a, np.array([False, True]))], counts, num_targets=1)
    array([ 1.,  0., nan,  0.], dtype=float32)
    """
    kt = prepare_table(counts, num_targets)
    counts = kt.table
    L, N = counts.shape
    prepared = []
    for sigs, valid in blocks:
        if valid is not None:
            valid = np.ascontiguousarray(valid, dtype=np.bool_)
        sigs = _as_index_array(sigs, valid, N)
        if sigs.shape[1] != L:
            raise InvalidArgumentError(f"signatures have {sigs.shape[1]} layers but the profile has {L}")
        if valid is not None and valid.shape != (len(sigs),):
            raise InvalidArgumentError(f"validity mask has shape {valid.shape}, expected ({len(sigs)},)")
        prepared.append((sigs, valid))
    if not prepared:
        return np.empty(0, np.float32)
    K = prepared[0][0].shape[2]
    if any(s.shape[2] != K for s, _ in prepared):
        raise InvalidArgumentError("signature blocks have different top_k")
    shift, denom = L * K * kt.offset, float(L * K * kt.divisor)
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
            bad += _score_range(sigs, counts, valid if use else no_mask, use, shift, denom, out, lo, hi,
                                int(starts[b]) + lo)
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
            base = int(starts[b])
            block_out = out[starts[b] : starts[b + 1]]
            suspect = np.isnan(block_out) if valid is None else np.isnan(block_out) & valid
            if suspect.any():
                _raise_index_error(sigs, valid, N, base)
    return out


def score_signatures(
    sigs: np.ndarray,
    counts: np.ndarray | KernelTable,
    num_targets: int | None = None,
    valid: np.ndarray | None = None,
    *,
    num_threads: int | None = None,
) -> np.ndarray:
    """Scores of one ``(n, L, K)`` block; see the module docstring for the formula."""
    return score_blocks([(sigs, valid)], counts, num_targets, num_threads=num_threads)


def score_signatures_numpy(
    sigs: np.ndarray, counts: np.ndarray | KernelTable, num_targets: int | None = None, valid: np.ndarray | None = None
) -> np.ndarray:
    """Plain numpy version of :func:`score_signatures` (same exact integer sum, same rounding), for checking.

    >>> counts = np.array([[1, 1, 0]], dtype=np.uint16)
    >>> score_signatures_numpy(np.array([[[0]], [[2]]]), counts, num_targets=1)
    array([1., 0.], dtype=float32)
    """
    kt = prepare_table(counts, num_targets)
    counts = kt.table
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
    isums += L * K * kt.offset
    out = (isums.astype(np.float64) / float(L * K * kt.divisor)).astype(np.float32)
    if valid is not None:
        out[~valid] = np.nan
    return out
