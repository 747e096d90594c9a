"""The evaluation harness: metrics on hand-computed cases, each scorer on tiny inputs, the small run end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from nag_research.evaluate import baselines, metrics
from nag_research.evaluate.harness import CONFIGS, methods_for, params_hash
from nag_research.evaluate.tasks import cut_to_tokens, strip_gcide_label

from nag_datasets.spec import SignatureSpec

fast = pytest.mark.fast


# -- metrics -----------------------------------------------------------------------------------------------------


@fast
def test_average_precision_hand_computed():
    # ranks of the positives: 1 and 3 -> (1/1 + 2/3) / 2
    assert metrics.average_precision([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(5 / 6)
    # all positives on top
    assert metrics.average_precision([3, 2, 1], [1, 1, 0]) == pytest.approx(1.0)
    # a tie admits both documents at once: P=1/2 at R=1/2, then P=2/3 at R=1
    assert metrics.average_precision([0.5, 0.5, 0.2], [1, 0, 1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert np.isnan(metrics.average_precision([1, 2], [0, 0]))


@fast
def test_roc_auc_hand_computed():
    # pairs (pos, neg): (.9,.8) (.9,.6) (.7,.6) right, (.7,.8) wrong
    assert metrics.roc_auc([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0]) == pytest.approx(0.75)
    assert metrics.roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)  # a tie counts one half
    assert metrics.roc_auc([0.1, 0.9], [1, 0]) == pytest.approx(0.0)
    assert np.isnan(metrics.roc_auc([1, 2], [1, 1]))


@fast
def test_metrics_match_sklearn_on_random_inputs():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(5, 60))
        scores = rng.integers(0, 6, n) / 5.0  # many ties
        labels = rng.random(n) < 0.4
        if labels.all() or not labels.any():
            continue
        assert metrics.average_precision(scores, labels) == pytest.approx(average_precision_score(labels, scores))
        assert metrics.roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))


@fast
def test_budget_stops_at_first_overflow():
    # budget 0.5 * 60 = 30 tokens: the best doc (10) fits, the second (30) would overflow -> stop there
    b = metrics.at_budget([4, 3, 2, 1], [1, 1, 0, 1], [10, 30, 10, 10], 0.5)
    assert (b.documents, b.tokens, b.precision, b.recall) == (1, 10, 1.0, pytest.approx(1 / 3))
    b = metrics.at_budget([4, 3, 2, 1], [1, 0, 1, 1], [10, 10, 10, 10], 0.75)
    assert (b.documents, b.precision, b.recall) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3))
    # equal scores: earlier position first
    assert metrics.selected_at_budget([1.0, 1.0, 1.0], [1, 1, 1], 2 / 3).tolist() == [0, 1]


@fast
def test_jaccard():
    assert metrics.jaccard([1, 2, 3], [2, 3, 4]) == pytest.approx(0.5)
    assert metrics.jaccard([], []) == 1.0


# -- scorers -----------------------------------------------------------------------------------------------------


@fast
def test_random_is_seeded_and_reproducible():
    a, b = baselines.random_scores(50, seed=3), baselines.random_scores(50, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, baselines.random_scores(50, seed=4))


POOL = ["the cat sat on the warm mat and purred", "stock prices fell sharply on wall street today",
        "a kitten chased the cat around the mat", "the central bank raised interest rates again"]
TARGETS = ["the cat sat on the mat", "my cat purred on the warm mat"]


@fast
def test_tfidf_ranks_an_exact_duplicate_of_a_target_first():
    pool = POOL + [TARGETS[1]]
    for mode in ("max", "centroid"):
        targets = TARGETS if mode == "max" else TARGETS[1:]
        scores = baselines.tfidf_scores(pool, targets, mode)
        assert int(np.argmax(scores)) == len(pool) - 1
    assert baselines.tfidf_scores(pool, TARGETS, "max")[-1] == pytest.approx(1.0)


@fast
def test_dsir_weights_favour_target_like_ngrams():
    pytest.importorskip("data_selection")
    scores = baselines.dsir_scores(POOL, TARGETS)
    assert scores.shape == (4,)
    cat, finance = scores[[0, 2]], scores[[1, 3]]
    assert cat.min() > finance.max()
    # the raw weight sums over n-grams, so a cat document repeated twice scores about twice as low; per n-gram it
    # stays near its single copy and above the finance documents
    pool = [*POOL, POOL[0] + " " + POOL[0]]
    raw = baselines.dsir_scores(pool, TARGETS)
    per = baselines.dsir_scores(pool, TARGETS, per_ngram=True)
    assert raw[4] < 1.5 * raw[0] < 0
    assert per[4] > per[[1, 3]].max() and per[4] == pytest.approx(per[0], rel=0.25)


@fast
def test_embedding_scores_centroid_and_max():
    pool = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    targets = np.array([[2.0, 0.0], [0.0, 3.0]])  # scale does not matter: cosine of unit vectors
    np.testing.assert_allclose(baselines.embedding_scores(pool, targets, "max"), [1.0, 1.0, np.sqrt(0.5)])
    np.testing.assert_allclose(baselines.embedding_scores(pool, targets, "centroid"),
                               [np.sqrt(0.5), np.sqrt(0.5), 1.0])


def _spec(L=3, K=4, N=16):
    return SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=K,
                         layers=tuple(range(L)), max_length=8, add_special_tokens=False, neurons_per_layer=N)


@fast
def test_nag_scores_slices_and_dice():
    spec = _spec()
    targets = np.array([[[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]], dtype=np.uint16)
    pool = np.array([targets[0], [[0, 1, 12, 13], [14, 15, 12, 13], [8, 9, 10, 11]]], dtype=np.uint16)
    scores = baselines.nag_scores(pool, targets, spec)
    # one target: similarity = Dice overlap = mean over layers of |A & B| / K
    np.testing.assert_allclose(scores, [1.0, (2 / 4 + 0 + 4 / 4) / 3], rtol=1e-6)
    last, last_spec = baselines.slice_signatures(pool, spec, layers="last")
    assert last.shape == (2, 1, 4) and last_spec.layers == (2,)
    k2, k2_spec = baselines.slice_signatures(pool, spec, top_k=2)
    assert k2.shape == (2, 3, 2) and k2_spec.top_k == 2
    t2, _ = baselines.slice_signatures(targets, spec, top_k=2)
    np.testing.assert_allclose(baselines.nag_scores(k2, t2, k2_spec), [1.0, (1 + 0 + 1) / 3], rtol=1e-6)
    with pytest.raises(ValueError):
        baselines.slice_signatures(pool, spec, top_k=5)


# -- tasks and configuration -------------------------------------------------------------------------------------


@fast
def test_strip_gcide_label_removes_only_the_class_label():
    text = 'Tort \\Tort\\, n. [F.]\n   1. Mischief. (Obs.)\n   2. (Law) Any civil wrong.\n   3. (Zo["o]l.) x'
    out = strip_gcide_label(text, "Law")
    assert "(Law)" not in out and "(Obs.)" in out and "Any civil wrong" in out
    assert "(Zo" not in strip_gcide_label(text, "Zool.")


@fast
def test_configs_and_methods():
    assert params_hash(CONFIGS["small"]) != params_hash(CONFIGS["full"])
    names = [m.name for m in methods_for(CONFIGS["full"])]
    assert names[0] == "NAG fwd_up all-layers K=20"
    families = {m.family for m in methods_for(CONFIGS["full"])}
    assert families == {"nag", "embedding", "tfidf", "dsir", "random"}
    assert any("att_o" in n for n in names) and any("fwd_down" in n for n in names)


@pytest.mark.slow  # the bundled model's tokenizer
def test_cut_to_tokens_keeps_the_first_tokens():
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir

    tok = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    text = "Photosynthesis converts light energy into chemical energy in plants. " * 10
    cut = cut_to_tokens(text, tok, 12)
    assert text.startswith(cut) and len(cut) < len(text)
    assert tok(cut, add_special_tokens=False)["input_ids"] == tok(text, add_special_tokens=False)["input_ids"][:12]
    assert cut_to_tokens("short text", tok, 12) == "short text"


@fast
def test_register_cli_adds_evaluate():
    from nag_research.evaluate import register_cli

    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["evaluate", "--config", "small", "--out", "x", "--threads", "1"])
    assert (args.command, args.config, args.out, args.threads) == ("evaluate", "small", "x", 1)


# -- end to end --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_small_evaluation_end_to_end(tmp_path):
    from nag_research.evaluate import run_evaluation

    # a fresh feature cache, so the forward passes really run (about a minute on a quiet 2-core machine)
    results = run_evaluation("small", tmp_path, cache_dir=tmp_path / "cache", log=None)
    assert all(t["chunks_computed"] > 0 and t["chunks_from_cache"] == 0
               for t in results["timing"].values() if isinstance(t, dict))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["params_hash"] == params_hash(CONFIGS["small"]) and saved["git_commit"]
    assert set(saved["tasks"]) == {"mmlu_domains", "gcide_fields"}
    for task in results["tasks"].values():
        pm = task["per_method"]
        assert list(pm) == results["methods"]
        for v in pm.values():
            assert 0.0 <= v["mean"]["auc"] <= 1.0 and 0.0 <= v["mean"]["ap"] <= 1.0
            assert v["mean"]["recall@0.2"] <= 1.0
        random_ap = next(v["mean"]["ap"] for v in pm.values() if v["family"] == "random")
        # every real method retrieves its class better than chance on these tasks
        assert pm["NAG fwd_up all-layers K=20"]["mean"]["ap"] > random_ap
        assert pm["TF-IDF centroid"]["mean"]["ap"] > random_ap
        sens = task["sensitivity"]
        full = sens["methods"]["NAG fwd_up all-layers K=20"][-1]
        assert full["targets"] == sens["max_targets"] and full["jaccard_mean"] == 1.0
    report = (tmp_path / "report.md").read_text()
    assert "## Summary read off the numbers" in report and "| NAG fwd_up all-layers K=20 |" in report
    for plot in ("ap_by_method.png", "precision_at_budget.png", "sensitivity.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
