"""Evaluation harness: does NAG retrieve target-like documents better than its peers on real, same-format text?

>>> from nag_research.evaluate import run_evaluation
>>> results = run_evaluation("small", "/tmp/nag_eval_small")   # doctest: +SKIP

Modules: :mod:`.tasks` (real retrieval tasks), :mod:`.features` (one cached forward pass per document),
:mod:`.baselines` (NAG and peer scorers), :mod:`.fusion` (the centred embedding, NAG + embedding fusions and
target-vs-background logistic regressions), :mod:`.metrics` (AP, ROC-AUC, budget precision/recall),
:mod:`.report` (markdown and plots), :mod:`.harness` (the run), :mod:`.cli` (``python -m nag_research.evaluate``).
"""

from __future__ import annotations

from .cli import register_cli
from .harness import CONFIGS, EvalConfig, params_hash, run_evaluation
from .metrics import at_budget, average_precision, jaccard, roc_auc

__all__ = ["CONFIGS", "EvalConfig", "at_budget", "average_precision", "jaccard", "params_hash", "register_cli",
           "roc_auc", "run_evaluation"]
