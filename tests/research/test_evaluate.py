"""The evaluation harness: metrics on hand-computed cases, each scorer on tiny inputs, the small run end to end."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from nag_research.corpora import strip_gcide_label
from nag_research.evaluate import baselines, metrics
from nag_research.evaluate.features import FeatureSet
from nag_research.evaluate.harness import (
    CONFIGS,
    CONTRASTIVE_DEFAULT,
    CONTRASTIVE_GRID,
    LAYER_SETS,
    EvalConfig,
    contrastive_name,
    default_name,
    methods_for,
    params_hash,
    run_evaluation,
)
from nag_research.evaluate.report import write_report
from nag_research.evaluate.tasks import RetrievalTask, TaskConfig, cut_to_tokens

from nag_datasets.signatures.spec import SignatureSpec

fast = pytest.mark.fast


@fast
@pytest.mark.parametrize("module", ["evaluate.baselines", "evaluate.metrics", "evaluate.harness", "corpora",
                                    "evaluate.distill"])
def test_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"nag_research.{module}"))
    assert result.attempted > 0 and result.failed == 0


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
    last, last_spec = baselines.harness_subset(pool, spec, layers="last")
    assert last.shape == (2, 1, 4) and last_spec.layers == (2,)
    k2, k2_spec = baselines.harness_subset(pool, spec, top_k=2)
    assert k2.shape == (2, 3, 2) and k2_spec.top_k == 2
    t2, _ = baselines.harness_subset(targets, spec, top_k=2)
    np.testing.assert_allclose(baselines.nag_scores(k2, t2, k2_spec), [1.0, (1 + 0 + 1) / 3], rtol=1e-6)
    with pytest.raises(ValueError):
        baselines.harness_subset(pool, spec, top_k=5)


def _contrast_case(L=2, K=4, N=32, n_targets=5, n_background=20):
    """Every document holds the common neurons 0, 1, 2; the targets also hold neuron 10, which no background
    document holds. Pool doc A shares only neuron 10 with the targets; pool doc B shares only the common ones."""
    rng = np.random.default_rng(0)

    def doc(neurons):
        return np.tile(np.array(neurons, dtype=np.uint16), (L, 1))

    targets = np.stack([doc([0, 1, 2, 10]) for _ in range(n_targets)])
    background = np.stack([doc([0, 1, 2, int(x)]) for x in rng.integers(20, 32, n_background)])
    pool = np.stack([doc([10, 13, 14, 15]), doc([0, 1, 2, 16])])
    return pool, targets, background, _spec(L=L, K=K, N=N)


@fast
@pytest.mark.parametrize("weighting,params", [w for w in CONTRASTIVE_GRID])
def test_contrastive_ranks_target_specific_neurons_above_common_ones(weighting, params):
    pool, targets, background, spec = _contrast_case()
    scores = baselines.contrastive_nag_scores(pool, targets, background, spec, weighting, **dict(params))
    assert np.isfinite(scores).all()
    assert scores[0] > scores[1]  # A (target-specific neuron) above B (only neurons common to everything)


@fast
@pytest.mark.parametrize("weighting,params", [w for w in CONTRASTIVE_GRID])
def test_harness_weights_are_the_librarys(weighting, params):
    """The harness scores with the library's ContrastiveProfile; its numpy restatement of the formulas agrees."""
    rng = np.random.default_rng(1)
    spec = _spec(L=3, K=4, N=16)
    sigs = np.stack([np.stack([rng.choice(16, 4, replace=False) for _ in range(3)]) for _ in range(30)])
    sigs = sigs.astype(np.uint16)
    target, background, pool = sigs[:6], sigs[6:], sigs[10:]
    profile = baselines.contrastive_profile(target, background, spec, weighting, **dict(params))
    ours = baselines.contrastive_weights(baselines.neuron_counts(target, 16), 6, baselines.neuron_counts(background, 16),
                                         24, weighting, **dict(params))
    # The library rounds weights to the nearest multiple of its table's 2**-s: at most half a step from the formula.
    half_step = 0.5 / profile.scoring_table()[0].divisor
    assert 0 < half_step <= 2.0**-13
    np.testing.assert_allclose(profile.weights, ours, rtol=0, atol=half_step + 1e-7)
    expected = ours[np.arange(3)[None, :, None], pool.astype(np.int64)].mean(axis=(1, 2))
    scores = baselines.contrastive_nag_scores(pool, target, background, spec, weighting, **dict(params))
    np.testing.assert_allclose(scores, expected, rtol=0, atol=half_step + 1e-6)


