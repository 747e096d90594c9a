"""ImpactRecorder on tiny random-init models: shapes, bias handling against an independent recomputation,
early stopping, no side effects on the model, and top-K tie breaking."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from test_sites import ARCHS, LAYERS, ToyNet, layer_list, make_model, padded_batch, split_part
from torch import nn

from nag_datasets.featurize.impact import ImpactRecorder, top_k_indices
from nag_datasets.featurize.sites import UnsupportedArchitectureError
from nag_datasets.signatures.spec import NEURON_TYPES

pytestmark = pytest.mark.fast

K = 5


def _out(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


@pytest.mark.parametrize("name", list(ARCHS))
def test_shapes_dtypes_and_sorted_signatures(name: str) -> None:
    arch = ARCHS[name]
    model = make_model(name)
    ids, mask = padded_batch()
    with ImpactRecorder(model, NEURON_TYPES) as rec:
        impacts = rec.impacts(ids, mask)
        sigs = rec.signatures(ids, mask, top_k=K)
        for t in NEURON_TYPES:
            assert rec.neurons_per_layer(t) == arch.expected_neurons(t)
    assert set(impacts) == set(sigs) == set(NEURON_TYPES)
    for t in NEURON_TYPES:
        imp, sig = impacts[t], sigs[t]
        assert imp.dtype == torch.float32
        assert imp.shape == (ids.shape[0], LAYERS, arch.expected_neurons(t))
        assert bool(torch.isfinite(imp).all()) and bool((imp >= 0).all())
        assert sig.shape == (ids.shape[0], LAYERS, K)
        assert not sig.dtype.is_floating_point and sig.dtype in (torch.int64, torch.int32)
        picked = imp.gather(-1, sig.long())
        assert bool((picked[..., :-1] >= picked[..., 1:]).all()), "rows must be sorted by impact descending"
        rest = imp.scatter(-1, sig.long(), float("-inf"))
        assert bool((rest.amax(-1) <= picked[..., -1]).all()), "signature must be the top-K"
        assert torch.equal(sig, top_k_indices(imp, K))


def _reference_impacts(name: str, layers: list[int] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Recorder impacts and an independent float64 recomputation from the projections' captured inputs."""
    arch = ARCHS[name]
    model = make_model(name)
    ids, mask = padded_batch()
    blocks = layer_list(model, arch)
    chosen = list(range(LAYERS)) if layers is None else layers
    inputs: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    for t in NEURON_TYPES:
        for i in chosen:
            mod = blocks[i].get_submodule(arch.paths[t])
            handles.append(mod.register_forward_pre_hook(
                lambda m, a, key=(t, i): inputs.__setitem__(key, a[0].detach().clone())))
    try:
        with ImpactRecorder(model, NEURON_TYPES, layers) as rec:
            got = rec.impacts(ids, mask)
    finally:
        for h in handles:
            h.remove()
    m = mask.to(torch.float64)
    ref: dict[str, torch.Tensor] = {}
    for t in NEURON_TYPES:
        per_layer = []
        for i in chosen:
            mod = blocks[i].get_submodule(arch.paths[t])
            w = mod.weight.detach().to(torch.float64)
            x = inputs[(t, i)].to(torch.float64).reshape(*ids.shape, -1)  # OPT's MLP sees (batch * tokens, d)
            full = x @ w if arch.conv1d else x @ w.T  # no bias
            part = split_part(arch, t, full).abs()
            per_layer.append((part * m[..., None]).sum(1) / m.sum(1)[:, None])
        ref[t] = torch.stack(per_layer, dim=1)
    return got, ref


@pytest.mark.parametrize("name", list(ARCHS))
def test_impacts_match_independent_recomputation_without_bias(name: str) -> None:
    model = make_model(name)
    n_bias = sum(1 for n, _ in model.named_parameters() if n.endswith("bias"))
    got, ref = _reference_impacts(name)
    for t in NEURON_TYPES:
        assert got[t].shape == ref[t].shape
        torch.testing.assert_close(got[t].double(), ref[t], rtol=1e-5, atol=1e-7, msg=lambda s, t=t: f"{t}: {s}")
    if n_bias:
        # With the bias added back the impacts would differ clearly: the test is sensitive to bias handling.
        arch = ARCHS[name]
        biased = [t for t in NEURON_TYPES
                  if getattr(layer_list(model, arch)[0].get_submodule(arch.paths[t]), "bias", None) is not None]
        assert biased


def test_impacts_for_a_layer_subset_match_recomputation() -> None:
    got, ref = _reference_impacts("falcon_gqa", [0, 2])
    for t in NEURON_TYPES:
        torch.testing.assert_close(got[t].double(), ref[t], rtol=1e-5, atol=1e-7)


def test_padding_is_excluded_from_the_mean() -> None:
    # The same documents alone (no padding) give the same impacts as inside a padded batch.
    model = make_model("qwen2")
    ids, mask = padded_batch()
    with ImpactRecorder(model, ["fwd_up", "att_k"]) as rec:
        batched = rec.impacts(ids, mask)
        for row in range(ids.shape[0]):
            n = int(mask[row].sum())
            alone = rec.impacts(ids[row : row + 1, :n], mask[row : row + 1, :n])
            for t in batched:
                torch.testing.assert_close(alone[t][0], batched[t][row], rtol=2e-5, atol=1e-6)


def test_left_padding_and_empty_rows_are_refused() -> None:
    model = make_model("llama")
    ids, mask = padded_batch()
    with ImpactRecorder(model) as rec:
        with pytest.raises(ValueError, match="right-padded"):
            rec.impacts(ids, mask.flip(1))
        empty = mask.clone()
        empty[1] = 0
        with pytest.raises(ValueError, match="no valid token"):
            rec.impacts(ids, empty)


