"""Wiring of neuron sites on tiny random-init models of many architectures.

The expected module paths, neuron counts and fused-projection layouts are restated here from the modeling files
of ``transformers`` (not taken from ``nag_datasets.featurize.sites``), so the tests check the library against the models.
The model table and helpers are shared with ``test_impact_wiring.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
import transformers as tf
from torch import nn

from nag_datasets.featurize.sites import UnsupportedArchitectureError, normalize_layers, resolve_sites
from nag_datasets.signatures.spec import NEURON_TYPES

pytestmark = pytest.mark.fast

HIDDEN, INTER, HEADS, LAYERS, VOCAB = 32, 48, 4, 3, 128
_IDS = {"vocab_size": VOCAB, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "attn_implementation": "eager"}


@dataclasses.dataclass(frozen=True)
class Arch:
    """A tiny model and what its modeling file says about it."""

    name: str
    build: Callable[[], nn.Module]
    layers: str  # path of the decoder layer list
    paths: dict[str, str]  # neuron type -> module path inside one layer
    heads: int
    kv_heads: int
    head_dim: int
    conv1d: bool = False  # GPT-2 Conv1D: weight is (in, out)

    def expected_neurons(self, neuron_type: str) -> int:
        return {"fwd_up": INTER, "fwd_down": HIDDEN, "att_o": HIDDEN, "att_q": self.heads * self.head_dim,
                "att_k": self.kv_heads * self.head_dim, "att_v": self.kv_heads * self.head_dim}[neuron_type]


def _llama_like(cls: type, cfg_cls: type, **extra: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        cfg = cfg_cls(hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                      **{"num_key_value_heads": 2, **extra}, **_IDS)
        return cls(cfg)

    return build


_LLAMA_PATHS = {"fwd_up": "mlp.up_proj", "fwd_down": "mlp.down_proj", "att_q": "self_attn.q_proj",
                "att_k": "self_attn.k_proj", "att_v": "self_attn.v_proj", "att_o": "self_attn.o_proj"}


def _gpt2() -> nn.Module:
    cfg = tf.GPT2Config(n_embd=HIDDEN, n_inner=INTER, n_layer=LAYERS, n_head=HEADS, **_IDS)
    return tf.GPT2LMHeadModel(cfg)


def _neox() -> nn.Module:
    cfg = tf.GPTNeoXConfig(hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                           num_attention_heads=HEADS, attention_bias=True, **_IDS)
    return tf.GPTNeoXForCausalLM(cfg)


def _opt() -> nn.Module:
    cfg = tf.OPTConfig(hidden_size=HIDDEN, ffn_dim=INTER, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                       word_embed_proj_dim=HIDDEN, **_IDS)
    return tf.OPTForCausalLM(cfg)


def _phi() -> nn.Module:
    cfg = tf.PhiConfig(hidden_size=HIDDEN, intermediate_size=INTER, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, **_IDS)
    return tf.PhiForCausalLM(cfg)


def _falcon(**variant: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        cfg = tf.FalconConfig(hidden_size=HIDDEN, ffn_hidden_size=INTER, num_hidden_layers=LAYERS,
                              num_attention_heads=HEADS, bias=True, **variant, **_IDS)
        return tf.FalconForCausalLM(cfg)

    return build


_FALCON_PATHS = {"fwd_up": "mlp.dense_h_to_4h", "fwd_down": "mlp.dense_4h_to_h",
                 "att_q": "self_attention.query_key_value", "att_k": "self_attention.query_key_value",
                 "att_v": "self_attention.query_key_value", "att_o": "self_attention.dense"}
_HD = HIDDEN // HEADS

ARCHS: dict[str, Arch] = {a.name: a for a in [
    Arch("llama", _llama_like(tf.LlamaForCausalLM, tf.LlamaConfig), "model.layers", _LLAMA_PATHS, HEADS, 2, _HD),
    Arch("llama_bias", _llama_like(tf.LlamaForCausalLM, tf.LlamaConfig, attention_bias=True, mlp_bias=True),
         "model.layers", _LLAMA_PATHS, HEADS, 2, _HD),
    Arch("mistral", _llama_like(tf.MistralForCausalLM, tf.MistralConfig), "model.layers", _LLAMA_PATHS, HEADS, 2, _HD),
    Arch("qwen2", _llama_like(tf.Qwen2ForCausalLM, tf.Qwen2Config), "model.layers", _LLAMA_PATHS, HEADS, 2, _HD),
    # Explicit head_dim != hidden / heads: att_q has heads * head_dim neurons, not hidden.
    Arch("qwen3", _llama_like(tf.Qwen3ForCausalLM, tf.Qwen3Config, head_dim=16), "model.layers", _LLAMA_PATHS,
         HEADS, 2, 16),
    Arch("gemma2", _llama_like(tf.Gemma2ForCausalLM, tf.Gemma2Config, head_dim=12), "model.layers", _LLAMA_PATHS,
         HEADS, 2, 12),
    Arch("gemma3", _llama_like(tf.Gemma3ForCausalLM, tf.Gemma3TextConfig, head_dim=12), "model.layers",
         _LLAMA_PATHS, HEADS, 2, 12),
    Arch("phi3", _llama_like(tf.Phi3ForCausalLM, tf.Phi3Config), "model.layers",
         {"fwd_up": "mlp.gate_up_proj", "fwd_down": "mlp.down_proj", "att_q": "self_attn.qkv_proj",
          "att_k": "self_attn.qkv_proj", "att_v": "self_attn.qkv_proj", "att_o": "self_attn.o_proj"}, HEADS, 2, _HD),
    Arch("gpt2", _gpt2, "transformer.h",
         {"fwd_up": "mlp.c_fc", "fwd_down": "mlp.c_proj", "att_q": "attn.c_attn", "att_k": "attn.c_attn",
          "att_v": "attn.c_attn", "att_o": "attn.c_proj"}, HEADS, HEADS, _HD, conv1d=True),
    Arch("gpt_neox", _neox, "gpt_neox.layers",
         {"fwd_up": "mlp.dense_h_to_4h", "fwd_down": "mlp.dense_4h_to_h", "att_q": "attention.query_key_value",
          "att_k": "attention.query_key_value", "att_v": "attention.query_key_value", "att_o": "attention.dense"},
         HEADS, HEADS, _HD),
    Arch("opt", _opt, "model.decoder.layers",
         {"fwd_up": "fc1", "fwd_down": "fc2", "att_q": "self_attn.q_proj", "att_k": "self_attn.k_proj",
          "att_v": "self_attn.v_proj", "att_o": "self_attn.out_proj"}, HEADS, HEADS, _HD),
    Arch("phi", _phi, "model.layers",
         {"fwd_up": "mlp.fc1", "fwd_down": "mlp.fc2", "att_q": "self_attn.q_proj", "att_k": "self_attn.k_proj",
          "att_v": "self_attn.v_proj", "att_o": "self_attn.dense"}, HEADS, HEADS, _HD),
    Arch("falcon_gqa", _falcon(new_decoder_architecture=True, num_kv_heads=2), "transformer.h", _FALCON_PATHS,
         HEADS, 2, _HD),
    Arch("falcon_mqa", _falcon(new_decoder_architecture=False, multi_query=True), "transformer.h", _FALCON_PATHS,
         HEADS, 1, _HD),
    Arch("falcon_classic", _falcon(new_decoder_architecture=False, multi_query=False), "transformer.h",
         _FALCON_PATHS, HEADS, HEADS, _HD),
]}
FUSED_ARCHS = ["phi3", "gpt2", "gpt_neox", "falcon_gqa", "falcon_mqa", "falcon_classic"]


def randomize_biases(model: nn.Module, seed: int = 0) -> int:
    """Give every bias a random value bounded away from zero (random init leaves them at 0); returns how many."""
    gen = torch.Generator().manual_seed(seed)
    n = 0
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                mag = torch.rand(p.shape, generator=gen) * 0.9 + 0.1
                sign = torch.randint(0, 2, p.shape, generator=gen) * 2 - 1
                p.copy_(mag * sign)
                n += 1
    return n


def make_model(name: str, seed: int = 0) -> nn.Module:
    """A tiny fp32 model in eval mode, every bias random and non-zero."""
    torch.manual_seed(seed)
    model = ARCHS[name].build().float().eval()
    randomize_biases(model, seed)
    return model


def padded_batch(seed: int = 0, lengths: tuple[int, ...] = (9, 5, 2)) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded random ids (pad id 0) and the attention mask."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.zeros(len(lengths), width, dtype=torch.long)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(3, VOCAB, (n,), generator=gen)
        mask[i, :n] = 1
    return ids, mask


def split_part(arch: Arch, neuron_type: str, full: torch.Tensor) -> torch.Tensor:
    """The neurons of ``neuron_type`` from a projection's full output ``(..., d_out)``, restated from the modeling files.

    Also works on a bias vector (leading dims empty). Neuron order: head-major, then dim within the head.
    """
    lead, h, kv, hd = full.shape[:-1], arch.heads, arch.kv_heads, arch.head_dim
    if arch.name == "phi3" and neuron_type == "fwd_up":
        return full.chunk(2, dim=-1)[1]  # gate, up = gate_up_proj(x).chunk(2)
    if neuron_type not in ("att_q", "att_k", "att_v") or arch.name not in FUSED_ARCHS:
        return full
    part = ("att_q", "att_k", "att_v").index(neuron_type)
    if arch.name == "gpt2":  # c_attn(x).split(embed_dim, dim=2)
        return full.split(HIDDEN, dim=-1)[part]
    if arch.name == "phi3":  # [q (heads*hd) | k (kv*hd) | v (kv*hd)]
        return full.split([h * hd, kv * hd, kv * hd], dim=-1)[part]
    if arch.name == "gpt_neox":  # view(..., heads, 3*hd).chunk(3, dim=-1)
        return full.view(*lead, h, 3 * hd).chunk(3, dim=-1)[part].reshape(*lead, h * hd)
    if arch.name == "falcon_gqa":  # view(..., kv, heads//kv + 2, hd): q = [:-2], k = [[-2]], v = [[-1]]
        qkv = full.view(*lead, kv, h // kv + 2, hd)
        sel = [qkv[..., :-2, :], qkv[..., [-2], :], qkv[..., [-1], :]][part]
        return sel.reshape(*lead, -1)
    if arch.name == "falcon_mqa":  # view(..., heads + 2, hd)
        qkv = full.view(*lead, h + 2, hd)
        return [qkv[..., :-2, :], qkv[..., [-2], :], qkv[..., [-1], :]][part].reshape(*lead, -1)
    if arch.name == "falcon_classic":  # view(..., heads, 3, hd)
        return full.view(*lead, h, 3, hd)[..., part, :].reshape(*lead, -1)
    raise AssertionError(arch.name)


def layer_list(model: nn.Module, arch: Arch) -> nn.ModuleList:
    node: Any = model
    for part in arch.layers.split("."):
        node = getattr(node, part)
    return node


# ---------------------------------------------------------------------------------------------- resolution


@pytest.mark.parametrize("name", list(ARCHS))
def test_every_type_resolves_in_every_layer(name: str) -> None:
    arch = ARCHS[name]
    model = make_model(name)
    sites = resolve_sites(model, NEURON_TYPES)
    assert [(s.neuron_type, s.layer) for s in sites] == [(t, i) for t in NEURON_TYPES for i in range(LAYERS)]
    layers = layer_list(model, arch)
    for s in sites:
        assert s.path == f"{arch.layers}.{s.layer}.{arch.paths[s.neuron_type]}"
        assert s.module is layers[s.layer].get_submodule(arch.paths[s.neuron_type])
        assert s.num_neurons == arch.expected_neurons(s.neuron_type), (s.neuron_type, s.num_neurons)
        if s.columns is not None:  # no duplicated (GQA-repeated) neurons
            assert s.columns.unique().numel() == s.columns.numel() == s.num_neurons
        has_bias = getattr(s.module, "bias", None) is not None
        assert (s.bias is not None) == has_bias
        if has_bias:
            assert s.bias.shape == (s.num_neurons,)
            assert torch.equal(s.bias, split_part(arch, s.neuron_type, s.module.bias.detach()))


def test_gqa_k_v_are_not_repeated() -> None:
    # The raw k/v projections have kv_heads * head_dim outputs; with 4 heads and 2 KV heads that is half of q.
    for name in ("llama", "mistral", "qwen2", "phi3", "falcon_gqa"):
        sites = {s.neuron_type: s.num_neurons for s in resolve_sites(make_model(name), NEURON_TYPES, [0])}
        assert sites["att_k"] == sites["att_v"] == sites["att_q"] // 2, name
    sites = {s.neuron_type: s.num_neurons for s in resolve_sites(make_model("falcon_mqa"), NEURON_TYPES, [0])}
    assert sites["att_k"] == sites["att_v"] == _HD


@pytest.mark.parametrize("name", FUSED_ARCHS)
def test_fused_columns_are_what_the_model_uses(name: str) -> None:
    """The columns a site takes from a fused output are, element for element, the model's q / k / v (or up)."""
    arch = ARCHS[name]
    model = make_model(name)
    ids, mask = padded_batch()
    types = ["att_q", "att_k", "att_v"] + (["fwd_up"] if name == "phi3" else [])
    sites = resolve_sites(model, types, [1])
    captured: dict[str, torch.Tensor] = {}
    handles = [s.module.register_forward_hook(
        lambda m, i, o, t=s.neuron_type: captured.__setitem__(t, o.detach().clone())) for s in sites]
    try:
        with torch.no_grad():
            model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    b, t = ids.shape
    for s in sites:
        out = captured[s.neuron_type]
        assert s.columns is not None
        picked = out.index_select(-1, s.columns)
        expected = split_part(arch, s.neuron_type, out)
        assert picked.shape == expected.shape == (b, t, s.num_neurons)
        assert torch.equal(picked, expected), s.neuron_type
        # neuron_output removes exactly the bias of those columns.
        bias = split_part(arch, s.neuron_type, s.module.bias.detach()) if s.bias is not None else 0.0
        torch.testing.assert_close(s.neuron_output(out), expected - bias, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------- Falcon, behaviourally

FALCON_ARCHS = ["falcon_gqa", "falcon_mqa", "falcon_classic"]


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def falcon_context_error(name: str, columns: dict[str, torch.Tensor] | None = None) -> float:
    """Largest difference between layer 1's attention context as the model computes it and as recomputed from q, k, v
    taken out of the fused projection's output through ``columns`` (default: the sites' own columns).

    Only public behaviour is used: hooks on ``query_key_value`` (the fused output), on the attention module (its
    mask and rotary embeddings, as passed to it) and on ``dense`` (its input, the attention context). The recomputation
    is plain rotary attention in float32: query head j reads key/value head ``j // (heads // kv_heads)``. The query
    and key/value weights are scaled up so attention is sharp and a wrong column order cannot hide in a uniform softmax.
    """
    arch = ARCHS[name]
    model = make_model(name)
    attn = layer_list(model, arch)[1].self_attention
    with torch.no_grad():
        attn.query_key_value.weight.mul_(25.0)
    sites = {s.neuron_type: s for s in resolve_sites(model, ["att_q", "att_k", "att_v"], [1])}
    cols = columns or {t: s.columns for t, s in sites.items()}
    got: dict[str, Any] = {}
    handles = [
        attn.query_key_value.register_forward_hook(lambda m, i, o: got.__setitem__("qkv", o.detach())),
        attn.register_forward_pre_hook(lambda m, a, kw: got.__setitem__("kw", kw), with_kwargs=True),
        attn.dense.register_forward_pre_hook(lambda m, i: got.__setitem__("context", i[0].detach())),
    ]
    ids, valid = padded_batch()
    try:
        with torch.no_grad():
            model.base_model(input_ids=ids, attention_mask=valid, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    b, t = ids.shape
    h, kv, hd = arch.heads, arch.kv_heads, arch.head_dim

    def heads(neuron_type: str, n: int) -> torch.Tensor:
        return got["qkv"].index_select(-1, cols[neuron_type]).view(b, t, n, hd).transpose(1, 2)

    q, k, v = heads("att_q", h), heads("att_k", kv), heads("att_v", kv)
    cos, sin = (x.unsqueeze(1) for x in got["kw"]["position_embeddings"])
    q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
    k, v = k.repeat_interleave(h // kv, dim=1), v.repeat_interleave(h // kv, dim=1)
    scores = q @ k.transpose(2, 3) / hd**0.5
    mask = got["kw"]["attention_mask"]
    scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h * hd)
    keep = valid.bool()
    return float((context[keep] - got["context"][keep]).abs().max())


@pytest.mark.parametrize("name", FALCON_ARCHS)
def test_falcon_sites_reproduce_the_attention_output(name: str) -> None:
    """The q / k / v a site reads out of Falcon's fused projection are the ones its attention uses."""
    assert falcon_context_error(name) < 1e-5


@pytest.mark.parametrize("name", FALCON_ARCHS)
@pytest.mark.parametrize("swap", ["k_with_v", "query_heads_rolled", "key_dims_reversed"])
def test_falcon_check_fails_on_permuted_columns(name: str, swap: str) -> None:
    """The behavioural check above is sensitive: deliberately wrong columns give a large error."""
    arch = ARCHS[name]
    cols = {s.neuron_type: s.columns for s in resolve_sites(make_model(name), ["att_q", "att_k", "att_v"], [1])}
    if swap == "k_with_v":
        cols["att_k"], cols["att_v"] = cols["att_v"], cols["att_k"]
    elif swap == "query_heads_rolled":
        cols["att_q"] = cols["att_q"].view(arch.heads, arch.head_dim).roll(1, dims=0).reshape(-1)
    else:
        cols["att_k"] = cols["att_k"].view(arch.kv_heads, arch.head_dim).flip(1).reshape(-1)
    assert falcon_context_error(name, cols) > 1e-2


def test_phi3_up_is_the_second_half_of_gate_up() -> None:
    # Independent of layouts: the site's fwd_up output times act(gate) must reproduce the MLP's down input.
    model = make_model("phi3")
    site = resolve_sites(model, ["fwd_up"], [0])[0]
    mlp = model.model.layers[0].mlp
    got: dict[str, torch.Tensor] = {}
    h1 = mlp.gate_up_proj.register_forward_hook(lambda m, i, o: got.__setitem__("gate_up", o.detach()))
    h2 = mlp.down_proj.register_forward_pre_hook(lambda m, i: got.__setitem__("down_in", i[0].detach()))
    try:
        ids, mask = padded_batch()
        with torch.no_grad():
            model.base_model(input_ids=ids, attention_mask=mask)
    finally:
        h1.remove()
        h2.remove()
    up = got["gate_up"].index_select(-1, site.columns)
    gate = got["gate_up"][..., :INTER]
    assert torch.equal(mlp.activation_fn(gate) * up, got["down_in"])


# ---------------------------------------------------------------------------------------------- errors / layers


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ff = nn.Linear(8, 8)
        self.mix = nn.Linear(8, 8)


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList([_Block(), _Block()])


class NoLayersNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)


@pytest.mark.parametrize("neuron_type", NEURON_TYPES)
def test_unresolvable_architecture_names_class_and_search(neuron_type: str) -> None:
    with pytest.raises(UnsupportedArchitectureError) as info:
        resolve_sites(ToyNet(), [neuron_type])
    msg = str(info.value)
    assert "ToyNet" in msg and "_Block" in msg and neuron_type in msg
    assert "searched" in msg and {"fwd_up": "mlp.up_proj", "fwd_down": "mlp.down_proj", "att_q": "self_attn.q_proj",
                                  "att_k": "self_attn.k_proj", "att_v": "self_attn.v_proj",
                                  "att_o": "self_attn.o_proj"}[neuron_type] in msg
    assert isinstance(info.value, ValueError)


def test_model_without_layer_list_is_unsupported() -> None:
    with pytest.raises(UnsupportedArchitectureError) as info:
        resolve_sites(NoLayersNet())
    assert "NoLayersNet" in str(info.value) and "model.layers" in str(info.value)


def test_unknown_neuron_type_and_bad_layers() -> None:
    model = make_model("llama")
    with pytest.raises(ValueError, match="unknown neuron type"):
        resolve_sites(model, ["fwd_upp"])
    with pytest.raises(ValueError):
        resolve_sites(model, [])
    for bad in ([LAYERS], [-LAYERS - 1], [0, 7]):
        with pytest.raises(ValueError, match="out of range"):
            resolve_sites(model, ["fwd_up"], bad)
    with pytest.raises(ValueError):
        resolve_sites(model, ["fwd_up"], [])
    with pytest.raises(ValueError):
        normalize_layers("first", LAYERS)


def test_negative_layers_and_last() -> None:
    assert normalize_layers(None, 3) == (0, 1, 2)
    assert normalize_layers("last", 3) == (2,)
    assert normalize_layers([-1], 3) == (2,)
    assert normalize_layers([-1, 0, -3, 2], 3) == (0, 2)
    assert normalize_layers((1, -2), 3) == (1,)
    assert normalize_layers("last2", 3) == (1, 2) and normalize_layers("last3", 3) == (0, 1, 2)
    assert normalize_layers("last1", 3) == normalize_layers("last", 3)
    for bad in ("last0", "last4", "last-1", "lastx"):
        with pytest.raises(ValueError, match="lastN"):
            normalize_layers(bad, 3)
    model = make_model("gpt2")
    assert [s.layer for s in resolve_sites(model, ["att_k"], [-1, -3])] == [0, 2]
    assert [s.layer for s in resolve_sites(model, ["att_k"], "last")] == [LAYERS - 1]  # type: ignore[arg-type]


def test_register_architecture_extends_the_candidate_paths(monkeypatch):
    from nag_datasets.featurize import sites

    monkeypatch.setattr(sites, "_LAYER_LISTS", list(sites._LAYER_LISTS))
    monkeypatch.setattr(sites, "_SEPARATE", {k: list(v) for k, v in sites._SEPARATE.items()})

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w_in = torch.nn.Linear(8, 24)

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([Block(), Block()])

    with pytest.raises(sites.UnsupportedArchitectureError):
        sites.resolve_sites(Odd(), ["fwd_up"])
    sites.register_architecture(layers="blocks", fwd_up="w_in")
    found = sites.resolve_sites(Odd(), ["fwd_up"])
    assert [(s.layer, s.path, s.num_neurons) for s in found] == [(0, "blocks.0.w_in", 24), (1, "blocks.1.w_in", 24)]
    with pytest.raises(ValueError, match="unknown neuron type"):
        sites.register_architecture(fwd_sideways="x")
