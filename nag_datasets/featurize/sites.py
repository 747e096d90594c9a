"""Where neurons live: resolve each neuron type to a module output (and its columns) in every decoder layer.

Works on stock `transformers` models through module names; nothing of the modeling code is copied.

>>> from transformers import LlamaConfig, LlamaForCausalLM
>>> model = LlamaForCausalLM(LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
...                                      num_attention_heads=4, num_key_value_heads=2, vocab_size=100))
>>> sites = resolve_sites(model, ["fwd_up", "att_k"])
>>> [(s.neuron_type, s.layer, s.num_neurons) for s in sites]
[('fwd_up', 0, 128), ('fwd_up', 1, 128), ('att_k', 0, 32), ('att_k', 1, 32)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InvalidArgumentError, NAGError
from ..signatures.spec import NEURON_TYPES

# Candidate module paths inside one decoder layer, per neuron type, most common first. A fused projection names
# the part to keep; the column layout of each fused part is worked out in `_fused_columns`.
_SEPARATE = {
    "fwd_up": ["mlp.up_proj", "mlp.c_fc", "mlp.dense_h_to_4h", "mlp.fc1", "fc1"],
    "fwd_down": ["mlp.down_proj", "mlp.c_proj", "mlp.dense_4h_to_h", "mlp.fc2", "fc2"],
    "att_q": ["self_attn.q_proj", "attention.q_proj", "attn.q_proj"],
    "att_k": ["self_attn.k_proj", "attention.k_proj", "attn.k_proj"],
    "att_v": ["self_attn.v_proj", "attention.v_proj", "attn.v_proj"],
    "att_o": ["self_attn.o_proj", "attn.c_proj", "attention.dense", "self_attn.dense", "self_attn.out_proj",
              "self_attention.dense", "attention.o_proj", "attn.o_proj"],
}
_FUSED_MLP = ["mlp.gate_up_proj"]
_FUSED_QKV = ["attn.c_attn", "attention.query_key_value", "self_attention.query_key_value", "self_attn.qkv_proj"]
_LAYER_LISTS = ["model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers",
                "model.language_model.layers", "transformer.blocks", "layers"]
# The norm applied to the last decoder layer's output (paths from the model's root, or from its base model).
_FINAL_NORMS = ["model.norm", "model.final_layernorm", "model.decoder.final_layer_norm", "transformer.ln_f",
                "gpt_neox.final_layer_norm", "model.language_model.norm", "norm", "final_layernorm", "ln_f",
                "final_layer_norm", "decoder.final_layer_norm", "language_model.norm"]


def register_architecture(*, layers: str | None = None, final_norm: str | None = None,
                          **paths: str | Sequence[str]) -> None:
    """Teach the resolver a new architecture: where its decoder layers are, where its final norm is (for the
    embedding column), and per neuron type where the module sits inside one layer (paths relative to the layer,
    tried after the built-in ones). Separate projections only; fused ones need their column layout in
    ``_fused_columns``.

    >>> register_architecture(layers="backbone.blocks", fwd_up="ffn.w_in", fwd_down=["ffn.w_out"],
    ...                       final_norm="backbone.norm_f")
    >>> "backbone.blocks" in _LAYER_LISTS and "ffn.w_in" in _SEPARATE["fwd_up"] and "backbone.norm_f" in _FINAL_NORMS
    True
    """
    unknown = sorted(set(paths) - set(NEURON_TYPES))
    if unknown:
        raise InvalidArgumentError(f"unknown neuron type(s) {unknown}; known: {', '.join(NEURON_TYPES)}")
    if layers is not None and layers not in _LAYER_LISTS:
        _LAYER_LISTS.append(layers)
    if final_norm is not None and final_norm not in _FINAL_NORMS:
        _FINAL_NORMS.append(final_norm)
    for neuron_type, value in paths.items():
        for path in [value] if isinstance(value, str) else list(value):
            if path not in _SEPARATE[neuron_type]:
                _SEPARATE[neuron_type].append(path)


class UnsupportedArchitectureError(NAGError, ValueError):
    """No neuron site could be resolved for a model."""


@dataclasses.dataclass
class NeuronSite:
    """One neuron type in one layer: the module whose output is scored, and which output columns are neurons."""

    neuron_type: str
    layer: int
    module: nn.Module
    path: str
    num_neurons: int
    columns: torch.Tensor | None  # output columns in neuron order; None = all columns as they are
    bias: torch.Tensor | None  # bias of those columns (excluded from impact), None if the module has none

    def neuron_output(self, output: torch.Tensor) -> torch.Tensor:
        """The neurons' contributions (float32, bias removed) from the module's raw output ``(..., d_out)``."""
        out = output if self.columns is None else output.index_select(-1, self.columns.to(output.device))
        out = out.float()
        if self.bias is not None:
            out = out - self.bias.to(out.device, torch.float32)
        return out


def _get(root: nn.Module, path: str) -> nn.Module | None:
    node: Any = root
    for part in path.split("."):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node if isinstance(node, nn.Module) else None


def decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's list of decoder layers and its path."""
    for path in _LAYER_LISTS:
        node = _get(model, path)
        if isinstance(node, nn.ModuleList) and len(node) > 0:
            return path, node
    n = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and n and len(mod) == n:
            return name, mod
    raise UnsupportedArchitectureError(
        f"cannot find the decoder layers of {type(model).__name__}; searched {', '.join(_LAYER_LISTS)} "
        "and any ModuleList of config.num_hidden_layers modules"
    )


