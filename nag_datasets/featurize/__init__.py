"""Featurize: text -> tokens -> stock model with forward hooks at the neuron sites -> (L, K) signatures.

``sites`` (where each neuron type lives per architecture), ``impact`` (hooks, impacts, top-K; torch and
transformers only), ``textcut`` (the first ``max_length`` tokens), ``models`` (bundled model, fingerprints),
``featurizer`` (:class:`~nag_datasets.featurize.featurizer.NAGFeaturizer`, a picklable ``map`` callable).
Nothing is imported here, so ``nag_datasets.featurize.impact`` imports with torch and transformers alone.
"""
