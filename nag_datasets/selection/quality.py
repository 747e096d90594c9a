"""A quality signal mixed with NAG: min-max-normalised NAG distance plus a weighted, min-max-normalised
(1 - quality), lower is better, as the paper combines NAG with a quality score. The NAG part is a profile's score or
any existing score column (e.g. a distilled scorer's).
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..scoring.profile_base import Profile
from ..signatures.arrow import add_row_column, numeric_column
from .budgeted import _profile_fields
from .recipe import get_score_info, score_feature

__all__ = ["combine_with_quality", "combined_scores"]


def _min_max(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    if not present.any():
        return np.full(len(values), np.nan)
    lo, hi = values[present].min(), values[present].max()
    return (values - lo) / (hi - lo) if hi > lo else np.zeros(len(values))


def combined_scores(
    ds: Any, profile: Profile | None, quality_column: str, *, weight: float = 1.0, column: str | None = None,
    score_column: str | None = None,
) -> np.ndarray:
    """Min-max-normalised NAG distance plus ``weight`` x min-max-normalised (1 - quality); lower is better.

    Min and max are taken over the rows having both a signature and a quality value (the first pass); rows lacking
    either are NaN (not in the pool). For a contrastive profile the "distance" is ``1 - score`` too: after min-max
    normalisation that is the score's order reversed, whatever its range. With ``profile=None``, the scores come
    from ``score_column`` instead (higher = better, e.g. a distilled scorer's ``nag_distilled_score``).
    """
    if weight < 0:
        raise InvalidArgumentError(f"weight must be >= 0, got {weight}")
    if (profile is None) == (score_column is None):
        raise InvalidArgumentError("pass exactly one of profile and score_column")
    if profile is None and column is not None:
        raise InvalidArgumentError("column= names the signature column a profile scores; with score_column= it is "
                                   "not used")
    scores = profile.score(ds, column) if profile is not None else numeric_column(ds, score_column)
    distance = 1.0 - np.asarray(scores, dtype=np.float64)
    badness = 1.0 - numeric_column(ds, quality_column)
    present = ~np.isnan(distance) & ~np.isnan(badness)
    combined = _min_max(distance, present) + float(weight) * _min_max(badness, present)
    combined[~present] = np.nan
    return combined


def combine_with_quality(
    ds: Any,
    profile: Profile | None,
    quality_column: str,
    *,
    weight: float = 1.0,
    column: str | None = None,
    out_column: str = "nag_combined",
    score_column: str | None = None,
) -> Any:
    """``ds`` with ``out_column`` = :func:`combined_scores` (float64, null where missing; lower is better).

    The column records how it was computed, so ``select_top_fraction(ds, f, token_column=..., score_column=
    out_column)`` ranks it lowest first and the selection's recipe names the profile and the quality weight.
    ``profile=None, score_column="nag_distilled_score"`` combines an existing score column instead (its recorded
    provenance, e.g. a distilled scorer's, is carried over).
    """
    if profile is not None:
        column = profile.check_column(ds, column)
    values = combined_scores(ds, profile, quality_column, weight=weight, column=column, score_column=score_column)
    source = (_profile_fields(profile, ds, column) if profile is not None else
              {"score_column": score_column, "score_info": get_score_info(ds, score_column)})
    info = {
        "kind": "nag_distance_plus_quality",
        "higher_is_better": False,
        "quality": {"column": quality_column, "weight": float(weight)},
        **source,
    }
    ident = profile.fingerprint if profile is not None else f"column:{score_column}"
    key = f"{ds._fingerprint}\0{ident}\0{column}\0{quality_column}\0{float(weight)!r}\0{out_column}"
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    missing = np.isnan(values)
    return add_row_column(ds, out_column, np.where(missing, 0.0, values), score_feature(info), fingerprint,
                          null_mask=missing)