def final_norm(model: nn.Module) -> nn.Module:
    """The norm the model applies after its last decoder layer (``model.norm`` for Llama-like models)."""
    for path in _FINAL_NORMS:
        node = _get(model, path)
        if node is not None:
            return node
    raise UnsupportedArchitectureError(
        f"cannot find the final norm of {type(model).__name__}; searched {', '.join(_FINAL_NORMS)}: pass its path "
        "with nag_datasets.featurize.sites.register_architecture(final_norm=...)"
    )


def _out_features(mod: nn.Module) -> int:
    if isinstance(mod, nn.Linear):
        return mod.out_features
    nf = getattr(mod, "nf", None)  # GPT-2 Conv1D: weight is (in, out)
    if nf is not None:
        return int(nf)
    weight = getattr(mod, "weight", None)
    if weight is None:
        raise UnsupportedArchitectureError(f"module {type(mod).__name__} has no weight")
    return int(weight.shape[0])


def _attn_shape(config: Any) -> tuple[int, int, int]:
    """(query heads, key/value heads, head dim) from a config."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head", None)
    kv = getattr(text, "num_key_value_heads", None) or heads
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", None)
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    if getattr(text, "model_type", "") == "falcon":
        if getattr(text, "new_decoder_architecture", False):
            kv = text.num_kv_heads
        elif getattr(text, "multi_query", False):
            kv = 1
    return int(heads), int(kv), int(head_dim)


def _fused_columns(path: str, model: nn.Module, d_out: int, neuron_type: str) -> torch.Tensor:
    """Output columns of one part (q, k or v) of a fused QKV projection, in that part's neuron order."""
    heads, kv, hd = _attn_shape(model.config)
    part = {"att_q": 0, "att_k": 1, "att_v": 2}[neuron_type]
    model_type = getattr(model.config, "model_type", "")
    if path == "attn.c_attn" or path == "self_attn.qkv_proj":
        # Contiguous blocks [q | k | v] (GPT-2: all three of hidden size; Phi-3: k and v of kv heads).
        sizes = [heads * hd, kv * hd, kv * hd]
        start = sum(sizes[:part])
        cols = torch.arange(start, start + sizes[part])
    elif model_type == "falcon" and kv != heads:
        # Per KV group: [q heads of the group..., k, v], each head_dim wide.
        rep = heads // kv
        group = torch.arange(kv)[:, None] * (rep + 2) * hd
        if part == 0:
            offs = (torch.arange(rep)[:, None] * hd + torch.arange(hd)[None, :]).reshape(-1)
        else:
            offs = (rep + part - 1) * hd + torch.arange(hd)
        cols = (group + offs[None, :]).reshape(-1)
    else:
        # GPT-NeoX and classic Falcon: per head [q, k, v] interleaved.
        cols = (torch.arange(heads)[:, None] * 3 * hd + part * hd + torch.arange(hd)[None, :]).reshape(-1)
    if int(cols.max()) >= d_out:
        raise UnsupportedArchitectureError(f"fused projection {path} has {d_out} outputs, fewer than its layout needs")
    return cols


