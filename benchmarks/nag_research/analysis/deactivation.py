"""Reversible neuron deactivation and the four ways of choosing which neurons to deactivate.

Deactivating a neuron sets its projection output to zero (bias included) through a forward hook; no weight is
touched, so leaving the context restores the model exactly. For ``fwd_up`` on a SwiGLU MLP the zeroed up output
multiplies the gate, so the neuron adds nothing to ``down_proj``; for GELU MLPs (GPT-2) GELU(0) = 0 does the same;
for a fused ``gate_up_proj`` only the up half's column of the neuron is zeroed.

Keys map a model layer index to the neuron indices to deactivate there:

- :func:`nag_keys`: the ``per_layer`` most frequent neurons of a target profile (the paper's choice);
- :func:`weight_keys`: the ``per_layer`` neurons of largest profile weight: the contrastive weight for a
  :class:`~nag_datasets.contrastive.ContrastiveProfile` (the frequency for a plain profile, as :func:`nag_keys`);
- :func:`random_keys`: as many seeded random neurons in the same layers;
- :func:`high_mean_keys`: the largest mean impact over the target texts;
- :func:`high_delta_keys`: the largest gap between the mean impact over target texts and over general texts.

>>> import torch
>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> model = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
...                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=50)).eval()
>>> ids = torch.arange(6)[None]
>>> before = model(ids).logits
>>> with deactivated(model, {0: [1, 5], 1: [7]}):
...     changed = not torch.equal(model(ids).logits, before)
>>> changed, torch.equal(model(ids).logits, before)
(True, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from torch import nn

from nag_datasets.featurize.sites import resolve_sites
from nag_datasets.scoring.target_profile import NAGProfile

__all__ = ["deactivated", "high_delta_keys", "high_mean_keys", "key_count", "nag_keys", "random_keys", "weight_keys"]

NeuronKeys = dict[int, np.ndarray]


def _as_keys(keys: Mapping[int, Sequence[int] | np.ndarray]) -> NeuronKeys:
    return {int(layer): np.unique(np.asarray(list(idx), dtype=np.int64)) for layer, idx in keys.items()}


def key_count(keys: Mapping[int, Sequence[int] | np.ndarray]) -> int:
    """Number of neurons in a key set."""
    return sum(len(v) for v in _as_keys(keys).values())


@contextmanager
def deactivated(model: nn.Module, keys: Mapping[int, Sequence[int] | np.ndarray],
                neuron_type: str = "fwd_up") -> Iterator[nn.Module]:
    """Within the block, the ``keys`` neurons of ``neuron_type`` output zero; on exit the hooks are removed."""
    import torch

    keys = _as_keys(keys)
    keys = {layer: idx for layer, idx in keys.items() if len(idx)}
    if not keys:
        yield model
        return
    sites = resolve_sites(model, [neuron_type], sorted(keys))
    handles = []
    try:
        for site in sites:
            idx = keys[site.layer]
            if idx.min() < 0 or idx.max() >= site.num_neurons:
                raise ValueError(f"layer {site.layer} has {site.num_neurons} {neuron_type} neurons; got index "
                                 f"{int(idx.max()) if idx.max() >= site.num_neurons else int(idx.min())}")
            cols = torch.as_tensor(idx)
            if site.columns is not None:
                cols = site.columns[cols]
            handles.append(site.module.register_forward_hook(_zeroing_hook(cols)))
        yield model
    finally:
        for h in handles:
            h.remove()


def _zeroing_hook(cols: Any) -> Any:
    def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (output[0].index_fill(-1, cols.to(output[0].device), 0.0), *output[1:])
        return output.index_fill(-1, cols.to(output.device), 0.0)

    return hook


def _top_per_row(values: np.ndarray, per_layer: int) -> np.ndarray:
    """Indices of the ``per_layer`` largest values of each row, ties by lower index."""
    order = np.argsort(-np.asarray(values, dtype=np.float64), axis=1, kind="stable")
    return order[:, :per_layer]


def _check_per_layer(per_layer: int, n: int) -> None:
    if not 1 <= per_layer <= n:
        raise ValueError(f"per_layer must lie in 1..{n}, got {per_layer}")


def nag_keys(profile: NAGProfile, per_layer: int) -> NeuronKeys:
    """The ``per_layer`` neurons most often in the targets' NAGs, in every layer of the profile."""
    _check_per_layer(per_layer, profile.spec.neurons_per_layer)
    top = _top_per_row(profile.counts, per_layer)
    return {layer: np.sort(top[i]) for i, layer in enumerate(profile.spec.layers)}


def weight_keys(profile: NAGProfile, per_layer: int) -> NeuronKeys:
    """The ``per_layer`` neurons of largest ``profile.weights`` in every layer (ties: lower index first).

    For a contrastive profile these are the neurons most specific to the target against its background; for a
    plain profile the order of the weights is the order of the counts, so this equals :func:`nag_keys`.

    >>> from nag_datasets.signatures.spec import SignatureSpec
    >>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
    ...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=4)
    >>> target = NAGProfile.from_signatures(np.array([[[0, 1]], [[0, 2]], [[0, 2]]]), spec)
    >>> background = NAGProfile.from_signatures(np.array([[[0, 3]], [[0, 3]], [[0, 1]]]), spec)
    >>> nag_keys(target, 1), weight_keys(target.contrast(background, "log_odds", signal="nag"), 1)
    ({0: array([0])}, {0: array([2])})
    """
    _check_per_layer(per_layer, profile.spec.neurons_per_layer)
    top = _top_per_row(profile.weights, per_layer)
    return {layer: np.sort(top[i]) for i, layer in enumerate(profile.spec.layers)}


def random_keys(like: Mapping[int, Sequence[int] | np.ndarray], neurons_per_layer: int, seed: int) -> NeuronKeys:
    """Seeded random neurons: as many per layer as ``like`` has, in the same layers."""
    rng = np.random.default_rng(seed)
    return {layer: np.sort(rng.choice(neurons_per_layer, size=len(idx), replace=False))
            for layer, idx in _as_keys(like).items()}


def high_mean_keys(target_impacts: np.ndarray, layers: Sequence[int], per_layer: int) -> NeuronKeys:
    """The ``per_layer`` neurons of largest mean impact over the target texts (``target_impacts`` is (L, N))."""
    target_impacts = np.asarray(target_impacts)
    _check_per_layer(per_layer, target_impacts.shape[1])
    top = _top_per_row(target_impacts, per_layer)
    return {int(layer): np.sort(top[i]) for i, layer in enumerate(layers)}


def high_delta_keys(target_impacts: np.ndarray, general_impacts: np.ndarray, layers: Sequence[int],
                    per_layer: int) -> NeuronKeys:
    """The ``per_layer`` neurons whose mean impact exceeds their mean impact on general text the most."""
    target_impacts, general_impacts = np.asarray(target_impacts), np.asarray(general_impacts)
    if target_impacts.shape != general_impacts.shape:
        raise ValueError(f"impact shapes differ: {target_impacts.shape} vs {general_impacts.shape}")
    return high_mean_keys(target_impacts - general_impacts, layers, per_layer)
