"""nag_datasets: Neuron-Activated Graph ranking for HuggingFace `datasets`.

Public names are imported lazily, so the featurizer core (``nag_datasets.featurize.sites``,
``nag_datasets.featurize.impact``)
imports with torch and transformers alone (no datasets, pyarrow or numba), e.g. on a bare GPU machine.

>>> import nag_datasets
>>> nag_datasets.NAGFeaturizer.__name__
'NAGFeaturizer'
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "FeaturizeReport": "featurize.report",
    "NAGFeaturizer": "featurize.featurizer",
    "NAGProfile": "scoring.target_profile",
    "ContrastiveProfile": "scoring.contrastive",
    "NAGError": "errors",
    "SignatureSpec": "spec",
    "SpecError": "spec",
    "SpecMismatchError": "spec",
    "attach_spec": "columns",
    "combine_with_quality": "selection.quality",
    "count_tokens": "selection.tokens",
    "get_recipe": "selection.recipe",
    "get_spec": "columns",
    "load_model": "featurize.models",
    "score_pool": "selection.scored",
    "select_multi_target": "selection.budgeted",
    "select_top_fraction": "selection.budgeted",
}
__all__ = [
    "ContrastiveProfile",
    "FeaturizeReport",
    "NAGError",
    "NAGFeaturizer",
    "NAGProfile",
    "SignatureSpec",
    "SpecError",
    "SpecMismatchError",
    "attach_spec",
    "combine_with_quality",
    "count_tokens",
    "get_recipe",
    "get_spec",
    "load_model",
    "score_pool",
    "select_multi_target",
    "select_top_fraction",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
