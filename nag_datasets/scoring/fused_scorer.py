"""The ``Dataset.map`` / ``Dataset.filter`` callable of a profile with the embedding signal: picklable,
configuration only, checking every batch's specs, scoring exactly as :meth:`FusedProfile.score
<nag_datasets.scoring.fusion.FusedProfile.score>` does (each row on its own, so the batch size never changes a
score).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import WrongTypeError
from ..signatures.embedding_column import check_embedding_batch, embedding_array, require_embedding_column
from .map_callables import SimilarityScorer

__all__ = ["FusedScorer"]


def _one_row(values: Any) -> bool:
    """Whether an embedding batch value is one row's vector (``map`` without ``batched=True``)."""
    if isinstance(values, np.ndarray):
        return values.dtype != object and values.ndim == 1
    if isinstance(values, (list, tuple)) and values:
        first = next((v for v in values if v is not None), None)
        return first is not None and np.ndim(first) == 0
    return False


class FusedScorer:
    """Picklable ``ds.map(fn, batched=True)`` callable adding ``out_column`` (float32, NaN where a row lacks a
    signature or an embedding). Every batch needs the embedding column (and, for the hybrid, the signature column);
    their ``nag_spec`` values are checked as :class:`~nag_datasets.scoring.map_callables.SimilarityScorer` checks a
    signature column's."""

    def __init__(self, profile: Any, column: str, out_column: str, *, check_spec: bool = True,
                 spec_checked: bool = False) -> None:
        self.profile = profile
        self.column = column
        self.out_column = out_column
        self.check_spec = bool(check_spec)
        self.spec_checked = bool(spec_checked)
        self._nag = (SimilarityScorer(profile.nag, column, out_column, check_spec=check_spec,
                                      spec_checked=spec_checked) if profile.signal == "hybrid" else None)

    def scores(self, batch: dict[str, Any]) -> np.ndarray:
        p = self.profile
        require_embedding_column(batch.keys(), p.embedding_column, f"a profile with the {p.signal} signal")
        values = batch[p.embedding_column]
        if _one_row(values):
            raise WrongTypeError(f"got one row instead of a batch: call ds.map / ds.filter with batched=True (column "
                                 f"{p.embedding_column!r} holds a single embedding)")
        nag = self._nag.scores(batch) if self._nag is not None else None
        if self.check_spec:
            check_embedding_batch(batch, p.embedding_column, p.embedding_spec, required=not self.spec_checked)
        emb, valid = embedding_array(values, p.embedding_spec.hidden_size)
        return p.combine(nag, p.model.scores(emb, valid))

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        return {self.out_column: self.scores(batch)}
