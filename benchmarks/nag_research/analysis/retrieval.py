"""How well a ranking retrieves the relevant documents of a pool, in the terms of selection (the metrics
themselves live in :mod:`nag_research.evaluate.metrics`; this module tabulates them).

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

from ..evaluate.metrics import average_precision, precision_recall_at, rank_correlation, roc_auc, top_fraction_overlap

__all__ = [
    "average_precision",
    "precision_recall_at",
    "rank_correlation",
    "retrieval_table",
    "roc_auc",
    "top_fraction_overlap",
]


def retrieval_table(
    score_sets: dict[str, np.ndarray], relevant: np.ndarray, tokens: np.ndarray, fractions: Sequence[float]
) -> list[dict[str, Any]]:
    """One row per (ranking name, fraction) with precision and recall, plus the ranking's AUC."""
    rows = []
    for name, scores in score_sets.items():
        auc = roc_auc(scores, relevant)
        for r in precision_recall_at(scores, relevant, tokens, fractions):
            rows.append({"ranking": name, "auc": auc, **r})
    return rows
