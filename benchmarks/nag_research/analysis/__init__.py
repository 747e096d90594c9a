"""Research analyses behind the notebooks.

Tools on signatures and the model: layer and width subsets (:mod:`.subsets`), pairwise Dice / NAG distances
(:mod:`.distances`), reversible neuron deactivation and its neuron keys (:mod:`.deactivation`), per-document loss,
multiple-choice accuracy, embeddings and mean impacts (:mod:`.measure`). Built on them: text sets (:mod:`.sets`),
t-SNE and clustering (:mod:`.clustering`), ranking metrics (:mod:`.retrieval`), the notebooks' experiments
(:mod:`.experiments`) and runner (:mod:`.notebook`).
"""
