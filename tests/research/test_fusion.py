"""The fused and learned scorers of the harness: plain references, per-row computation, what the learned model
sees, and the selection rule's restriction to shippable variants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from nag_research.evaluate import fusion
from nag_research.evaluate.features import FeatureSet
from nag_research.evaluate.harness import (
    SELECTABLE,
    EvalConfig,
    MethodSpec,
    _score,
    is_shippable,
    learned_name,
    method_kind,
    select_default,
)
from nag_research.evaluate.tasks import RetrievalTask

from nag_datasets.signatures.spec import SignatureSpec

pytestmark = pytest.mark.fast


def test_doctests():
    import doctest

    result = doctest.testmod(fusion)
    assert result.attempted > 0 and result.failed == 0


@pytest.fixture
def signals():
    rng = np.random.default_rng(0)
    nag, emb = rng.normal(size=40), rng.normal(size=40)
    nag_bg, emb_bg = rng.normal(0.2, 1.5, 25), rng.normal(-0.1, 0.3, 25)
    nag[:3] = nag_bg[:3]  # ties with background rows
    return nag, nag_bg, emb, emb_bg


def test_zsum_equals_a_plain_reference_row_by_row(signals):
    nag, nag_bg, emb, emb_bg = signals
    ref = 0.3 * (nag - nag_bg.mean()) / np.sqrt(((nag_bg - nag_bg.mean()) ** 2).mean()) + \
        0.7 * (emb - emb_bg.mean()) / np.sqrt(((emb_bg - emb_bg.mean()) ** 2).mean())
    batch = fusion.zsum_scores(nag, nag_bg, emb, emb_bg, 0.3)
    np.testing.assert_allclose(batch, ref, rtol=1e-12)
    rows = [fusion.zsum_scores(nag[i:i + 1], nag_bg, emb[i:i + 1], emb_bg, 0.3)[0] for i in range(len(nag))]
    assert np.array_equal(np.array(rows), batch)  # a row's score does not depend on the other rows scored with it
    assert fusion.background_stats([1.0, 3.0]) == (2.0, 1.0)  # population std
    assert fusion.background_stats([2.0, 2.0, 2.0]) == (2.0, 1.0)  # zero spread: shift only
    with pytest.raises(ValueError, match="finite"):
        fusion.background_stats([1.0, np.nan])
    with pytest.raises(ValueError, match="weight"):
        fusion.zsum_scores(nag, nag_bg, emb, emb_bg, 1.5)


def test_rrf_equals_a_plain_reference_row_by_row(signals):
    nag, nag_bg, emb, emb_bg = signals

    def fraction(s, b):
        return np.array([((b > x).sum() + 0.5 * (b == x).sum()) / len(b) for x in s])

    p_nag, p_emb = fraction(nag, nag_bg), fraction(emb, emb_bg)
    np.testing.assert_array_equal(fusion.rank_fraction(nag, nag_bg), p_nag)
    assert set(np.round(p_nag[:3] * 50) % 2) == {1.0}  # each tied row counts its tie one half
    ref = 0.7 / (0.1 + p_nag) + 0.3 / (0.1 + p_emb)
    batch = fusion.rrf_scores(nag, nag_bg, emb, emb_bg, 0.1, w=0.7)
    np.testing.assert_allclose(batch, ref, rtol=1e-12)
    rows = [fusion.rrf_scores(nag[i:i + 1], nag_bg, emb[i:i + 1], emb_bg, 0.1, w=0.7)[0] for i in range(len(nag))]
    assert np.array_equal(np.array(rows), batch)
    with pytest.raises(ValueError, match="kappa"):
        fusion.rrf_scores(nag, nag_bg, emb, emb_bg, 0.0)


def test_centred_embedding_rounds_to_float16():
    rng = np.random.default_rng(1)
    pool, targets, bg = (rng.normal(1.0, 1.0, (n, 16)).astype(np.float32) for n in (30, 5, 20))

    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def reference(p, t, b):
        p, t, b = (unit(x.astype(np.float16).astype(np.float64)) for x in (p, t, b))
        d = t.mean(0) - b.mean(0)
        return unit(p - b.mean(0)) @ (d / np.linalg.norm(d))

    scores = fusion.centred_embedding_scores(pool, targets, bg)
    np.testing.assert_allclose(scores, reference(pool, targets, bg), rtol=1e-12)
    # the float16 rounding is applied: scores equal those of pre-rounded inputs exactly, not those of float32 ones
    rounded = [x.astype(np.float16) for x in (pool, targets, bg)]
    assert np.array_equal(scores, fusion.centred_embedding_scores(*rounded))
    unrounded = _float64_scores(pool, targets, bg)
    assert not np.array_equal(scores, unrounded) and np.allclose(scores, unrounded, atol=1e-2)
    rows = [fusion.centred_embedding_scores(pool[i:i + 1], targets, bg)[0] for i in range(len(pool))]
    np.testing.assert_allclose(rows, scores, rtol=0, atol=1e-15)


def _float64_scores(pool, targets, bg):
    def unit(x):
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    p, t, b = (unit(x.astype(np.float64)) for x in (pool, targets, bg))
    d = t.mean(0) - b.mean(0)
    return unit(p - b.mean(0)) @ (d / np.linalg.norm(d))


def test_multi_hot_and_embedding_block():
    sigs = np.array([[[3, 1], [0, 2]], [[1, 0], [2, 3]]])
    dense = fusion.multi_hot(sigs, 4).toarray()
    expected = np.zeros((2, 8))
    for i, doc in enumerate(sigs):
        for layer, neurons in enumerate(doc):
            expected[i, layer * 4 + neurons] = 0.5
    np.testing.assert_allclose(dense, expected)
    block = fusion.embedding_block(np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([[1.0, 1.0]]))
    np.testing.assert_allclose(np.linalg.norm(block, axis=1), 1.0)
    first = np.array([1.0, 0.0]) - np.array([1.0, 1.0]) / np.sqrt(2)  # unit row minus the unit background mean
    np.testing.assert_allclose(block[0], first / np.linalg.norm(first))


def test_learned_fit_is_deterministic_and_scores_its_decision_function():
    rng = np.random.default_rng(2)
    pos, neg = rng.normal(0.5, 1, (12, 6)), rng.normal(0, 1, (30, 6))
    model = fusion.fit_learned(pos, neg, Cs=(0.1, 1.0), folds=3)
    assert model.C in (0.1, 1.0) and model.coef.shape == (6,)
    np.testing.assert_allclose(model.score(neg), neg @ model.coef + model.intercept, rtol=1e-12)
    np.random.seed(123)  # the fit does not depend on numpy's global state: a profile refits bit for bit
    again = fusion.fit_learned(pos, neg, Cs=(0.1, 1.0), folds=3)
    assert np.array_equal(again.coef, model.coef) and again.intercept == model.intercept
    # the same as scikit-learn's own decision function, and a sparse input gives the same model
    from scipy import sparse

    sp = fusion.fit_learned(sparse.csr_matrix(pos), sparse.csr_matrix(neg), Cs=(0.1, 1.0), folds=3)
    np.testing.assert_allclose(sp.coef, model.coef, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="cross-validation needs"):
        fusion.fit_learned(pos[:2], neg, folds=3)


def _tiny_task(n_t=6, n_pool=24, L=3, K=4, N=20, hidden=6):
    """Two classes; targets of class a; the pool mixes both. Class a holds neurons 0-3, class b neurons 10-13."""
    rng = np.random.default_rng(3)
    labels = ["a"] * n_t + ["a", "b"] * (n_pool // 2)
    roles = ["target"] * n_t + ["pool"] * n_pool
    sigs, emb = [], []
    for lab in labels:
        base = 0 if lab == "a" else 10
        sigs.append([rng.permutation(np.r_[base:base + 2, rng.choice(np.r_[4:10, 14:20], K - 2, False)])
                     for _ in range(L)])
        emb.append(np.eye(hidden)[0 if lab == "a" else 1] + rng.normal(0, 0.3, hidden) + 2.0)
    n = len(labels)
    task = RetrievalTask("tiny", "tiny", ("a", "b"), [str(i) for i in range(n)], ["x"] * n, labels, roles)
    spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="att_o", top_k=K,
                         layers=tuple(range(L)), max_length=8, add_special_tokens=False, neurons_per_layer=N)
    emb = np.array(emb, np.float32)
    feats = FeatureSet({"att_o": np.array(sigs, np.uint16)}, {"last": emb, "mid": emb}, np.full(n, 5), {"att_o": spec},
                       0.0, 0, 0)
    return task, feats


def test_learned_variant_trains_on_target_and_background_rows_only(monkeypatch):
    from sklearn.linear_model import LogisticRegressionCV

    task, feats = _tiny_task()
    seen = []
    fit = LogisticRegressionCV.fit

    def spy(self, X, y, **kw):
        seen.append((X.copy(), np.asarray(y).copy(), self.cv))
        return fit(self, X, y, **kw)

    monkeypatch.setattr(LogisticRegressionCV, "fit", spy)
    method = MethodSpec(learned_name("both", "att_o", "last2", "last"), "learned",
                        (("features", "both"), ("types", ("att_o",)), ("layers", "last2"), ("embedding", "last"),
                         ("Cs", (0.1, 1.0)), ("folds", 3)))
    pool, targets = task.pool, task.targets("a")
    background = pool[::3]  # both classes
    scores = _score(method, task, feats, pool, targets, background=background)
    (X, y, cv), = seen
    # the training rows are exactly the target rows (1) then the background rows (0): features built from them
    from nag_research.evaluate.harness import _learned_features

    expected = _learned_features(method, feats, np.r_[targets, background], background)
    np.testing.assert_allclose(X.toarray(), expected.toarray())
    assert y.tolist() == [1] * len(targets) + [0] * len(background)
    # the folds split those rows only; no pool row outside the background is ever in a fold
    assert all(len(tr) + len(te) == len(y) for tr, te in cv)
    # relabelling the pool (the evaluation labels) changes nothing: the scorer never reads them
    relabelled = RetrievalTask(task.name, task.description, task.classes, task.ids, task.texts,
                               [lab if r == "target" else "b" for lab, r in zip(task.labels, task.roles)], task.roles)
    assert np.array_equal(_score(method, relabelled, feats, pool, targets, background=background), scores)
    # the learned direction separates the classes on the pool (class a held neurons 0-3 and direction 0)
    is_a = np.array(task.labels)[pool] == "a"
    assert scores[is_a].mean() > scores[~is_a].mean()


def test_fused_harness_scores_are_per_row_from_background_statistics():
    task, feats = _tiny_task()
    pool, targets = task.pool, task.targets("a")
    background = pool[1::3]
    base = (("types", ("att_o",)), ("weighting", "shrinkage"), ("params", (("m", 20.0), ("alpha", 0.5))),
            ("layers", "all"), ("embedding", "last"))
    zsum = MethodSpec("z", "fusion_zsum", (*base, ("w", 0.4)))
    whole = _score(zsum, task, feats, pool, targets, background=background)
    # scoring the pool in two halves gives the same scores: nothing depends on the pool being scored
    halves = np.r_[_score(zsum, task, feats, pool[:10], targets, background=background),
                   _score(zsum, task, feats, pool[10:], targets, background=background)]
    np.testing.assert_allclose(halves, whole, rtol=0, atol=1e-12)
    nag = MethodSpec("n", "contrastive", base[:4])
    emb = MethodSpec("e", "centred_embedding", (("layer", "last"),))
    ref = fusion.zsum_scores(_score(nag, task, feats, pool, targets, background=background),
                             _score(nag, task, feats, background, targets, background=background),
                             _score(emb, task, feats, pool, targets, background=background),
                             _score(emb, task, feats, background, targets, background=background), 0.4)
    np.testing.assert_allclose(whole, ref, rtol=1e-12)



def test_research_hybrid_equals_the_harness_default_method():
    """``fusion.hybrid_scores`` (used by the downstream arm and notebook 08) is the harness's shipped default."""
    task, feats = _tiny_task(L=4)
    sigs = feats.signatures["att_o"]
    spec = feats.specs["att_o"].replace(neuron_type="fwd_down")
    feats = FeatureSet({"fwd_down": sigs}, feats.embeddings, feats.tokens, {"fwd_down": spec}, 0.0, 0, 0)
    cfg = {**fusion.HYBRID_DEFAULT, "last_layers": 2, "Cs": (0.1, 1.0)}
    method = MethodSpec("d", "fusion_zsum_learned",
                        (("types", ("fwd_down",)), ("weighting", "shrinkage"), ("params", (("m", 50.0), ("alpha", 0.5))),
                         ("layers", "last2"), ("embedding", "last"), ("w", 0.2), ("Cs", (0.1, 1.0)), ("folds", 3)))
    pool, targets = task.pool, task.targets("a")
    emb = feats.embeddings["last"]
    for background in (pool, pool[1::3]):
        ref = _score(method, task, feats, pool, targets, background=background)
        got = fusion.hybrid_scores(sigs[pool], sigs[targets], sigs[background], spec, emb[pool], emb[targets],
                                   emb[background], cfg)
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    parts = fusion.hybrid_components(sigs[pool], sigs[targets], sigs[pool], spec, emb[pool], emb[targets], emb[pool],
                                     cfg)
    np.testing.assert_array_equal(parts["nag"], parts["nag_background"])  # the pool as its own background
    assert float(parts["C"]) in (0.1, 1.0)
    is_a = np.array(task.labels)[pool] == "a"
    full = fusion.hybrid_scores(sigs[pool], sigs[targets], sigs[pool], spec, emb[pool], emb[targets], emb[pool], cfg)
    assert full[is_a].mean() > full[~is_a].mean()

