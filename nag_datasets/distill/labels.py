"""Turning NAG scores into training examples: the labelling rule and the seeded negative sampling.

A distilled scorer learns to rank like the NAG profile that scored its sample. The rule says what it learns from:
``"top_share"`` labels the best ``positive_share`` of the scored rows positive and samples negatives from the rest;
``"regress"`` keeps every row with its score as the target (the linear model only).

>>> import numpy as np
>>> rule = LabelRule(positive_share=0.25)
>>> rows, y = make_examples(np.array([0.1, 0.9, 0.5, 0.3, np.nan, 0.7, 0.2, 0.0]), rule, min_rows=4)
>>> rows.tolist(), y.tolist()
([0, 1, 2, 3, 5, 6, 7], [0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..errors import NAGError, argument

__all__ = ["DistillError", "LabelRule", "make_examples"]

#: Fewer scored rows than this are refused: a classifier trained on a handful of documents ranks nothing.
MIN_ROWS = 50


class DistillError(NAGError, ValueError):
    """A distillation input or a distilled model folder that cannot be used (too few rows, one label only, a
    changed or foreign model file, a missing column)."""


@dataclasses.dataclass(frozen=True)
class LabelRule:
    """How scored rows become training examples.

    ``mode``: ``"top_share"`` (classification) or ``"regress"`` (the score itself is the target).
    ``positive_share``: share of the scored rows, best first, labelled positive (ties broken by row order).
    ``negatives``: ``"rest"`` (every other row), ``"bottom"`` (only the lowest ``negative_share`` of the rows, a
    clearer contrast that skips the middle) or ``"sample"`` (a seeded uniform sample of the other rows,
    ``negative_ratio`` negatives per positive).
    """

    mode: str = "top_share"
    positive_share: float = 0.2
    negatives: str = "rest"
    negative_share: float = 0.5
    negative_ratio: float = 4.0

    def __post_init__(self) -> None:
        if self.mode not in ("top_share", "regress"):
            raise DistillError(f"mode must be 'top_share' or 'regress', got {self.mode!r}")
        if not 0.0 < self.positive_share < 1.0:
            raise DistillError(f"positive_share must be in (0, 1), got {self.positive_share}")
        if self.negatives not in ("rest", "bottom", "sample"):
            raise DistillError(f"negatives must be 'rest', 'bottom' or 'sample', got {self.negatives!r}")
        if not 0.0 < self.negative_share <= 1.0 - self.positive_share:
            raise DistillError(f"negative_share must be in (0, 1 - positive_share], got {self.negative_share}")
        if self.negative_ratio <= 0:
            raise DistillError(f"negative_ratio must be > 0, got {self.negative_ratio}")
        self._refuse_unused()

    def _refuse_unused(self) -> None:
        """A setting the rule never reads, given a value of its own, is a mistake: refuse it by name."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        uses = {"positive_share": "mode='top_share'", "negatives": "mode='top_share'",
                "negative_share": "negatives='bottom'", "negative_ratio": "negatives='sample'"}
        used = {"positive_share": self.mode == "top_share", "negatives": self.mode == "top_share",
                "negative_share": self.mode == "top_share" and self.negatives == "bottom",
                "negative_ratio": self.mode == "top_share" and self.negatives == "sample"}
        unused = [name for name, is_used in used.items() if not is_used and getattr(self, name) != defaults[name]]
        if unused:
            parts = "; ".join(f"{argument(f'{n}={getattr(self, n)!r}')} applies only to {argument(uses[n])}"
                              for n in unused)
            raise DistillError(f"{parts}: this rule (mode={self.mode!r}, negatives={self.negatives!r}) does not use it")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """One sentence for the model card."""
        if self.mode == "regress":
            return "regression on the NAG score of every scored row"
        neg = {"rest": "every other scored row",
               "bottom": f"the lowest {self.negative_share:g} of the scored rows",
               "sample": f"a seeded uniform sample of the other rows, {self.negative_ratio:g} per positive"}
        return f"positive: the top {self.positive_share:g} of the scored rows by NAG score; negative: " \
               f"{neg[self.negatives]}"


def make_examples(scores: np.ndarray, rule: LabelRule, *, seed: int = 0,
                  min_rows: int = MIN_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, targets)``: the positions of ``scores`` used for training (increasing) and their float targets
    (1.0 / 0.0 for ``top_share``, the score for ``regress``). NaN scores (rows without a signature) are skipped.

    Raises :class:`DistillError` with fewer than ``min_rows`` scored rows or when one label would be empty.
    """
    scores = np.asarray(scores, dtype=np.float64)
    scored = np.flatnonzero(~np.isnan(scores))
    if len(scored) < min_rows:
        raise DistillError(f"{len(scored)} scored rows to train on ({len(scores) - len(scored)} rows without a "
                           f"score skipped); the minimum is {min_rows}: score more rows")
    if rule.mode == "regress":
        if np.ptp(scores[scored]) == 0:
            raise DistillError("every scored row has the same score: there is no ranking to learn")
        return scored, scores[scored]
    order = scored[np.lexsort((scored, -scores[scored]))]  # best first, ties by row position
    n_pos = round(rule.positive_share * len(order))
    cut_score = scores[order[n_pos - 1]] if n_pos else np.nan
    if n_pos == 0 or n_pos == len(order) or np.all(scores[order] == cut_score):
        raise DistillError(f"the labelling rule gives one label only ({n_pos} positive of {len(order)} scored "
                           "rows, or all scores equal): change positive_share or score more rows")
    positives, rest = order[:n_pos], order[n_pos:]
    if rule.negatives == "bottom":
        negatives = order[len(order) - max(1, round(rule.negative_share * len(order))):]
    elif rule.negatives == "sample":
        want = min(len(rest), max(1, round(rule.negative_ratio * n_pos)))
        negatives = np.random.default_rng(seed).choice(rest, size=want, replace=False)
    else:
        negatives = rest
    rows = np.concatenate([positives, negatives])
    targets = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))])
    keep = np.argsort(rows, kind="stable")
    return rows[keep], targets[keep]
