"""Selection: keep the best-scoring documents within a token budget.

``budget`` (the bisection budget cut), ``budgeted`` (``select_top_fraction``, multi-target), ``quality`` (NAG
mixed with a quality signal), ``recipe`` (the provenance a selection carries), ``reports``, ``scored`` (a scored
pool: every row and its score), ``tokens`` (``count_tokens``), ``ray_select`` (the same selection on Ray Data).

>>> import numpy as np
>>> from nag_datasets.selection import budget_cut
>>> budget_cut(np.array([0.5, 0.9], dtype=np.float32), np.array([10, 10]), budget=10.0)
array([1])
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "select_top_fraction": "budgeted",
    "select_multi_target": "budgeted",
    "select_indices": "budgeted",
    "budget_cut": "budget",
    "combine_with_quality": "quality",
    "score_pool": "scored",
    "count_tokens": "tokens",
    "get_recipe": "recipe",
    "SelectionRecipe": "recipe",
    "RecipeError": "recipe",
    "SelectionReport": "reports",
    "MultiTargetReport": "reports",
    "RaySelectionReport": "reports",
    "select_top_fraction_ray": "ray_select",
}
__all__ = ["MultiTargetReport", "RaySelectionReport", "RecipeError", "SelectionRecipe", "SelectionReport", "budget_cut",
           "combine_with_quality", "count_tokens", "get_recipe", "score_pool", "select_indices", "select_multi_target",
           "select_top_fraction", "select_top_fraction_ray"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
