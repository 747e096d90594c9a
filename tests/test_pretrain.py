"""Issue 9 runner: training recipe, equal token budgets, decontaminated pool, resumability (tiny config)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from nag_datasets.experiments import pretrain
from nag_datasets.experiments.corpus import build_corpus, shared_ngrams
from nag_datasets.experiments.train import build_model, mean_loss, pack, train

pytestmark = pytest.mark.fast

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

    from nag_datasets.experiments.arms import ArmContext, arm_scores

    results = pretrain.run(TINY, tmp_path, arms=["nag_all", "nag_last", "embedding"], seeds=[0], log=lambda _: None)
    expected = (TINY.budget_tokens // TINY.seq_len) * TINY.seq_len
    assert [r["train_tokens"] for r in results] == [expected] * 3
    corpus = json.loads((tmp_path / "corpus.json").read_text())
    ctx = ArmContext(corpus["pool_texts"], corpus["target_select"], tmp_path / "features",
                     max_length=TINY.feature_max_length)
    sigs, spec = ctx.signatures("pool")  # cached: no second featurization
    assert sigs.shape == (len(corpus["pool_texts"]), spec.num_layers, spec.top_k)
    a, b = arm_scores("nag_all", ctx, 0), arm_scores("nag_last", ctx, 0)
    assert a.shape == b.shape and not np.allclose(a, b)