@fast
def test_frequency_weighting_is_the_papers_similarity():
    pool, targets, background, spec = _contrast_case()
    paper = baselines.nag_scores(pool, targets, spec)
    freq = baselines.contrastive_nag_scores(pool, targets, background, spec, "frequency")
    np.testing.assert_allclose(freq, paper, rtol=1e-6)
    assert paper[1] > paper[0]  # the paper's profile prefers the common neurons: what the contrast fixes
    np.testing.assert_allclose(paper, [1 / 4, 3 / 4], rtol=1e-6)


@fast
def test_contrastive_weights_formulas_and_finiteness():
    c_t = np.array([[3, 0, 1, 0]])
    c_b = np.array([[9, 0, 0, 2]])
    n_t, n_b = 3, 10
    w = baselines.contrastive_weights
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "log_odds", alpha=0.25),
                               np.log((c_t + 0.25) / 3.5) - np.log((c_b + 0.25) / 10.5))
    pb = (c_b + 1.0) / 12.0
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "shrinkage", m=20, alpha=1.0),
                               np.log((c_t + 20 * pb) / 23) - np.log(pb))
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "difference"), c_t / 3 - c_b / 10)
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "lift", eps=0.05), np.log((c_t / 3 + 0.05) / (c_b / 10 + 0.05)))
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "tfidf"), c_t / 3 * np.log(11 / (c_b + 1)))
    np.testing.assert_allclose(w(c_t, n_t, c_b, n_b, "frequency"), c_t / 3)
    for weighting, params in CONTRASTIVE_GRID:  # neurons never seen in the background stay finite
        assert np.isfinite(w(c_t, n_t, np.zeros_like(c_b), n_b, weighting, **dict(params))).all()
    with pytest.raises(ValueError, match="takes parameters"):
        w(c_t, n_t, c_b, n_b, "log_odds")
    with pytest.raises(ValueError, match="unknown weighting"):
        w(c_t, n_t, c_b, n_b, "odds")


@fast
def test_contrastive_embedding_equals_its_formula():
    pool = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [1.0, 1.0, 1.0]])
    targets = np.array([[3.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    background = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 5.0]])

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    d = unit(targets).mean(0) - unit(background).mean(0)
    expected = unit(pool) @ d / np.linalg.norm(d)
    np.testing.assert_allclose(baselines.contrastive_embedding_scores(pool, targets, background), expected)
    centred = unit(unit(pool) - unit(background).mean(0)) @ d / np.linalg.norm(d)
    np.testing.assert_allclose(baselines.contrastive_embedding_scores(pool, targets, background, centred=True),
                               centred)
    # the pool document along the target direction ranks first, the one along the background last
    assert np.argmax(expected) == 0 and np.argmin(expected) == 1


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
    assert families == {"nag", "contrastive", "centred_embedding", "fusion_zsum", "fusion_rrf", "fusion_zsum_learned",
                        "learned", "embedding", "contrastive_embedding", "tfidf", "dsir", "random"}
    assert any("att_o" in n for n in names) and any("fwd_down" in n for n in names)
    contrastive = [m for m in methods_for(CONFIGS["full"]) if m.family == "contrastive"]
    # fwd_up, fwd_down, att_o, fwd_up+att_o, each over all layers, the last 15 and the last 10
    assert len(contrastive) == len(CONTRASTIVE_GRID) * 4 * len(LAYER_SETS) == len(CONTRASTIVE_GRID) * 12
    assert default_name(CONFIGS["full"]) in names and len(set(names)) == len(names)
    assert contrastive_name("shrinkage", (("m", 20.0), ("alpha", 0.5)), ("fwd_up", "att_o")) == \
        "Contrastive NAG fwd_up+att_o shrinkage m=20 a=0.5"
    assert contrastive_name("shrinkage", (("m", 20.0), ("alpha", 0.5)), ("att_o",), "last10") == \
        "Contrastive NAG att_o shrinkage m=20 a=0.5 last10"
    assert default_name(CONFIGS["small"]) in {m.name for m in methods_for(CONFIGS["small"])}


@fast
def test_layer_sets_name_the_last_layers():
    from nag_research.evaluate.harness import layer_positions

    assert layer_positions("last10", 30) == list(range(20, 30)) and layer_positions("all", 30) == "all"
    for bad in ("last0", "last31", "first10", "lastx"):
        with pytest.raises(ValueError, match="layer set"):
            layer_positions(bad, 30)


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


