"""Retrieval metrics for one ranking of a labelled pool: AP, ROC-AUC, and precision/recall within a token budget.
The research code's one metrics module (the harness, the analyses and the notebooks use it); AP and AUC are
scikit-learn's, the budget rule is the library's own selection.

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
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "BudgetMetrics",
    "at_budget",
    "average_precision",
    "jaccard",
    "precision_recall_at",
    "rank_correlation",
    "roc_auc",
    "selected_at_budget",
    "top_fraction_overlap",
]


def _check(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.ndim != 1 or s.shape != y.shape:
        raise ValueError(f"scores and labels must be 1-D of equal length, got {s.shape} and {y.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y


def average_precision(scores: Any, labels: Any) -> float:
    """Area under the step precision-recall curve (``sklearn.metrics.average_precision_score``: the thresholds are
    the distinct scores, so tied documents are admitted together). NaN when there is no positive.
    """
    from sklearn.metrics import average_precision_score

    s, y = _check(scores, labels)
    if not y.any():
        return float("nan")
    return float(average_precision_score(y, s))


def roc_auc(scores: Any, labels: Any) -> float:
    """Probability that a random positive scores above a random negative (ties count one half); NaN if one class."""
    from sklearn.metrics import roc_auc_score

    s, y = _check(scores, labels)
    if y.all() or not y.any():
        return float("nan")
    return float(roc_auc_score(y, s))


def rank_correlation(a: Any, b: Any) -> float:
    """Spearman rank correlation of two score vectors over the same documents (``scipy.stats.spearmanr``)."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)


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


def precision_recall_at(scores: Any, labels: Any, tokens: Any, fractions: Sequence[float]) -> list[dict[str, float]]:
    """:func:`at_budget` at each token share, as plain rows (``fraction``, ``selected``, ``precision``, ``recall``)."""
    rows = []
    for f in fractions:
        m = at_budget(scores, labels, tokens, float(f))
        rows.append({"fraction": m.fraction, "selected": m.documents, "precision": m.precision, "recall": m.recall})
    return rows


def top_fraction_overlap(a: Any, b: Any, tokens: Any, fraction: float) -> float:
    """:func:`jaccard` of the selections two rankings make within the same share of the pool's tokens."""
    return jaccard(selected_at_budget(a, tokens, fraction), selected_at_budget(b, tokens, fraction))
