"""datatrove integration: scoring and threshold steps, and the three budget stages, against the library's own
selection (``select_top_fraction`` on the same rows), through real ``LocalPipelineExecutor`` runs."""

from __future__ import annotations

import doctest
import inspect
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("datatrove")
pytest.importorskip("orjson")

from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from helpers import make_spec, random_signatures

from nag_datasets.pipelines import (
    BudgetStageError,
    MissingScoreError,
    NAGBudgetCut,
    NAGBudgetFilter,
    NAGBudgetScores,
    NAGDocumentScorer,
    NAGScoreFilter,
    ProfileTextScorer,
    TextScorer,
    budget_files,
    datatrove_budget,
    datatrove_steps,
    text_scorer,
)
from nag_datasets.scoring.map_callables import passes_threshold
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.signatures.spec import SpecError

REPO = Path(__file__).resolve().parents[2]
WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


class WordScorer:
    """A stand-in for any TextScorer (e.g. a distilled linear one): few distinct scores, so the budget's tie-break
    by position matters; whitespace-only texts have no score."""

    def score_texts(self, texts):
        import numpy as np

        return np.array([len(set(t.split())) % 4 if t.strip() else np.nan for t in texts], dtype=np.float32)

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]


def _texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 9)))) for _ in range(n)]
    for i in range(3, n, 11):
        texts[i] = "   "  # no score: outside the pool
    return texts