# -- the whole run on synthetic features (no model) --------------------------------------------------------------

SYN_CLASSES = ("c0", "c1", "c2")


def _synthetic_config():
    tasks = tuple(TaskConfig(kind, SYN_CLASSES, 12, 20, sensitivity_class="c0", n_extra=12)
                  for kind in ("syn_a", "syn_b"))
    return EvalConfig(name="synthetic", tasks=tasks, max_length=8, top_k=6, neuron_types=("fwd_up", "att_o"),
                      k_prefixes=(3,), fractions=(0.1, 0.2), random_seeds=2, sensitivity_sizes=(4, 8),
                      sensitivity_seeds=2, robustness_targets=(4,), background_sizes=(10, 30), robustness_seeds=2,
                      selection_background=10,
                      contrastive_weightings=(("log_odds", (("alpha", 0.25),)), CONTRASTIVE_DEFAULT[:2],
                                              ("difference", ())),
                      contrastive_layers=("all", "last2"), contrastive_default=(*CONTRASTIVE_DEFAULT[:3], "last2"),
                      fusion_components=((*CONTRASTIVE_DEFAULT[:2], ("att_o",), "last2"),
                                         (*CONTRASTIVE_DEFAULT[:3], "last2")),
                      zsum_weights=(0.3, 0.5), rrf_kappas=(0.1,), rrf_weights=(0.5,),
                      learned=(("nag", "att_o", "last2", "last"), ("emb", "att_o", "last2", "last"),
                               ("both", "att_o", "last2", "last")),
                      learned_cs=(0.1, 10.0))


def _synthetic_features(tcfg, L=3, K=6, N=64, hidden=8):
    """Class-specific neurons and embedding directions under neurons / a component every document shares."""
    rng = np.random.default_rng(sum(map(ord, tcfg.kind)))
    ids, texts, labels, roles = [], [], [], []
    sigs = {t: [] for t in ("fwd_up", "att_o")}
    emb = []
    words = {"c0": "cat dog", "c1": "stock bank", "c2": "rain cloud"}
    for ci, cls in enumerate(tcfg.classes):
        n_extra = tcfg.n_extra if cls == tcfg.sensitivity_class else 0
        for role, n in (("target", tcfg.n_target), ("pool", tcfg.n_pool), ("extra", n_extra)):
            for i in range(n):
                ids.append(f"{tcfg.kind}/{cls}/{role}/{i}")
                texts.append(f"{words[cls]} {rng.choice(['the', 'a', 'some'])} doc {i}")
                labels.append(cls)
                roles.append(role)
                for per_type in sigs.values():
                    rows = []
                    for _ in range(L):
                        common = rng.choice(4, 3, replace=False)
                        specific = 10 + 6 * ci + rng.choice(6, 1, replace=False)
                        noise = rng.choice(np.arange(30, N), K - 4, replace=False)
                        rows.append(np.concatenate([common, specific, noise]))
                    per_type.append(rows)
                direction = np.eye(hidden)[ci]
                emb.append(3.0 + direction * 0.6 + rng.normal(0, 0.5, hidden))
    task = RetrievalTask(tcfg.kind, f"synthetic {tcfg.kind}", tcfg.classes, ids, texts, labels, roles)
    n = len(ids)
    specs = {t: _spec(L=L, K=K, N=N).replace(neuron_type=t) for t in sigs}
    emb = np.array(emb, np.float32)
    feats = FeatureSet({t: np.array(v, np.uint16) for t, v in sigs.items()}, {"last": emb, "mid": emb[:, ::-1]},
                       rng.integers(5, 9, n).astype(np.int64), specs, 0.0, 0, 0)
    return task, feats