# -- the selection rule -------------------------------------------------------------------------------------------


def _fake_results(variants):
    """Results with one task, two classes; every variant has the same AP in every condition (its criterion)."""
    per_method, rob_t, rob_b = {}, {}, {}
    for name, (family, options, value) in variants.items():
        per_method[name] = {"family": family, "options": options,
                            "per_class": {c: {"ap": value} for c in ("c0", "c1")}}
        rob_t[name] = {"per_class": {c: [value, value] for c in ("c0", "c1")}}
        rob_b[name] = {"per_class": {c: [value, value] for c in ("c0", "c1")}}
    task = {"per_method": per_method,
            "robustness": {"targets": {"sizes": [10, 40], "methods": rob_t},
                           "background": {"sizes": [50, 300], "methods": rob_b}}}
    return {"methods": list(variants), "tasks": {"t": task}}


def _contrastive(types, m, value):
    return ("contrastive", {"types": list(types), "weighting": "shrinkage", "params": [["m", m], ["alpha", 0.5]],
                            "layers": "last10"}, value)


def _zsum(w, value, types=("att_o",)):
    return ("fusion_zsum", {"types": list(types), "weighting": "shrinkage", "params": [["m", 50.0], ["alpha", 0.5]],
                            "layers": "last10", "embedding": "last", "w": w}, value)


