"""Pipelines: NAG scoring and token-budget selection as steps of other frameworks' pipelines (datatrove).

``text_scorer`` (the :class:`TextScorer` protocol and the NAG scorer behind it), ``datatrove_steps`` (score and
threshold steps), ``datatrove_budget`` (the three budget stages) and ``budget_files`` (what the stages pass on).
The datatrove steps need ``pip install 'nag-datasets[datatrove]'``; without it this package still imports, and
building a step raises an ``ImportError`` naming that extra.

>>> from nag_datasets.pipelines import NAGDocumentScorer, NAGBudgetCut
>>> NAGBudgetCut.__name__
'NAGBudgetCut'
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "TextScorer": "text_scorer",
    "ProfileTextScorer": "text_scorer",
    "NAGDocumentScorer": "datatrove_steps",
    "NAGScoreFilter": "datatrove_steps",
    "MissingScoreError": "datatrove_steps",
    "NAGBudgetScores": "datatrove_budget",
    "NAGBudgetCut": "datatrove_budget",
    "NAGBudgetFilter": "datatrove_budget",
    "BudgetStageError": "budget_files",
    "DatatroveMissingError": "_datatrove",
}
__all__ = ["BudgetStageError", "DatatroveMissingError", "MissingScoreError", "NAGBudgetCut", "NAGBudgetFilter",
           "NAGBudgetScores", "NAGDocumentScorer", "NAGScoreFilter", "ProfileTextScorer", "TextScorer"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