@fast
def test_synthetic_run_tables_rows_and_json_round_trip(tmp_path):
    config = _synthetic_config()
    results = run_evaluation(config, tmp_path, log=None, features=_synthetic_features,
                             method_filter=lambda m: m.family != "dsir")
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == json.loads(json.dumps(results, default=float))
    # the report rebuilt from the saved JSON is the one the run wrote
    first = (tmp_path / "report.md").read_text()
    write_report(saved, tmp_path / "again")
    assert (tmp_path / "again" / "report.md").read_text() == first
    d = default_name(config)
    assert saved["contrastive_default"] == d
    for task in saved["tasks"].values():
        rob = task["robustness"]
        assert rob["targets"]["sizes"] == [4, 12]  # configured sizes below n_target, then all targets
        assert rob["background"]["sizes"] == [10, 30, 60]  # configured sizes below the pool, then the whole pool
        for kind in ("targets", "background"):
            for name, row in rob[kind]["methods"].items():
                assert len(row["ap_mean"]) == len(rob[kind]["sizes"])
                assert set(row["per_class"]) == set(SYN_CLASSES)
        assert d in rob["background"]["methods"] and "Embedding last-layer centroid" not in rob["background"]["methods"]
        # with all targets and the whole pool as background the studies reproduce the main table
        for name, row in rob["targets"]["methods"].items():
            assert row["ap_mean"][-1] == pytest.approx(task["per_method"][name]["mean"]["ap"])
        assert rob["background"]["methods"][d]["ap_mean"][-1] == pytest.approx(task["per_method"][d]["mean"]["ap"])
        # the synthetic classes are easy for the contrastive profile, and the paper's profile is drowned by the
        # common neurons
        assert task["per_method"][d]["mean"]["ap"] > 0.9
        assert task["per_method"][d]["mean"]["ap"] > task["per_method"]["NAG fwd_up all-layers K=6"]["mean"]["ap"]
        assert d in task["sensitivity"]["methods"]
    sel = saved["selection"]
    # the rule picks among shippable variants only (one neuron type); the two-type reference ranks first here
    assert saved["default"] == sel["pick_all"] in sel["shippable"] and set(sel["holdout"]) == {"half A", "half B"}
    pm0 = next(iter(saved["tasks"].values()))["per_method"]
    assert all(len(pm0[n]["options"].get("types", ())) <= 1 for n in sel["shippable"])
    assert sel["ranking"][0] not in sel["shippable"] and "+" in sel["ranking"][0]
    assert all(saved["default"] in t["sensitivity"]["methods"] for t in saved["tasks"].values())
    assert sel["halves_classes"]["syn_a"] == {"half A": ["c0", "c2"], "half B": ["c1"]}
    report = first
    assert report.index("## The shipped default against the strongest single signals") < \
        report.index("## Per class: where the shipped default wins") < report.index("## Summary read off")
    for heading in ("## Main table", "## Choosing the default", "## Every contrastive variant",
                    "## Sensitivity", "- Check (issue 23): ", "## The centred embedding, the learned variants"):
        assert heading in report
    # the sensitivity tables hold one row per rival and one column per configured size
    targets_head = "| Method | syn_a n=4 | syn_a n=12 | syn_b n=4 | syn_b n=12 |"
    background_head = "| Method | syn_a 10 | syn_a 30 | syn_a 60 | syn_b 10 | syn_b 30 | syn_b 60 |"
    for head in (targets_head, background_head):
        block = report.split(head)[1].split("\n\n")[0].strip().splitlines()[1:]
        names = [r.split(" | ")[0].lstrip("| ") for r in block]
        assert names[:9] == [saved["default"], d, "Centred contrastive embedding last-layer (float16)",
                             "Centred contrastive embedding mid-layer (float16)", "Learned LR: centred emb last",
                             "Contrastive embedding last-layer (centroid - background mean)",
                             "Contrastive embedding last-layer, centred cosine", "Embedding last-layer centroid",
                             "Embedding last-layer max"]
    assert (tmp_path / "plots" / "robustness.png").stat().st_size > 1000


# -- end to end --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_small_evaluation_end_to_end(tmp_path):
    from nag_research.evaluate import run_evaluation

    # a fresh feature cache, so the forward passes really run (under a minute on a quiet 2-core machine)
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
        assert task["robustness"]["targets"]["sizes"] == [5, 10, 15]
        assert task["robustness"]["background"]["sizes"] == [25, 50, 120]
        full = sens["methods"]["NAG fwd_up all-layers K=20"][-1]
        assert full["targets"] == sens["max_targets"] and full["jaccard_mean"] == 1.0
    # the rule's pick is shippable, and every one of the new families was scored
    assert saved["default"] in saved["selection"]["shippable"]
    assert {"centred_embedding", "fusion_zsum", "fusion_rrf", "learned"} <= {v["family"] for v in pm.values()}
    report = (tmp_path / "report.md").read_text()
    assert "## Summary read off the numbers" in report and "| NAG fwd_up all-layers K=20 |" in report
    assert report.startswith("# Target retrieval") and "## The shipped default against" in report
    assert "## Every contrastive variant" in report
    for plot in ("ap_by_method.png", "precision_at_budget.png", "sensitivity.png", "robustness.png"):
        assert (tmp_path / "plots" / plot).stat().st_size > 1000
