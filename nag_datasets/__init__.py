"""nag_datasets: Neuron-Activated Graph ranking for HuggingFace `datasets`.

The public names of every layer, from one place. They are imported lazily, so the featurizer core
(``nag_datasets.featurize.sites``, ``nag_datasets.featurize.impact``) imports with torch and transformers alone (no
datasets, pyarrow or numba), e.g. on a bare GPU machine, and ``import nag_datasets`` stays light.

>>> import nag_datasets
>>> nag_datasets.NAGFeaturizer.__name__
'NAGFeaturizer'
"""

from __future__ import annotations

from .lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "NAGError": "errors",
    "SignatureSpec": "signatures.spec",
    "SpecError": "signatures.spec",
    "SpecMismatchError": "signatures.spec",
    "attach_spec": "signatures.columns",
    "get_spec": "signatures.columns",
    "FeaturizeReport": "featurize.report",
    "NAGFeaturizer": "featurize.featurizer",
    "load_model": "featurize.models",
    "Profile": "scoring.profile_base",
    "NAGProfile": "scoring.target_profile",
    "ContrastiveProfile": "scoring.contrastive",
    "FusedProfile": "scoring.fusion",
    "EmbeddingSpec": "signatures.embedding_spec",
    "ProfileError": "scoring.profile_files",
    "combine_with_quality": "selection.quality",
    "count_tokens": "selection.tokens",
    "get_recipe": "selection.recipe",
    "score_pool": "selection.scored",
    "select_multi_target": "selection.budgeted",
    "select_top_fraction": "selection.budgeted",
    "export_for_hub": "hub.export",
    "regenerate_card": "hub.export",
    "push_to_hub": "hub.upload",
    "HubPublishError": "hub.upload",
    "profile_card": "hub.profiles",
    "push_profile": "hub.profiles",
}
__all__ = ["ContrastiveProfile", "EmbeddingSpec", "FeaturizeReport", "FusedProfile", "HubPublishError", "NAGError",
           "NAGFeaturizer", "NAGProfile", "Profile", "ProfileError", "SignatureSpec", "SpecError", "SpecMismatchError",
           "attach_spec", "combine_with_quality", "count_tokens", "export_for_hub", "get_recipe", "get_spec",
           "load_model", "profile_card", "push_profile", "push_to_hub", "regenerate_card", "score_pool",
           "select_multi_target", "select_top_fraction"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
