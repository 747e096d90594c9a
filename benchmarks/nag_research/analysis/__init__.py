"""Research analyses behind the notebooks: text sets (:mod:`.sets`), t-SNE and clustering (:mod:`.clustering`),
ranking metrics (:mod:`.retrieval`), the notebooks' experiments (:mod:`.experiments`) and runner (:mod:`.notebook`).

The user-facing tools they build on (layer subsets, Dice distances, neuron deactivation, measurements) are in
:mod:`nag_datasets.analysis`.
"""
