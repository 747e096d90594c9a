"""Pairwise Dice overlap and NAG distance between two featurized sets, through sparse multi-hot products.

Each signature becomes a multi-hot row over ``L * N`` (layer, neuron) slots with exactly ``L * K`` ones; the
overlap of two signatures is the dot product of their rows, so all pairs come from one sparse matrix product.
Dice = overlap / (L K) (both sides hold L K elements), and the NAG distance is 1 - Dice: the distance of a document
to a single target, whose mean over targets is 1 - Sim of the method.

>>> import numpy as np
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0, 1), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> a = np.array([[[0, 1], [2, 3]]]); b = np.array([[[1, 0], [3, 0]], [[2, 3], [0, 1]]])
>>> dice_matrix(a, b, spec).tolist()
[[0.75, 0.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nag_datasets.signatures.spec import SignatureSpec

__all__ = ["dice_matrix", "multi_hot", "nag_distance_matrix", "squared_euclidean_to_dice"]


def multi_hot(sigs: np.ndarray, spec: SignatureSpec) -> Any:
    """``(n, L, K)`` signatures as a CSR matrix ``(n, L * N)`` of float32 ones at ``layer * N + neuron``."""
    from scipy import sparse

    sigs = np.asarray(sigs)
    L, K, N = spec.num_layers, spec.top_k, spec.neurons_per_layer
    if sigs.ndim != 3 or sigs.shape[1:] != (L, K):
        raise ValueError(f"signatures have shape {sigs.shape}, the spec implies (n, {L}, {K})")
    n = len(sigs)
    if n and (sigs.min() < 0 or sigs.max() >= N):
        raise ValueError(f"neuron indices must lie in 0..{N - 1}")
    cols = (np.arange(L, dtype=np.int64)[None, :, None] * N + sigs.astype(np.int64)).reshape(n, L * K)
    cols.sort(axis=1)
    if L * K > 1 and n and bool((np.diff(cols, axis=1) == 0).any()):
        raise ValueError("a signature row repeats a neuron; signatures hold K distinct neurons per layer")
    indptr = np.arange(0, n * L * K + 1, L * K, dtype=np.int64)
    data = np.ones(n * L * K, np.float32)
    return sparse.csr_matrix((data, cols.reshape(-1), indptr), shape=(n, L * N))


def dice_matrix(a: np.ndarray, b: np.ndarray | None, spec: SignatureSpec,
                spec_b: SignatureSpec | None = None) -> np.ndarray:
    """Dice overlap of every signature of ``a`` with every signature of ``b`` (default ``a``): ``(len(a), len(b))``.

    ``spec_b`` (default ``spec``) is checked against ``spec``: signatures of different specs are refused.
    """
    if spec_b is not None:
        spec.check_compatible(spec_b, what="second set", against="first set")
    ma = multi_hot(a, spec)
    mb = ma if b is None else multi_hot(b, spec)
    overlap = (ma @ mb.T).toarray()
    return (overlap / float(spec.num_layers * spec.top_k)).astype(np.float64)


def nag_distance_matrix(a: np.ndarray, b: np.ndarray | None, spec: SignatureSpec,
                        spec_b: SignatureSpec | None = None) -> np.ndarray:
    """``1 - dice_matrix(...)``: zero on identical signatures, one on disjoint ones."""
    dist = 1.0 - dice_matrix(a, b, spec, spec_b)
    if b is None:
        np.fill_diagonal(dist, 0.0)
    return dist


def squared_euclidean_to_dice(sq: np.ndarray, spec: SignatureSpec) -> np.ndarray:
    """Dice from squared Euclidean distances between multi-hot rows: ``|x - y|^2 = 2 L K (1 - Dice)``."""
    return 1.0 - np.asarray(sq, dtype=np.float64) / (2.0 * spec.num_layers * spec.top_k)
