"""The ``Dataset.map`` / ``Dataset.filter`` callables of a profile: picklable, configuration only (the profile's
scoring table and spec), checking every batch's spec, scoring with the same kernel as :meth:`NAGProfile.score`.

>>> import numpy as np
>>> passes_threshold(np.array([0.5, np.nan, 0.2], dtype=np.float32), 0.2).tolist()
[True, False, True]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import InvalidArgumentError, MissingColumnError, WrongTypeError
from ..signatures.spec_column import check_batch
from .kernel import score_blocks

__all__ = ["SCORE_COLUMN", "ScoreReport", "SimilarityFilter", "SimilarityScorer", "passes_threshold"]

#: The column a paper-profile score goes to (a contrastive profile's is ``nag_contrast_score``).
SCORE_COLUMN = "nag_similarity"


@dataclasses.dataclass(frozen=True)
class ScoreReport:
    """What one call of :meth:`NAGProfile.score` did."""

    rows: int
    null_rows: int
    column: str | None
    seconds: float
    rows_per_second: float
    profile_fingerprint: str
    spec_fingerprint: str
    score_kind: str = "similarity"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def passes_threshold(scores: np.ndarray, min_similarity: float) -> np.ndarray:
    """The one comparison every filter uses (in float64, so a threshold is never rounded to float32; NaN fails)."""
    return np.asarray(scores, dtype=np.float64) >= float(min_similarity)


def _signature_array(values: Any, L: int, K: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch column (lists, numpy, torch or Arrow) as ``(n, L, K)`` integers plus a validity mask."""
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 3:
        arr, valid = values, None
    elif isinstance(values, (pa.Array, pa.ChunkedArray)):
        return _signature_array(values.to_pylist(), L, K)
    else:
        rows = list(values)
        mask = np.array([r is not None for r in rows], dtype=np.bool_)
        valid = None if mask.all() else mask
        kept = [r for r in rows if r is not None]
        if not kept:
            return np.zeros((len(rows), L, K), np.uint32), mask
        try:
            dense = np.asarray(kept)
        except ValueError:
            dense = None
        if dense is None or dense.dtype == object or dense.ndim != 3:
            try:
                dense = np.stack([np.asarray(r) for r in kept])
            except ValueError as e:
                raise InvalidArgumentError(f"signatures in this batch do not all have shape ({L}, {K}): {e}") from None
        if valid is None:
            arr = dense
        else:
            arr = np.zeros((len(rows), *dense.shape[1:]), dtype=dense.dtype)
            arr[mask] = dense
    if arr.shape[1:] != (L, K):
        raise InvalidArgumentError(f"signatures have shape {arr.shape[1:]}, the profile expects ({L}, {K})")
    if arr.dtype.kind == "f":
        if not np.array_equal(arr, np.floor(arr)):
            raise InvalidArgumentError("signatures hold non-integer values")
        arr = arr.astype(np.int64)
    return arr, valid


def _one_row(values: Any) -> bool:
    """Whether a batch value is one row's signature (``map``/``filter`` called without ``batched=True``)."""
    if values is None:
        return True
    if isinstance(values, np.ndarray):
        return values.dtype != object and values.ndim == 2
    if isinstance(values, (list, tuple)) and values:
        first = next((v for v in values if v is not None), None)
        return first is not None and np.ndim(first) == 1
    return False


class SimilarityScorer:
    """Picklable ``ds.map(fn, batched=True)`` callable adding ``out_column`` (float32, NaN for null signatures).

    Every batch's ``nag_spec`` values (written by the featurizer) must name the profile's spec. A batch without that
    column is refused unless the dataset's typed spec was checked when the callable was made
    (:meth:`NAGProfile.scorer_for`, ``scorer(dataset=ds)``) or ``check_spec=False`` says the caller vouches for it.
    It scores with the profile's table: counts for the paper's profile, float weights for a contrastive one.
    """

    def __init__(self, profile: Any, column: str, out_column: str = SCORE_COLUMN, *, check_spec: bool = True,
                 spec_checked: bool = False) -> None:
        self.table, self.num_targets = profile.scoring_table()
        self.spec = profile.spec
        self.shape = (profile.spec.num_layers, profile.spec.top_k)
        self.column = column
        self.out_column = out_column
        self.check_spec = bool(check_spec)
        self.spec_checked = bool(spec_checked)

    def scores(self, batch: dict[str, Any]) -> np.ndarray:
        if self.column not in batch:
            raise MissingColumnError(f"column {self.column!r} not in batch; columns: {list(batch)}")
        if _one_row(batch[self.column]):
            raise WrongTypeError(f"got one row instead of a batch: call ds.map / ds.filter with batched=True "
                                 f"(column {self.column!r} holds a single signature)")
        if self.check_spec:
            check_batch(batch, self.column, self.spec, required=not self.spec_checked)
        sigs, valid = _signature_array(batch[self.column], *self.shape)
        # One thread: map workers are processes already, and batches are small.
        return score_blocks([(sigs, valid)], self.table, self.num_targets, num_threads=1)

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        return {self.out_column: self.scores(batch)}


class SimilarityFilter:
    """Picklable ``ds.filter(fn, batched=True)`` callable: keep rows with similarity >= ``min_similarity``."""

    def __init__(self, scorer: SimilarityScorer, min_similarity: float) -> None:
        self.scorer = scorer
        self.min_similarity = float(min_similarity)

    def __call__(self, batch: dict[str, Any]) -> list[bool]:
        return passes_threshold(self.scorer.scores(batch), self.min_similarity).tolist()