CFG = EvalConfig(name="t", tasks=(), selection_background=50, selection_tie=0.005)


def test_rule_picks_among_shippable_variants_only():
    sel = select_default(_fake_results({
        "two types": _contrastive(("fwd_up", "att_o"), 20.0, 0.90),
        "zsum two types": _zsum(0.5, 0.95, types=("fwd_up", "att_o")),
        "att_o m=20": _contrastive(("att_o",), 20.0, 0.80),
        "emb": ("centred_embedding", {"layer": "last"}, 0.70),
    }), CFG)
    assert sel["best_all"] == "zsum two types" and sel["pick_all"] == "att_o m=20"
    assert set(sel["shippable"]) == {"att_o m=20", "emb"}
    assert all(h["pick"] == "att_o m=20" for h in sel["holdout"].values())


def test_rule_ties_go_to_the_simplest_level_then_the_simplest_parameters():
    variants = {
        "att_o m=50": _contrastive(("att_o",), 50.0, 0.800),
        "att_o m=20": _contrastive(("att_o",), 20.0, 0.799),
        "zsum w=0.3": _zsum(0.3, 0.803),
        "zsum w=0.5": _zsum(0.5, 0.801),
    }
    # the fusion leads by less than the tie: the single signal wins, with its weakest prior among its ties
    assert select_default(_fake_results(variants), CFG)["pick_all"] == "att_o m=20"
    # a clear lead for the fusion: it wins; among its tied weights the one closest to equal weights
    variants["zsum w=0.3"] = _zsum(0.3, 0.812)
    variants["zsum w=0.5"] = _zsum(0.5, 0.809)
    assert select_default(_fake_results(variants), CFG)["pick_all"] == "zsum w=0.5"
    # a learned variant ahead by more than the tie beats them all
    variants["learned"] = ("learned", {"features": "both", "types": ["att_o"], "layers": "last10",
                                       "embedding": "last"}, 0.83)
    assert select_default(_fake_results(variants), CFG)["pick_all"] == "learned"


