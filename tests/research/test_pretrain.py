"""Issue 9 runner: training recipe, equal token budgets, decontaminated pool, resumability (tiny config)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from nag_research.experiments import pretrain
from nag_research.experiments.corpus import build_corpus, shared_ngrams
from nag_research.experiments.train import build_model, mean_loss, pack, train

TINY = pretrain.CONFIGS["tiny"]
MODEL = {"hidden": 32, "layers": 2, "heads": 2, "intermediate": 64, "seq_len": 16}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain_tiny")
    logs: list[str] = []
    results = pretrain.run(TINY, out, log=logs.append)
    return out, results, logs


def test_loss_decreases_on_repeated_batch():
    g = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 50, (4, 16), generator=g)
    seqs = batch.repeat(10, 1)  # the same 4 sequences, 10 times
    model = build_model(50, seed=0, **MODEL)
    losses = train(model, seqs, batch_size=4, lr=1e-2, seed=0)
    assert len(losses) == 10
    assert losses[-1] < losses[0] - 0.5


def test_training_and_evaluation_deterministic_for_a_seed():
    g = torch.Generator().manual_seed(1)
    seqs = torch.randint(0, 50, (16, 16), generator=g)
    docs = [list(range(3, 15)), list(range(20, 40))]

    def once(seed: int) -> float:
        model = build_model(50, seed=seed, **MODEL)
        train(model, seqs, batch_size=4, lr=3e-3, seed=seed)
        return mean_loss(model, docs, seq_len=16, eos_id=0)

    a, b, c = once(0), once(0), once(1)
    assert a == b
    assert a != c


def test_pack_is_exact_and_cycles_short_selections():
    out = pack([[1, 2, 3], [4, 5]], seq_len=8, n_seqs=5, eos_id=0, seed=0)
    assert out.shape == (5, 8)  # 7 tokens with EOS, cycled up to 40
    assert sorted(set(out.flatten().tolist())) == [0, 1, 2, 3, 4, 5]
    assert torch.equal(out, pack([[1, 2, 3], [4, 5]], seq_len=8, n_seqs=5, eos_id=0, seed=0))


def test_every_arm_sees_the_same_number_of_training_tokens(tiny_run):
    _, results, _ = tiny_run
    expected = (TINY.budget_tokens // TINY.seq_len) * TINY.seq_len
    assert {(r["arm"], r["seed"]) for r in results} == {(a, s) for a in TINY.arms for s in TINY.seeds}
    assert {r["train_tokens"] for r in results} == {expected}
    assert len({r["steps"] for r in results}) == 1
    summary = json.loads((tiny_run[0] / "summary.json").read_text())
    assert set(summary) == set(TINY.arms)
    assert all(summary[a]["train_tokens"] == [expected] for a in summary)


def test_compare_reports_difference_spread_and_separation():
    rs = ([{"arm": "a", "target_loss": v} for v in (1.0, 1.2, 1.1)]
          + [{"arm": "b", "target_loss": v} for v in (1.15, 1.5, 1.6)])
    c = pretrain.compare(rs, "a", "b")
    assert c["diff"] == pytest.approx(1.1 - (1.15 + 1.5 + 1.6) / 3)
    assert c["max_std"] == pytest.approx(float(torch.tensor([1.15, 1.5, 1.6]).std()))
    assert c["separated"] is False  # 1.2 > 1.15: the ranges overlap
    assert pretrain.compare(rs[:2] + rs[4:], "a", "b")["separated"] is True
    summary = pretrain.summarize([dict(r, seed=i, general_loss=0.0, train_tokens=8, selected_tokens_by_source={})
                                  for i, r in enumerate(rs)])
    assert summary["a"]["target_vs"]["b"] == c
    assert summary["b"]["target_vs"]["a"]["diff"] == pytest.approx(-c["diff"])


def test_learning_curve_checkpoints_are_recorded(tiny_run):
    _, results, _ = tiny_run
    steps = results[0]["steps"]
    for r in results:
        marks = [c["step"] for c in r["curve"]]
        assert marks == sorted(set(marks)) and marks[-1] == steps and len(marks) >= 2
        assert r["target_loss"] == r["curve"][-1]["target_loss"]
        assert r["curve"][-1]["tokens"] == r["train_tokens"]
        assert len(r["train_losses"]) == steps


def test_checkpoint_evaluation_does_not_change_training():
    g = torch.Generator().manual_seed(2)
    seqs = torch.randint(0, 50, (16, 16), generator=g)
    docs = [list(range(3, 15))]
    a = build_model(50, seed=0, **MODEL)
    la = train(a, seqs, batch_size=4, lr=3e-3, seed=0)
    b = build_model(50, seed=0, **MODEL)
    seen: list[int] = []
    lb = train(b, seqs, batch_size=4, lr=3e-3, seed=0, checkpoints=[1, 2],
               on_checkpoint=lambda s: seen.append((s, mean_loss(b, docs, seq_len=16))))
    assert [s for s, _ in seen] == [1, 2]
    assert la == lb
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_pool_shares_no_13gram_with_the_target_benchmark():
    from nag_datasets.demo_data import iter_source_documents

    c = build_corpus(TINY.pool_per_source, n_target_select=TINY.n_target_select,
                     n_target_eval=TINY.n_target_eval, n_general_eval=TINY.n_general_eval, scan=TINY.scan)
    gsm_texts = [r["text"] for r in iter_source_documents("gsm8k")]
    assert shared_ngrams(c.pool_texts, gsm_texts) == 0
    assert shared_ngrams(c.general_eval, gsm_texts) == 0
    assert not set(c.pool_texts) & set(gsm_texts)
    assert not set(c.target_select) & set(c.target_eval)  # selection and evaluation targets are disjoint
    assert not set(c.general_eval) & set(c.pool_texts)
    assert set(c.pool_sources) <= {"wordnet", "kjv", "gcide", "humaneval", "mmlu"}
    # the checker itself finds a planted overlap
    assert shared_ngrams([c.pool_texts[0], "x " + gsm_texts[0]], gsm_texts) == 1


def test_rerun_skips_finished_units(tiny_run, monkeypatch):
    out, first, _ = tiny_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}

    def no_training(*a, **k):
        raise AssertionError("a finished unit was trained again")

    monkeypatch.setattr(pretrain, "train", no_training)
    logs: list[str] = []
    again = pretrain.run(TINY, out, log=logs.append)
    assert again == first and logs == []
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    # a new seed runs exactly one unit per arm; the old files stay untouched
    monkeypatch.undo()
    logs = []
    pretrain.run(TINY, out, arms=["random"], seeds=[0, 7], log=logs.append)
    assert "1 unit(s) to run" in logs[0] and len(logs) == 2
    assert before == {p.name: p.stat().st_mtime_ns for p in (out / "units").glob("*.json") if p.name in before}
    # another config in the same folder is refused
    with pytest.raises(ValueError, match="config key"):
        pretrain.run(dataclasses.replace(TINY, lr=1e-3), out, log=logs.append)


@pytest.mark.slow
def test_model_arms_run_on_tiny_with_equal_budgets(tmp_path):
    """nag_all, nag_last (sliced from the all-layer signatures) and embedding on the bundled model."""
    import numpy as np
    from nag_research.experiments.arms import ArmContext, arm_scores

    arms = ["nag_all", "nag_last", "embedding", "nag_contrast", "embedding_contrast"]
    results = pretrain.run(TINY, tmp_path, arms=arms, seeds=[0], log=lambda _: None)
    expected = (TINY.budget_tokens // TINY.seq_len) * TINY.seq_len
    assert [r["train_tokens"] for r in results] == [expected] * len(arms)
    corpus = json.loads((tmp_path / "corpus.json").read_text())
    ctx = ArmContext(corpus["pool_texts"], corpus["target_select"], tmp_path / "features",
                     max_length=TINY.feature_max_length)
    sigs, spec = ctx.signatures("pool")  # cached: no second featurization
    assert sigs.shape == (len(corpus["pool_texts"]), spec.num_layers, spec.top_k)
    a, b = arm_scores("nag_all", ctx, 0), arm_scores("nag_last", ctx, 0)
    assert a.shape == b.shape and not np.allclose(a, b)
    # The one-pass features equal the separate passes: signatures = the featurizer's, embeddings = mean pooling's.
    from nag_research.analysis.measure import mean_pooled_embeddings

    from nag_datasets.featurize.models import load_model

    model, tok = load_model()
    n = 24  # a slice of the pool (CI token budget): other batches than the one pass, so equal up to fp32 noise
    texts = corpus["pool_texts"][:n]
    emb = mean_pooled_embeddings(model, tok, texts, max_length=TINY.feature_max_length)
    np.testing.assert_allclose(ctx.embeddings("pool")[:n], emb, rtol=0, atol=1e-4)
    from datasets import Dataset

    from nag_datasets.featurize.featurizer import NAGFeaturizer

    feat = NAGFeaturizer(model, tokenizer=tok, neuron_types=("att_o",), max_length=TINY.feature_max_length)
    att = np.array(feat.apply(Dataset.from_dict({"text": texts}))["nag_att_o"][:])
    same_rows = (ctx.signatures("pool", "att_o")[0][:n] == att).all(axis=(1, 2)).sum()
    assert same_rows >= n - 1  # other batches: equal up to counted near-ties (NAG_METHOD.md)
    # The contrastive arm is the library's contrastive profile against the whole pool.
    from nag_research.experiments.arms import CONTRAST

    from nag_datasets.scoring.target_profile import NAGProfile

    pool_att, att_spec = ctx.signatures("pool", "att_o")
    profile = NAGProfile.from_signatures(ctx.signatures("targets", "att_o")[0], att_spec).contrast(
        NAGProfile.from_signatures(pool_att, att_spec), CONTRAST["weighting"], **CONTRAST["params"])
    np.testing.assert_array_equal(arm_scores("nag_contrast", ctx, 0), profile.score(pool_att).astype(np.float64))


RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "pretrain" / "full"


def test_committed_full_results_are_complete_and_match_their_summary():
    """The committed full run: made with the current full config, every unit present, equal training tokens,
    summary.json recomputable from the units, and the results guide (docs/results.md) quoting its numbers."""
    cfg = pretrain.CONFIGS["full"]
    manifest = json.loads((RESULTS / "manifest.json").read_text())
    assert manifest["key"] == cfg.key(), "the full config changed since the committed run: re-run it"
    units = [json.loads((RESULTS / "units" / f"{a}-seed{s}.json").read_text()) for a in cfg.arms for s in cfg.seeds]
    assert {u["config_key"] for u in units} == {cfg.key()}
    assert {u["train_tokens"] for u in units} == {cfg.epochs * cfg.budget_tokens // cfg.seq_len * cfg.seq_len}
    assert all(u["pool_tokens"] >= 3 * cfg.budget_tokens for u in units)  # the pool is several times the budget
    summary = pretrain.summarize(units)
    assert json.loads((RESULTS / "summary.json").read_text()) == json.loads(json.dumps(summary))
    guide = (RESULTS.parents[3] / "docs" / "results.md").read_text()
    for arm, row in summary.items():
        assert f"{row['target_loss']['mean']:.3f}" in guide, f"docs/results.md does not quote {arm}'s target loss"


@pytest.mark.fast
def test_distilled_arm_learns_the_contrastive_ranking(monkeypatch):
    """``nag_distilled``: a model trained on the exact arm's (``DISTILL["exact_arm"]``) scores of a seeded 20% sample
    scores the whole pool; the same seed gives the same scores. (Synthetic exact scores on real MMLU text: questions
    of the mathematics subjects high.)"""
    import numpy as np
    from nag_research.experiments import arms

    pytest.importorskip("sklearn")
    from nag_datasets.demo_data import load_source

    ds = load_source("mmlu")
    rows = np.random.default_rng(0).permutation(len(ds))[:600]
    texts = [ds["text"][int(i)] for i in rows]
    exact = np.array([1.0 if "math" in ds["subject"][int(i)] else 0.0 for i in rows])
    exact += np.random.default_rng(1).normal(0, 0.2, len(rows))
    original = arms.arm_scores

    def fake(arm, ctx, seed):
        if arm == arms.DISTILL["exact_arm"]:
            return exact
        assert arm == "nag_distilled", f"the distilled arm asked for {arm!r}"
        return original(arm, ctx, seed)

    monkeypatch.setattr(arms, "arm_scores", fake)
    ctx = arms.ArmContext(texts, texts[:5], Path("unused"), max_length=32)
    a, b, c = (original("nag_distilled", ctx, s) for s in (0, 0, 1))
    assert a.shape == (600,) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # another seed: another sample
    math = exact > 0.5
    # the math questions rank high: the share of (math, other) pairs ordered right (AUC) is far above chance (0.5)
    auc = (a[math][:, None] > a[~math][None, :]).mean()
    assert auc > 0.6, auc