# ---------------------------------------------------------------------------------------------- errors, layers


def test_unknown_type_bad_layers_and_unsupported_model() -> None:
    model = make_model("llama")
    with pytest.raises(ValueError, match="unknown neuron type"):
        ImpactRecorder(model, ["fwd_up", "mlp_gate"])
    with pytest.raises(ValueError, match="out of range"):
        ImpactRecorder(model, layers=[LAYERS])
    with pytest.raises(ValueError, match="out of range"):
        ImpactRecorder(model, layers=[-LAYERS - 1])
    with pytest.raises(UnsupportedArchitectureError, match="ToyNet"):
        ImpactRecorder(ToyNet())
    # Failed constructions left no hooks behind.
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("layers, expected", [([-1], (2,)), ("last", (2,)), ([0, -1], (0, 2)), ([-2], (1,))])
def test_negative_layers_and_last(layers: Any, expected: tuple[int, ...]) -> None:
    model = make_model("gpt_neox")
    ids, mask = padded_batch()
    with ImpactRecorder(model, ["fwd_up"], layers=layers) as rec:
        assert rec.layers == expected
        got = rec.impacts(ids, mask)["fwd_up"]
    with ImpactRecorder(model, ["fwd_up"]) as rec:
        full = rec.impacts(ids, mask)["fwd_up"]
    assert got.shape[1] == len(expected)
    assert torch.equal(got, full[:, list(expected)])


@pytest.mark.parametrize("name", ["llama", "gpt2", "opt", "falcon_mqa"])
def test_forward_stops_after_last_layer_and_skips_lm_head(name: str) -> None:
    model = make_model(name)
    blocks = layer_list(model, ARCHS[name])
    fired: list[str] = []
    handles = [blocks[i].register_forward_hook(lambda m, a, o, i=i: fired.append(f"layer{i}")) for i in range(LAYERS)]
    head = model.get_output_embeddings()
    assert isinstance(head, nn.Module)
    handles.append(head.register_forward_hook(lambda m, a, o: fired.append("lm_head")))
    ids, mask = padded_batch()
    try:
        with ImpactRecorder(model, NEURON_TYPES, layers=[0]) as rec:
            out = rec.impacts(ids, mask)
        assert fired == ["layer0"]
        assert all(v.shape[1] == 1 for v in out.values())
        fired.clear()
        with ImpactRecorder(model, ["att_o"]) as rec:
            rec.impacts(ids, mask)
        assert fired == [f"layer{i}" for i in range(LAYERS)]  # all layers, never the LM head
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------------------------------------- no side effects


def _hook_counts(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("name", ["llama", "qwen2", "gemma3", "phi3", "gpt2", "gpt_neox", "opt", "phi",
                                  "falcon_gqa", "falcon_classic"])
def test_recording_does_not_change_the_computation(name: str) -> None:
    model = make_model(name)
    blocks = layer_list(model, ARCHS[name])
    ids, mask = padded_batch()
    seen: dict[int, torch.Tensor] = {}
    capture = [blocks[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, _out(o).detach().clone()))
               for i in range(LAYERS)]
    try:
        with torch.no_grad():
            model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
        plain = dict(seen)
        seen.clear()
        before = _hook_counts(model)
        rec = ImpactRecorder(model, NEURON_TYPES, layers=[1, LAYERS - 1])
        assert _hook_counts(model) > before
        rec.impacts(ids, mask)
        recorded = dict(seen)
        rec.close()
        assert _hook_counts(model) == before
        seen.clear()
        with torch.no_grad():
            model.base_model(input_ids=ids, attention_mask=mask, use_cache=False)
            after = dict(seen)
            logits = model(input_ids=ids, attention_mask=mask).logits  # no hook left to stop the full model
        assert logits.shape == (*ids.shape, model.config.vocab_size)
    finally:
        for h in capture:
            h.remove()
    assert sorted(plain) == sorted(recorded) == sorted(after) == list(range(LAYERS))
    for i in range(LAYERS):
        assert torch.equal(plain[i], recorded[i]), f"layer {i} output changed while recording"
        assert torch.equal(plain[i], after[i])
    assert _hook_counts(model) == 0


# ---------------------------------------------------------------------------------------------- top_k_indices


def test_top_k_ties_break_by_lower_index() -> None:
    x = torch.tensor([[0.5, 2.0, 1.0, 2.0, 1.0, 0.5, 2.0],
                      [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
                      [0.0, 3.0, 0.0, 0.0, 3.0, 0.0, -1.0]])
    assert top_k_indices(x, 4).tolist() == [[1, 3, 6, 2], [0, 1, 2, 3], [1, 4, 0, 2]]
    assert top_k_indices(x, 7)[1].tolist() == list(range(7))
    # Many exact ties in a large row (where unstable sorts reorder): still ascending index among equals.
    big = torch.zeros(2, 3, 5000)
    big[..., 4000:] = 1.0
    idx = top_k_indices(big, 1500)
    assert idx[0, 0, :1000].tolist() == list(range(4000, 5000))
    assert idx[1, 2, 1000:].tolist() == list(range(500))


def test_top_k_larger_than_neurons_raises() -> None:
    x = torch.rand(2, 3, 8)
    assert top_k_indices(x, 8).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="exceeds"):
        top_k_indices(x, 9)
    model = make_model("phi")
    ids, mask = padded_batch()
    with ImpactRecorder(model, ["att_k"]) as rec, pytest.raises(ValueError):
        rec.signatures(ids, mask, top_k=ARCHS["phi"].expected_neurons("att_k") + 1)
