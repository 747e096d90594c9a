"""Tests of nag_research.analysis: subsets, distances, clustering, retrieval, deactivation, measurements."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from helpers import make_signature_dataset, make_spec, random_signatures
from nag_research.analysis.clustering import cluster_scores, evaluate_distance, purity, tfidf_distance_matrix
from nag_research.analysis.deactivation import (
    deactivated,
    high_delta_keys,
    high_mean_keys,
    key_count,
    nag_keys,
    random_keys,
)
from nag_research.analysis.distances import dice_matrix, multi_hot, nag_distance_matrix, squared_euclidean_to_dice
from nag_research.analysis.measure import document_losses, mmlu_items, multiple_choice_accuracy
from nag_research.analysis.notebook import notebook_params, params_sha256, read_marker
from nag_research.analysis.retrieval import precision_recall_at, rank_correlation, roc_auc, top_fraction_overlap
from nag_research.analysis.subsets import (
    prefix_column,
    prefix_profile,
    prefix_signatures,
    signature_array,
    slice_column,
    slice_profile,
    slice_signatures,
)

from nag_datasets.demo_data import render_mmlu
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.signatures.columns import get_spec
from nag_datasets.signatures.spec import SpecError, SpecMismatchError

fast = pytest.mark.fast


# ----- subsets -------------------------------------------------------------------------------------------------


@fast
def test_slice_and_prefix_signatures_give_own_specs():
    spec = make_spec(layers=(0, 3, 5), top_k=4)
    sigs = random_signatures(6, spec)
    last, last_spec = slice_signatures(sigs, spec, "last")
    assert last_spec.layers == (5,) and np.array_equal(last[:, 0], sigs[:, 2])
    mid, mid_spec = slice_signatures(sigs, spec, [5, 0])
    assert mid_spec.layers == (0, 5) and np.array_equal(mid, sigs[:, [0, 2]])
    narrow, narrow_spec = prefix_signatures(sigs, spec, 2)
    assert narrow_spec.top_k == 2 and np.array_equal(narrow, sigs[:, :, :2])
    assert narrow_spec.fingerprint != spec.fingerprint
    with pytest.raises(SpecError, match=r"layers \[1\]"):
        slice_signatures(sigs, spec, [1])
    with pytest.raises(ValueError):
        prefix_signatures(sigs, spec, 5)


@fast
def test_sliced_profile_equals_profile_of_sliced_signatures():
    spec = make_spec()
    sigs = random_signatures(20, spec, seed=3)
    profile = NAGProfile.from_signatures(sigs, spec)
    sliced = slice_profile(profile, [0, 2])
    expected = NAGProfile.from_signatures(*slice_signatures(sigs, spec, [0, 2]))
    assert np.array_equal(sliced.counts, expected.counts) and sliced.spec == expected.spec
    pool = random_signatures(7, spec, seed=4)
    assert np.allclose(sliced.score(slice_signatures(pool, spec, [0, 2])[0]),
                       expected.score(slice_signatures(pool, spec, [0, 2])[0]))
    with pytest.raises(ProfileError, match="Rebuild it from prefixed target signatures"):
        prefix_profile(profile, 2)


@fast
def test_sliced_column_carries_its_spec_and_is_refused_by_full_profile():
    spec = make_spec()
    sigs = random_signatures(8, spec, seed=1)
    ds = make_signature_dataset(sigs, spec, {"i": list(range(8))}, null_rows=[3])
    full_profile = NAGProfile.from_dataset(ds)
    last = slice_column(ds, "last", out_column="nag_last")
    assert get_spec(last, "nag_last").layers == (2,)
    got, valid, _ = signature_array(last, "nag_last")
    assert not valid[3] and np.array_equal(got[valid], sigs[valid][:, 2:3])
    with pytest.raises(SpecMismatchError, match="layers"):
        full_profile.score(last, "nag_last")
    narrow = prefix_column(ds.select([5, 1, 0]), 2)
    got, valid, nspec = signature_array(narrow)
    assert nspec.top_k == 2 and np.array_equal(got, sigs[[5, 1, 0], :, :2])
    with pytest.raises(SpecMismatchError, match="top_k"):
        full_profile.score(narrow)
    narrow_profile = NAGProfile.from_dataset(narrow)
    assert narrow_profile.spec.top_k == 2 and np.allclose(narrow_profile.score(narrow), narrow_profile.score(got))


# ----- distances -----------------------------------------------------------------------------------------------


def _brute_dice(a, b):
    L, K = a.shape[1:]
    out = np.zeros((len(a), len(b)))
    for i in range(len(a)):
        for j in range(len(b)):
            out[i, j] = sum(len(set(a[i, l]) & set(b[j, l])) for l in range(L)) / (L * K)
    return out


@fast
def test_dice_matrix_equals_brute_force_and_profile_similarity():
    spec = make_spec(neurons_per_layer=10)  # small N: many overlaps
    a, b = random_signatures(9, spec, seed=0), random_signatures(5, spec, seed=1)
    d = dice_matrix(a, b, spec)
    assert np.allclose(d, _brute_dice(a, b))
    # Sim(c, D) of the method = mean Dice to the targets.
    assert np.allclose(NAGProfile.from_signatures(b, spec).score(a), d.mean(axis=1), atol=1e-6)
    dist = nag_distance_matrix(a, None, spec)
    assert np.allclose(np.diag(dist), 0) and np.allclose(dist, dist.T) and np.allclose(dist, 1 - _brute_dice(a, a))
    x = multi_hot(a, spec).toarray()
    sq = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    assert np.allclose(squared_euclidean_to_dice(sq, spec), _brute_dice(a, a))


@fast
def test_dice_refuses_mismatched_specs_and_bad_rows():
    spec = make_spec()
    a = random_signatures(3, spec)
    with pytest.raises(SpecMismatchError, match="top_k"):
        dice_matrix(a, a, spec, spec.replace(top_k=2))
    bad = a.copy()
    bad[0, 0, 1] = bad[0, 0, 0]
    with pytest.raises(ValueError, match="repeats"):
        multi_hot(bad, spec)


@fast
def test_distance_matrix_of_two_thousand_documents_in_seconds():
    spec = make_spec(layers=tuple(range(30)), top_k=20, neurons_per_layer=1536)
    a = random_signatures(2000, spec, seed=2)
    start = time.perf_counter()
    d = nag_distance_matrix(a, None, spec)
    assert d.shape == (2000, 2000)
    assert time.perf_counter() - start < 20


# ----- clustering and retrieval --------------------------------------------------------------------------------


@fast
def test_cluster_scores_and_tsne_on_separated_groups():
    assert purity([0, 0, 1, 1, 1], [5, 5, 5, 7, 7]) == pytest.approx(0.8)
    assert cluster_scores([0, 0, 1, 1], [1, 1, 0, 0]) == {"purity": 1.0, "nmi": 1.0, "ari": 1.0}
    spec = make_spec(neurons_per_layer=64)
    rng = np.random.default_rng(0)
    # Two groups drawing neurons from disjoint halves: distances near 1 across, lower within.
    groups = [np.sort(rng.permuted(np.tile(np.arange(h, h + 32), (10 * 3, 1)), axis=1)[:, :4].reshape(10, 3, 4))
              for h in (0, 32)]
    sigs = np.concatenate(groups)
    labels = np.repeat([0, 1], 10)
    res = evaluate_distance(nag_distance_matrix(sigs, None, spec), labels, perplexity=5)
    assert res["tsne"].shape == (20, 2)
    assert res["agglomerative"]["purity"] == 1.0 and res["tsne_kmeans"]["purity"] == 1.0
    d = tfidf_distance_matrix(["cats purr", "cats purr loudly", "stocks fell", "stocks fell today"])
    assert d[0, 1] < d[0, 2] and d[2, 3] < d[1, 3]


@fast
def test_retrieval_metrics():
    scores = np.array([0.9, 0.8, 0.7, 0.1])
    relevant = np.array([True, True, False, False])
    rows = precision_recall_at(scores, relevant, np.array([1, 1, 1, 1]), [0.25, 0.5, 1.0])
    assert [(r["precision"], r["recall"]) for r in rows] == [(1.0, 0.5), (1.0, 1.0), (0.5, 1.0)]
    assert roc_auc(scores, relevant) == 1.0
    assert rank_correlation(scores, -scores) == pytest.approx(-1.0)
    assert top_fraction_overlap(scores, scores[::-1].copy(), np.ones(4), 0.5) == 0.0


# ----- deactivation -------------------------------------------------------------------------------------------


def _randomize_biases(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            b = getattr(m, "bias", None)
            if isinstance(b, torch.nn.Parameter):
                b.copy_(torch.randn(b.shape, generator=g) * 0.5)
    return model


def _tiny(kind):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    torch.manual_seed(0)
    if kind == "llama_bias":
        cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=97, mlp_bias=True, attention_bias=True)
        return _randomize_biases(LlamaForCausalLM(cfg).eval())
    if kind == "gpt2":
        return _randomize_biases(GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=3, n_head=4, vocab_size=97)).eval())
    cfg = Phi3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                     num_key_value_heads=2, vocab_size=97, pad_token_id=0)
    return Phi3ForCausalLM(cfg).eval()


@fast
@pytest.mark.parametrize("kind", ["llama_bias", "gpt2", "phi3_fused"])
def test_deactivation_is_exactly_reversible(kind):
    model = _tiny(kind)
    ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(ids).logits.clone()
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        with deactivated(model, {0: [1, 4], 2: [0]}):
            during = model(ids).logits.clone()
        after = model(ids).logits
    assert not torch.equal(before, during)
    assert torch.equal(before, after)
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    # An exception inside the block still removes the hooks.
    with pytest.raises(RuntimeError), torch.no_grad(), deactivated(model, {1: [3]}):
        raise RuntimeError("boom")
    with torch.no_grad():
        assert torch.equal(model(ids).logits, before)


@fast
def test_deactivation_zeroes_the_neurons_contribution():
    model = _tiny("llama_bias")
    mlp = model.model.layers[1].mlp
    seen = {}
    mlp.down_proj.register_forward_hook(lambda m, i, o: seen.__setitem__("in", i[0].detach().clone()))
    with torch.no_grad(), deactivated(model, {1: [2, 7]}):
        model(torch.arange(5)[None])
    assert torch.count_nonzero(seen["in"][..., [2, 7]]) == 0 and torch.count_nonzero(seen["in"][..., 3]) > 0
    # Fused gate_up: only the up half of the neuron's column is zeroed, so down_proj again sees zero there.
    phi = _tiny("phi3_fused")
    got = {}
    phi.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o: got.__setitem__("in", i[0].clone()))
    with torch.no_grad(), deactivated(phi, {0: [5]}):
        phi(torch.arange(5)[None])
    assert torch.count_nonzero(got["in"][..., 5]) == 0 and torch.count_nonzero(got["in"][..., 4]) > 0
    with pytest.raises(ValueError, match="64 fwd_up neurons"), deactivated(model, {0: [64]}):
        pass


@fast
def test_key_builders():
    spec = make_spec(layers=(0, 1), top_k=2, neurons_per_layer=6)
    sigs = np.array([[[0, 1], [2, 3]], [[0, 2], [3, 4]], [[0, 1], [3, 5]]])
    keys = nag_keys(NAGProfile.from_signatures(sigs, spec), 2)
    assert {k: v.tolist() for k, v in keys.items()} == {0: [0, 1], 1: [2, 3]}  # tie 2/4/5: lowest index
    r1, r2 = (random_keys(keys, 6, seed=s) for s in (0, 0))
    assert key_count(r1) == key_count(keys) == 4 and all(len(r1[k]) == 2 for k in keys)
    assert all(np.array_equal(r1[k], r2[k]) for k in keys)
    target = np.array([[1.0, 5, 3, 0, 0, 0], [0, 0, 0, 2, 9, 1]])
    general = np.array([[1.0, 5, 0, 0, 0, 0], [0, 0, 0, 0, 9, 0]])
    assert {k: v.tolist() for k, v in high_mean_keys(target, [0, 1], 1).items()} == {0: [1], 1: [4]}
    assert {k: v.tolist() for k, v in high_delta_keys(target, general, [0, 1], 1).items()} == {0: [2], 1: [3]}


# ----- measurements ------------------------------------------------------------------------------------------


class _CharTokenizer:
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [1 + (ord(c) % 90) for c in text]}


@fast
def test_document_losses_match_unbatched_computation():
    model, tok = _tiny("llama_bias"), _CharTokenizer()
    texts = ["hello there", "a", "some longer text here", "xy"]
    losses = document_losses(model, tok, texts, max_length=12, batch_size=3)
    assert np.isnan(losses[1])
    for i in (0, 2, 3):
        ids = torch.tensor([tok(texts[i])["input_ids"][:12]])
        with torch.no_grad():
            ref = model(ids, labels=ids).loss.item()
        assert losses[i] == pytest.approx(ref, abs=1e-5)


@fast
def test_mmlu_items_and_accuracy_are_batch_independent():
    texts = [render_mmlu(f"Question {i}?", ["alpha", "beta", "gamma", "delta"], "ABCD"[i % 4]) for i in range(6)]
    items = mmlu_items(texts)
    assert items[1][0].endswith("D. delta\nAnswer:") and items[1][1][2] == "gamma" and items[1][2] == 1
    with pytest.raises(ValueError):
        mmlu_items(["no answer here"])

    class LetterTok(_CharTokenizer):
        def __call__(self, text, add_special_tokens=False):
            if text in (" A", " B", " C", " D"):
                return {"input_ids": [91 + "ABCD".index(text[1])]}
            return super().__call__(text)

    model, tok = _tiny("llama_bias"), LetterTok()
    for method in ("letter", "option"):
        a = multiple_choice_accuracy(model, tok, items, method=method, batch_size=1)
        b = multiple_choice_accuracy(model, tok, items, method=method, batch_size=4)
        assert a["n"] == 6 and np.array_equal(a["predictions"], b["predictions"])
        assert a["accuracy"] == pytest.approx(np.mean(a["predictions"] == [x[2] for x in items]))


# ----- notebook header -----------------------------------------------------------------------------------------


@fast
def test_notebook_params_header_and_markers(monkeypatch, capsys):
    full, small = {"n": 100}, {"n": 5}
    monkeypatch.setenv("NAG_DATASETS_NOTEBOOK_SIZE", "small")
    assert notebook_params(full, small) == small
    monkeypatch.delenv("NAG_DATASETS_NOTEBOOK_SIZE")
    assert notebook_params(full, small) == full
    out = capsys.readouterr().out
    nb = {"cells": [{"outputs": [{"output_type": "stream", "text": out}]}]}
    header = read_marker(nb, "NAG_NOTEBOOK_HEADER ")
    assert header["size"] == "full" and header["full_params_sha256"] == params_sha256(full)
    monkeypatch.setenv("NAG_DATASETS_NOTEBOOK_SIZE", "huge")
    with pytest.raises(ValueError):
        notebook_params(full, small)


@fast
def test_empty_selection_from_a_multi_block_table():
    """Regression (found by notebook 01): a selection keeping no row failed to attach its recipe column."""
    from datasets import Dataset

    from nag_datasets.selection.budgeted import select_top_fraction

    ds = Dataset.from_dict({"s": [0.1, 0.7, 0.4], "n": [50, 50, 50]}).add_column("q", [1.0, 2.0, 3.0])
    out = select_top_fraction(ds, 0.1, token_column="n", score_column="s")
    assert len(out) == 0 and "nag_rank" in out.column_names