def test_rule_first_keeps_variants_not_below_the_strongest_method_without_nag():
    """Issue 23: a simpler tied variant that ranks below the embedding in one cell is not picked; without any
    variant that holds every cell the rule falls back to all shippable ones."""
    variants = {"emb": ("centred_embedding", {"layer": "last"}, 0.80),
                "att_o m=20": _contrastive(("att_o",), 20.0, 0.83),
                "zsum w=0.5": _zsum(0.5, 0.832)}
    results = _fake_results(variants)
    for c in ("c0", "c1"):  # att_o is below the embedding with the fewest targets
        results["tasks"]["t"]["robustness"]["targets"]["methods"]["att_o m=20"]["per_class"][c][0] = 0.79
    wide_tie = dataclasses.replace(CFG, selection_tie=0.02)  # att_o (criterion 0.817) ties with the fusion (0.832)
    sel = select_default(results, wide_tie)
    assert sel["eligible"] == ["emb", "zsum w=0.5"] and not sel["eligible_fallback"]
    assert sel["pick_all"] == "zsum w=0.5"
    for c in ("c0", "c1"):  # now nothing holds every cell but the embedding itself: it is picked, as the simplest
        results["tasks"]["t"]["robustness"]["targets"]["methods"]["zsum w=0.5"]["per_class"][c][0] = 0.79
    assert select_default(results, wide_tie)["pick_all"] == "emb"


def test_shippability_and_kinds():
    assert is_shippable("fusion_rrf", {"types": ("att_o",)}) and is_shippable("centred_embedding", {})
    assert not is_shippable("fusion_zsum", {"types": ("fwd_up", "att_o")})
    assert not is_shippable("embedding", {"layer": "last"})  # a baseline, not a candidate of the rule
    assert set(SELECTABLE) == {"contrastive", "centred_embedding", "fusion_zsum", "fusion_rrf", "learned",
                               "fusion_zsum_learned"}
    a, b = _zsum(0.3, 0), _zsum(0.7, 0)
    assert method_kind(a[0], a[1]) == method_kind(b[0], b[1])
    c = _zsum(0.3, 0, types=("fwd_down",))
    assert method_kind(a[0], a[1]) != method_kind(c[0], c[1])