def _resolve_one(model: nn.Module, layer: nn.Module, idx: int, prefix: str, neuron_type: str) -> NeuronSite:
    searched = list(_SEPARATE[neuron_type])
    for path in _SEPARATE[neuron_type]:
        mod = _get(layer, path)
        if mod is not None and hasattr(mod, "weight"):
            return _site(neuron_type, idx, mod, f"{prefix}.{idx}.{path}", None)
    if neuron_type == "fwd_up":
        searched += _FUSED_MLP
        for path in _FUSED_MLP:
            mod = _get(layer, path)
            if mod is not None:
                d = _out_features(mod)
                # Phi-3 style: gate first, up second.
                return _site(neuron_type, idx, mod, f"{prefix}.{idx}.{path}", torch.arange(d // 2, d))
    if neuron_type in ("att_q", "att_k", "att_v"):
        searched += _FUSED_QKV
        for path in _FUSED_QKV:
            mod = _get(layer, path)
            if mod is not None:
                cols = _fused_columns(path, model, _out_features(mod), neuron_type)
                return _site(neuron_type, idx, mod, f"{prefix}.{idx}.{path}", cols)
    raise UnsupportedArchitectureError(
        f"cannot resolve neuron type {neuron_type!r} in {type(model).__name__} layer {idx} "
        f"({type(layer).__name__}); searched: {', '.join(searched)}"
    )


def _site(neuron_type: str, idx: int, mod: nn.Module, path: str, cols: torch.Tensor | None) -> NeuronSite:
    bias = getattr(mod, "bias", None)
    if bias is not None:
        bias = bias.detach()
        if cols is not None:
            bias = bias.index_select(0, cols.to(bias.device))
    n = int(cols.numel()) if cols is not None else _out_features(mod)
    return NeuronSite(neuron_type, idx, mod, path, n, cols, bias)


def resolve_sites(model: nn.Module, neuron_types: Sequence[str] = ("fwd_up",),
                  layers: Sequence[int] | None = None) -> list[NeuronSite]:
    """Sites for each neuron type (outer) and layer (inner), in that order.

    ``layers`` are indices into the decoder layers (negative counts from the end); None means all.
    """
    unknown = [t for t in neuron_types if t not in NEURON_TYPES]
    if unknown:
        raise InvalidArgumentError(f"unknown neuron type(s) {unknown}; known: {', '.join(NEURON_TYPES)}")
    if not neuron_types:
        raise InvalidArgumentError("at least one neuron type is needed")
    prefix, layer_list = decoder_layers(model)
    n = len(layer_list)
    chosen = normalize_layers(layers, n)
    return [_resolve_one(model, layer_list[i], i, prefix, t) for t in neuron_types for i in chosen]


def normalize_layers(layers: Sequence[int] | str | None, num_layers: int) -> tuple[int, ...]:
    """Sorted unique non-negative layer indices; ``None`` = all, ``"last"`` = the final layer, ``"lastN"`` = the
    final N layers (``"last10"``: what the contrastive profile ranks best with, see the README); negative indices
    count from the end.

    >>> normalize_layers("last3", 30), normalize_layers([-1, 0], 30)
    ((27, 28, 29), (0, 29))
    """
    if layers is None:
        return tuple(range(num_layers))
    if isinstance(layers, str):
        if layers == "last":
            return (num_layers - 1,)
        if layers.startswith("last") and layers[4:].isdigit() and 0 < int(layers[4:]) <= num_layers:
            return tuple(range(num_layers - int(layers[4:]), num_layers))
        raise InvalidArgumentError(f"layers must be a list of ints, None, 'last' or 'lastN' (0 < N <= {num_layers}), "
                                   f"got {layers!r}")
    out = set()
    for i in layers:
        j = int(i) + num_layers if int(i) < 0 else int(i)
        if not 0 <= j < num_layers:
            raise InvalidArgumentError(f"layer {i} out of range for a model with {num_layers} layers")
        out.add(j)
    if not out:
        raise InvalidArgumentError("layers must not be empty")
    return tuple(sorted(out))
