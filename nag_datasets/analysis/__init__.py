"""User-facing analyses of NAG signatures: layer and width subsets, Dice distances, reversible neuron deactivation.

One module per concept. Research helpers built on them (text sets, clustering, retrieval metrics, the notebook
runner, the evaluation harness and the pretraining experiment) live in ``benchmarks/nag_research``, outside the
wheel.

- :mod:`.subsets`: signatures and profiles restricted to a layer list or to the first K' neurons of each row.
- :mod:`.distances`: pairwise Dice / NAG distance matrices through sparse multi-hot products.
- :mod:`.deactivation`: reversible zeroing of MLP neurons and the NAG / random / High-Mean / High-Delta keys
  and the top contrastive-weight keys.
- :mod:`.measure`: per-document LM loss, multiple-choice accuracy, mean-pooled embeddings, mean impacts.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "signature_array": "subsets",
    "slice_signatures": "subsets",
    "slice_column": "subsets",
    "slice_profile": "subsets",
    "prefix_signatures": "subsets",
    "prefix_column": "subsets",
    "prefix_profile": "subsets",
    "multi_hot": "distances",
    "dice_matrix": "distances",
    "nag_distance_matrix": "distances",
    "deactivated": "deactivation",
    "nag_keys": "deactivation",
    "random_keys": "deactivation",
    "high_mean_keys": "deactivation",
    "high_delta_keys": "deactivation",
    "weight_keys": "deactivation",
    "document_losses": "measure",
    "multiple_choice_accuracy": "measure",
    "mean_impacts": "measure",
    "mean_pooled_embeddings": "measure",
}
__all__ = [
    "deactivated",
    "dice_matrix",
    "document_losses",
    "high_delta_keys",
    "high_mean_keys",
    "mean_impacts",
    "mean_pooled_embeddings",
    "multi_hot",
    "multiple_choice_accuracy",
    "nag_distance_matrix",
    "nag_keys",
    "prefix_column",
    "prefix_profile",
    "prefix_signatures",
    "random_keys",
    "signature_array",
    "slice_column",
    "slice_profile",
    "slice_signatures",
    "weight_keys",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
