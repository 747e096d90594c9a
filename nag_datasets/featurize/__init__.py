"""Featurize: text -> tokens -> stock model with forward hooks at the neuron sites -> (L, K) signatures.

``sites`` (where each neuron type lives per architecture), ``impact`` (hooks, impacts, top-K; torch and
transformers only), ``textcut`` (the first ``max_length`` tokens), ``batching`` (length-sorted, right-padded
batches), ``models`` (bundled model, fingerprints), ``featurizer`` (:class:`NAGFeaturizer`, a picklable ``map``
callable), ``report`` (row statuses and their counts); beyond one process: ``ranks`` (launcher ranks, what the
runners share), ``sharded`` (resumable launcher shards), ``streaming`` (streamed parts across ranks). Names load on
first use, so ``nag_datasets.featurize.impact`` imports with torch and transformers alone.

>>> from nag_datasets.featurize import NAGFeaturizer
>>> NAGFeaturizer(top_k=5).top_k
5
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "NAGFeaturizer": "featurizer",
    "InvalidTextError": "featurizer",
    "FeaturizeReport": "report",
    "load_model": "models",
    "ModelLoadError": "models",
    "register_architecture": "sites",
    "UnsupportedArchitectureError": "sites",
    "featurize_sharded": "sharded",
    "featurize_streaming": "streaming",
    "ShardError": "ranks",
}
__all__ = ["FeaturizeReport", "InvalidTextError", "ModelLoadError", "NAGFeaturizer", "ShardError",
           "UnsupportedArchitectureError", "featurize_sharded", "featurize_streaming", "load_model",
           "register_architecture"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
