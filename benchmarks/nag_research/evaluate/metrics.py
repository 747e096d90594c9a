"""Retrieval metrics for one ranking of a labelled pool: AP, ROC-AUC, and precision/recall within a token budget.

All functions take ``scores`` (higher = more target-like) and boolean ``labels`` (True = the document shares the
target's class). Ties are handled the way scikit-learn does: documents with equal scores enter the ranking together.

>>> import numpy as np
>>> scores, labels = np.array([0.9, 0.8, 0.7, 0.6]), np.array([True, False, True, False])
>>> round(average_precision(scores, labels), 4)   # (1/1 + 2/3) / 2
0.8333
>>> roc_auc(scores, labels)                        # 3 of the 4 (positive, negative) pairs ordered correctly
0.75
>>> at_budget(scores, labels, np.array([10, 10, 10, 10]), 0.5)
BudgetMetrics(fraction=0.5, documents=2, tokens=20, precision=0.5, recall=0.5)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["BudgetMetrics", "at_budget", "average_precision", "jaccard", "roc_auc", "selected_at_budget"]


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y


def average_precision(scores: Any, labels: Any) -> float:
    """Area under the step precision-recall curve: sum over score thresholds of (recall gain) x (precision).

    Thresholds are the distinct scores, highest first, so tied documents are admitted together (as in
    ``sklearn.metrics.average_precision_score``). NaN when there is no positive.
    """
    s, y = _check(scores, labels)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    # last index of every run of equal scores
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[ends]
    admitted = ends + 1
    precision = tp / admitted
    recall = tp / positives
    gains = np.diff(np.r_[0.0, recall])
    return float(np.sum(gains * precision))


def roc_auc(scores: Any, labels: Any) -> float:
    """Probability that a random positive scores above a random negative (ties count one half); NaN if one class."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average 1-based rank within each run of ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_s) != 0) + 1]
    ends = np.r_[starts[1:], len(s)]
    for a, b in zip(starts, ends):
        ranks[order[a:b]] = (a + 1 + b) / 2.0
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclasses.dataclass(frozen=True)
class BudgetMetrics:
    """What a selection within ``fraction`` of the pool's tokens kept, and how much of it was on target."""

    fraction: float
    documents: int
    tokens: int
    precision: float
    recall: float


def selected_at_budget(scores: Any, tokens: Any, fraction: float) -> np.ndarray:
    """Positions kept by the library's selection rule (score descending, ties by position; stop at overflow)."""
    from nag_datasets.selection.budgeted import select_indices

    s = np.asarray(scores, dtype=np.float64)
    selected, _ = select_indices(s, np.asarray(tokens), fraction)
    return selected


def at_budget(scores: Any, labels: Any, tokens: Any, fraction: float) -> BudgetMetrics:
    """Precision and recall (in documents) of the selection within ``fraction`` of the pool's tokens.

    Precision of an empty selection is NaN; recall is NaN when there is no positive.
    """
    s, y = _check(scores, labels)
    kept = selected_at_budget(s, tokens, fraction)
    hits = int(y[kept].sum())
    positives = int(y.sum())
    return BudgetMetrics(
        fraction=float(fraction),
        documents=len(kept),
        tokens=int(np.asarray(tokens, dtype=np.int64)[kept].sum()),
        precision=hits / len(kept) if len(kept) else float("nan"),
        recall=hits / positives if positives else float("nan"),
    )


def jaccard(a: Any, b: Any) -> float:
    """|A & B| / |A | B| of two collections of positions (1.0 when both are empty)."""
    sa, sb = set(np.asarray(a).tolist()), set(np.asarray(b).tolist())
    union = sa | sb
    return len(sa & sb) / len(union) if union else 1.0