def _write_inputs(folder: Path, shards: list[list[str]]) -> list[dict[str, str]]:
    """JSON lines shards (one per task); returns the rows in rank order."""
    folder.mkdir(parents=True)
    rows = []
    for s, texts in enumerate(shards):
        part = [{"id": f"s{s}-{i}", "text": t} for i, t in enumerate(texts)]
        (folder / f"part-{s:05d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
        rows += part
    return rows


def _reference(rows: list[dict[str, str]], fraction: float):
    from datasets import Dataset

    texts = [r["text"] for r in rows]
    scorer = WordScorer()
    ds = Dataset.from_dict(
        {
            "id": [r["id"] for r in rows],
            "score": scorer.score_texts(texts).astype(np.float64),
            "tokens": scorer.count_tokens(texts),
        }
    )
    return select_top_fraction(ds, fraction, token_column="tokens", score_column="score", return_report=True)


def _run_budget(work: Path, fraction: float, tasks: int) -> list[dict]:
    inputs, budget = str(work / "input"), str(work / "budget")
    LocalPipelineExecutor(
        [JsonlReader(inputs), NAGDocumentScorer(WordScorer(), batch_size=4), NAGBudgetScores(budget)],
        tasks=tasks,
        workers=1,
        logging_dir=str(work / "logs1"),
    ).run()
    LocalPipelineExecutor([NAGBudgetCut(budget, fraction)], logging_dir=str(work / "logs2")).run()
    LocalPipelineExecutor(
        [JsonlReader(inputs), NAGBudgetFilter(budget), JsonlWriter(str(work / "out"), compression=None)],
        tasks=tasks,
        workers=1,
        logging_dir=str(work / "logs3"),
    ).run()
    docs = [json.loads(line) for f in sorted((work / "out").glob("*.jsonl")) for line in f.read_text().splitlines()]
    return sorted(docs, key=lambda d: d["metadata"]["nag_selection_rank"])


@pytest.mark.parametrize(
    "module",
    [budget_files, datatrove_steps, datatrove_budget, pytest.param(text_scorer, marks=pytest.mark.slow)],  # real model
)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_scorer_step_writes_score_and_tokens_and_the_filter_keeps_the_threshold():
    texts = _texts(30, seed=1)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    scorer = WordScorer()
    assert isinstance(scorer, TextScorer)
    scored = list(NAGDocumentScorer(scorer, batch_size=7).run(docs))
    expected = scorer.score_texts(texts)
    assert [d.metadata["nag_score"] for d in scored] == [None if np.isnan(s) else float(s) for s in expected]
    assert [d.metadata["nag_num_tokens"] for d in scored] == scorer.count_tokens(texts)
    kept = list(NAGScoreFilter(2.0).run(scored))
    assert [d.id for d in kept] == [str(i) for i in np.flatnonzero(passes_threshold(expected, 2.0))]


@pytest.mark.parametrize("fraction", [0.0, 0.35, 0.8, 1.0])
def test_budget_stages_equal_select_top_fraction(tmp_path, fraction):
    shards = [_texts(23, seed=2), [], _texts(31, seed=3)]  # task 1 reads an empty file
    rows = _write_inputs(tmp_path / "input", shards)
    got = _run_budget(tmp_path, fraction, tasks=3)
    expected, report = _reference(rows, fraction)
    assert [d["id"] for d in got] == list(expected["id"])  # same rows, same best-first order (ties by position)
    assert [d["metadata"]["nag_score"] for d in got] == list(expected["score"])
    assert sum(d["metadata"]["nag_num_tokens"] for d in got) == report.tokens_selected
    written = json.loads((tmp_path / "budget" / "selection.json").read_text())
    for key in (
        "documents_selected",
        "tokens_selected",
        "pool_documents",
        "pool_tokens",
        "threshold",
        "null_rows_skipped",
        "null_tokens_skipped",
    ):
        assert written[key] == getattr(report, key), key
    assert written["world_size"] == 3 and written["task_documents"] == [23, 0, 31]


def test_tied_scores_are_cut_by_rank_order(tmp_path):
    # Every document ties: the cut keeps a prefix in (task, position) order, as select_top_fraction does by row.
    rows = _write_inputs(tmp_path / "input", [["alpha beta"] * 5, ["gamma delta"] * 5])
    got = _run_budget(tmp_path, 0.5, tasks=2)
    expected, _ = _reference(rows, 0.5)
    assert [d["id"] for d in got] == list(expected["id"]) == [f"s0-{i}" for i in range(5)]


def test_steps_refuse_bad_input(tmp_path):
    with pytest.raises(TypeError, match="TextScorer"):
        NAGDocumentScorer(object())
    with pytest.raises(TypeError, match="either"):
        NAGDocumentScorer()
    with pytest.raises(TypeError, match="NAG scorer"):
        NAGDocumentScorer(WordScorer(), signature_key="sig")
    with pytest.raises(ValueError, match="fraction"):
        NAGBudgetCut(str(tmp_path), 1.5)
    with pytest.raises(ValueError, match="NaN"):
        NAGScoreFilter(float("nan"))

    class Short:
        def score_texts(self, texts):
            return np.zeros(len(texts) - 1)

        def count_tokens(self, texts):
            return [1] * len(texts)

    with pytest.raises(ValueError, match="one float per text"):
        list(NAGDocumentScorer(Short()).run([Document(text="a", id="0"), Document(text="b", id="1")]))
    with pytest.raises(MissingScoreError, match="NAGDocumentScorer"):
        list(NAGBudgetScores(str(tmp_path / "b")).run([Document(text="a", id="0")]))
    with pytest.raises(MissingScoreError, match="nag_score"):
        list(NAGScoreFilter(0.1).run([Document(text="a", id="0")]))
    with pytest.raises(ValueError, match="tasks=1"):
        list(NAGBudgetCut(str(tmp_path), 0.5).run(None, 0, 2))


def test_budget_stages_refuse_incomplete_or_different_inputs(tmp_path):
    budget = tmp_path / "budget"
    docs = [
        Document(text=t, id=f"d{i}", metadata={"nag_score": 0.5, "nag_num_tokens": 2})
        for i, t in enumerate(["a", "b", "c"])
    ]
    list(NAGBudgetScores(str(budget)).run(docs, rank=0, world_size=2))
    with pytest.raises(BudgetStageError, match=r"tasks \[1\]"):  # task 1 never finished
        list(NAGBudgetCut(str(budget), 0.5).run(None))
    list(NAGBudgetScores(str(budget)).run(docs[:2], rank=1, world_size=2))
    name = budget / budget_files.scores_name(1)
    name.write_bytes(name.read_bytes()[:-5])  # what a task killed mid-write leaves
    with pytest.raises(BudgetStageError, match="did not finish"):
        list(NAGBudgetCut(str(budget), 0.5).run(None))
    list(NAGBudgetScores(str(budget)).run(docs[:2], rank=1, world_size=2))
    list(NAGBudgetCut(str(budget), 1.0).run(None))
    assert [d.id for d in NAGBudgetFilter(str(budget)).run(docs, rank=0, world_size=2)] == ["d0", "d1", "d2"]
    with pytest.raises(BudgetStageError, match="same tasks"):
        list(NAGBudgetFilter(str(budget)).run(docs, rank=0, world_size=3))
    with pytest.raises(BudgetStageError, match="not the one stage 1 scored"):
        list(NAGBudgetFilter(str(budget)).run(docs[::-1], rank=0, world_size=2))
    with pytest.raises(BudgetStageError, match="read 2 documents, stage 1 scored 3"):
        list(NAGBudgetFilter(str(budget)).run(docs[:2], rank=0, world_size=2))


def test_profile_scorer_refuses_a_featurizer_of_another_spec():
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    spec = make_spec(top_k=4)
    profile = NAGProfile.from_signatures(random_signatures(3, spec), spec)
    with pytest.raises(SpecError, match="top_k"):
        ProfileTextScorer(profile, NAGFeaturizer(top_k=20))
    with pytest.raises(SpecError, match="fwd_up"):
        ProfileTextScorer(profile, NAGFeaturizer(neuron_types="att_o", top_k=4))
    with pytest.raises(TypeError, match="featurizer"):
        NAGDocumentScorer(profile=profile)


KILL_SCRIPT = """
import os, signal, sys, time
from pathlib import Path
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from nag_datasets.pipelines import NAGBudgetCut, NAGBudgetFilter, NAGBudgetScores, NAGDocumentScorer
WORD_SCORER
work, mode = Path(sys.argv[1]), sys.argv[2]


def started(data, rank, world_size):
    with open(work / "started.log", "a") as f:
        f.write(f"{rank}\\n")
    return data


def killer(data, rank, world_size):
    for i, doc in enumerate(data):
        if mode == "kill" and rank == 1 and i == 3:
            # Task 0 completes first (its marker is written), then the whole run dies: a crash mid task 1.
            marker, deadline = work / "logs1" / "completions" / "00000", time.time() + 300
            while not marker.exists() and time.time() < deadline:
                time.sleep(0.05)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        yield doc


if __name__ == "__main__":  # the executor's worker processes import this file again
    inputs, budget = str(work / "input"), str(work / "budget")
    LocalPipelineExecutor([started, JsonlReader(inputs), NAGDocumentScorer(WordScorer(), batch_size=4), killer,
                           NAGBudgetScores(budget)], tasks=2, workers=2, logging_dir=str(work / "logs1")).run()
    LocalPipelineExecutor([NAGBudgetCut(budget, 0.4)], logging_dir=str(work / "logs2")).run()
    LocalPipelineExecutor([JsonlReader(inputs), NAGBudgetFilter(budget),
                           JsonlWriter(str(work / "out"), compression=None)],
                          tasks=2, workers=2, logging_dir=str(work / "logs3")).run()
"""


def test_a_killed_run_resumes_and_gives_the_same_selection(tmp_path):
    rows = _write_inputs(tmp_path / "input", [_texts(12, seed=6), _texts(12, seed=7)])
    script = tmp_path / "pipeline.py"
    script.write_text(KILL_SCRIPT.replace("WORD_SCORER", inspect.getsource(WordScorer)))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(tmp_path), mode],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            start_new_session=True,
            check=False,
        )

    killed = run("kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    completions = tmp_path / "logs1" / "completions"
    assert sorted(p.name for p in completions.iterdir()) == ["00000"]
    task0 = tmp_path / "budget" / budget_files.scores_name(0)
    assert task0.is_file() and not (tmp_path / "budget" / budget_files.scores_name(1)).exists()
    written_before = task0.stat().st_mtime_ns

    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted((tmp_path / "started.log").read_text().split()) == ["0", "1", "1"]  # task 0 ran once: skipped
    assert task0.stat().st_mtime_ns == written_before
    got = [json.loads(line) for f in sorted((tmp_path / "out").glob("*.jsonl")) for line in f.read_text().splitlines()]
    got.sort(key=lambda d: d["metadata"]["nag_selection_rank"])
    expected, report = _reference(rows, 0.4)
    assert [d["id"] for d in got] == list(expected["id"]) and report.documents_selected > 0


# -- the real model ----------------------------------------------------------------------------------------------


def test_profile_scores_are_bit_equal_and_the_selection_equals_select_top_fraction(tmp_path, featurizer):
    from nag_datasets import count_tokens
    from nag_datasets.demo_data import load_demo

    pool = load_demo("pool").select([0, 5, 43, 60, 99, 120, 140, 150, 170, 185, 200, 213])
    target = featurizer.apply(load_demo("target").select(range(6)))
    scored_pool = count_tokens(featurizer.apply(pool), featurizer.tokenizer, column="text")
    paper = NAGProfile.from_dataset(target, column="nag_fwd_up")
    contrastive = paper.contrast(NAGProfile.from_dataset(scored_pool, column="nag_fwd_up"))
    rows = _write_inputs(tmp_path / "input", [list(pool["text"][:7]), list(pool["text"][7:])])
    assert len(rows) == len(pool)
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    steps = [
        JsonlReader(str(tmp_path / "input")),
        NAGDocumentScorer(
            profile=paper,
            featurizer=NAGFeaturizer(torch_threads=1, max_length=featurizer.max_length),
            batch_size=4,
            score_key="paper",
            signature_key="sig",
        ),
        NAGDocumentScorer(profile=contrastive, featurizer=NAGFeaturizer(torch_threads=1, max_length=featurizer.max_length), batch_size=5),
        NAGBudgetScores(str(tmp_path / "budget")),
        JsonlWriter(str(tmp_path / "scored"), compression=None),
    ]
    LocalPipelineExecutor(steps, tasks=2, workers=1, logging_dir=str(tmp_path / "logs1")).run()
    docs = [
        json.loads(line) for f in sorted((tmp_path / "scored").glob("*.jsonl")) for line in f.read_text().splitlines()
    ]
    meta = [d["metadata"] for d in docs]
    sigs = np.array([m["sig"] for m in meta])
    assert np.array_equal(sigs, np.array(list(scored_pool["nag_fwd_up"])))
    for key, profile in (("paper", paper), ("nag_score", contrastive)):
        got = np.array([m[key] for m in meta], dtype=np.float32)
        assert got.tobytes() == profile.score(scored_pool).tobytes() == profile.score(sigs).tobytes()
    assert [m["nag_num_tokens"] for m in meta] == list(scored_pool["num_tokens"])

    LocalPipelineExecutor(
        [NAGBudgetCut(str(tmp_path / "budget"), 0.3, profile=contrastive)], logging_dir=str(tmp_path / "logs2")
    ).run()
    kept = list(
        NAGBudgetFilter(str(tmp_path / "budget")).run(
            (Document(text=d["text"], id=d["id"]) for d in docs[:7]), rank=0, world_size=2
        )
    )
    kept += list(
        NAGBudgetFilter(str(tmp_path / "budget")).run(
            (Document(text=d["text"], id=d["id"]) for d in docs[7:]), rank=1, world_size=2
        )
    )
    kept.sort(key=lambda d: d.metadata["nag_selection_rank"])
    expected, report = select_top_fraction(
        scored_pool, 0.3, token_column="num_tokens", profile=contrastive, return_report=True
    )
    assert [d.text for d in kept] == list(expected["text"]) and report.documents_selected > 0
    written = json.loads((tmp_path / "budget" / "selection.json").read_text())
    assert written["threshold"] == report.threshold and written["score_kind"] == "contrastive"
    assert written["profile_fingerprint"] == contrastive.fingerprint


@pytest.mark.slow
def test_example_runs_end_to_end_and_equals_select_top_fraction(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(REPO / "examples" / "datatrove_select.py"), "--pool-docs", "16", "--target-docs", "6",
           "--max-length", "32"]
    work = tmp_path / "nag_datatrove_work"
    run = subprocess.run([*cmd, "--work", str(work)], capture_output=True, text=True, env=env, timeout=1200,
                         check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    summary = json.loads(run.stdout)
    assert summary["equals_select_top_fraction"] is True
    assert summary["pool_documents"] == 16 and 0 < summary["tokens_selected"] <= 0.2 * summary["pool_tokens"]
    written = sorted(Path(summary["selection_folder"]).glob("*.jsonl"))
    assert sum(len(f.read_text().splitlines()) for f in written) == summary["documents_selected"]
    assert summary["features"].startswith("computed and saved: ")
    features = Path(summary["features"].split(": ", 1)[1])
    saved_at = {p: p.stat().st_mtime_ns for p in features.rglob("*")}
    # Issue 26, item 8: the README's command has no --work (default ./nag_datatrove_work), and a rerun reuses the
    # in-process features instead of featurizing every document again.
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, check=False, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = json.loads(again.stdout)
    assert rerun["features"] == f"reused: {features}" and features.is_relative_to(work)
    assert {p: p.stat().st_mtime_ns for p in features.rglob("*")} == saved_at
    assert {k: v for k, v in rerun.items() if k != "features"} == {k: v for k, v in summary.items() if k != "features"}
