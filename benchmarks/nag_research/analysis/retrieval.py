"""How well a ranking retrieves the relevant documents of a pool, in the terms of selection.

Selection keeps the best-ranked documents within a share ``r_f`` of the pool's tokens; precision is the share of
the kept documents that are relevant, recall the share of relevant documents kept.

>>> import numpy as np
>>> scores = np.array([0.9, 0.8, 0.1, 0.7]); relevant = np.array([True, False, False, True])
>>> r = precision_recall_at(scores, relevant, np.ones(4), [0.5])
>>> r[0]["precision"], r[0]["recall"]
(0.5, 0.5)
>>> round(roc_auc(scores, relevant), 3)
0.75
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nag_datasets.selection.budgeted import select_indices

__all__ = ["average_precision", "precision_recall_at", "rank_correlation", "retrieval_table", "roc_auc",
           "top_fraction_overlap"]


def precision_recall_at(scores: np.ndarray, relevant: np.ndarray, tokens: np.ndarray,
                        fractions: Sequence[float]) -> list[dict[str, float]]:
    """Precision and recall (by documents) of :func:`~nag_datasets.selection.budgeted.select_indices` at each token share."""
    relevant = np.asarray(relevant, dtype=bool)
    out = []
    for f in fractions:
        kept, _ = select_indices(np.asarray(scores, dtype=np.float64), np.asarray(tokens), float(f))
        hits = int(relevant[kept].sum())
        out.append({"fraction": float(f), "selected": len(kept),
                    "precision": hits / len(kept) if len(kept) else float("nan"),
                    "recall": hits / int(relevant.sum()) if relevant.any() else float("nan")})
    return out


def roc_auc(scores: np.ndarray, relevant: np.ndarray) -> float:
    """Probability that a relevant document outranks an irrelevant one (ties count half)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(relevant, dtype=bool), np.asarray(scores, dtype=np.float64)))


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(np.asarray(relevant, dtype=bool), np.asarray(scores, dtype=np.float64)))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two score vectors over the same documents."""
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic)


def top_fraction_overlap(a: np.ndarray, b: np.ndarray, tokens: np.ndarray, fraction: float) -> float:
    """Jaccard overlap of the two selections at the same token share."""
    sa, _ = select_indices(np.asarray(a, dtype=np.float64), np.asarray(tokens), fraction)
    sb, _ = select_indices(np.asarray(b, dtype=np.float64), np.asarray(tokens), fraction)
    union = len(set(sa.tolist()) | set(sb.tolist()))
    return len(set(sa.tolist()) & set(sb.tolist())) / union if union else float("nan")


def retrieval_table(score_sets: dict[str, np.ndarray], relevant: np.ndarray, tokens: np.ndarray,
                    fractions: Sequence[float]) -> list[dict[str, Any]]:
    """One row per (ranking name, fraction) with precision and recall, plus the ranking's AUC."""
    rows = []
    for name, scores in score_sets.items():
        auc = roc_auc(scores, relevant)
        for r in precision_recall_at(scores, relevant, tokens, fractions):
            rows.append({"ranking": name, "auc": auc, **r})
    return rows
