"""Distilled NAG scorers: fast text classifiers trained to reproduce a NAG ranking (issue 16).

Score a sample of the pool with any profile, then learn to rank raw text like it: a fastText or a hashed-n-gram
linear model, saved without pickle, usable as a ``Dataset.map`` callable adding ``nag_distilled_score``.

>>> from nag_datasets.distill import LabelRule
>>> LabelRule(positive_share=0.1).describe()
'positive: the top 0.1 of the scored rows by NAG score; negative: every other scored row'

Needs the ``distill`` extra (``pip install 'nag-datasets[distill]'``: fasttext-numpy2-wheel, scikit-learn);
importing this package does not.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "push_scorer": "card",
    "write_card": "card",
    "DistillError": "labels",
    "LabelRule": "labels",
    "make_examples": "labels",
    "FASTTEXT_LABEL": "models",
    "FastTextModel": "models",
    "HashedLinearModel": "models",
    "SCORE_COLUMN": "scorer",
    "DistilledScorer": "scorer",
    "score_dataset": "scorer",
    "agreement": "train",
    "distill": "train",
    "distill_dataset": "train",
    "precision_at_cut": "train",
    "spearman": "train",
    "train_model": "train",
}
__all__ = [
    "FASTTEXT_LABEL",
    "SCORE_COLUMN",
    "DistillError",
    "DistilledScorer",
    "FastTextModel",
    "HashedLinearModel",
    "LabelRule",
    "agreement",
    "distill",
    "distill_dataset",
    "make_examples",
    "precision_at_cut",
    "push_scorer",
    "score_dataset",
    "spearman",
    "train_model",
    "write_card",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
