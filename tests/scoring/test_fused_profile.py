"""Fused profiles: the library's hybrid equals the retrieval harness's on the same features, the default signal and
its warning, refusals that name the fix, save/load (format version 3) and old profile files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.scoring.contrastive import ContrastiveProfile
from nag_datasets.scoring.fusion import DEFAULT_NAG_WEIGHT, FusedProfile, background_stats, fuse_scores
from nag_datasets.scoring.profile_files import ProfileError
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.signatures.spec import SpecMismatchError

SPEC = make_spec(neuron_type="fwd_down")
EMB = make_embedding_spec(SPEC)
OLD = Path(__file__).resolve().parents[1] / "data" / "old_profiles"


def _data(n_target: int = 10, n_pool: int = 60):
    target = make_fused_dataset(random_signatures(n_target, SPEC, 1), random_embeddings(n_target, shift=0.8, seed=1),
                                SPEC, EMB)
    pool = make_fused_dataset(random_signatures(n_pool, SPEC, 2), random_embeddings(n_pool, seed=2), SPEC, EMB,
                              null_rows=[7])
    return target, pool


@pytest.fixture(scope="module")
def data():
    target, pool = _data()
    tp = NAGProfile.from_dataset(target, column="nag_fwd_down")
    bg = NAGProfile.from_dataset(pool, column="nag_fwd_down", sample=40, seed=3)
    return target, pool, tp, bg


def test_hybrid_equals_the_harness_fusion_on_the_same_features(data):
    from nag_research.evaluate.features import FeatureSet
    from nag_research.evaluate.harness import CONFIGS, MethodSpec, _score, methods_for

    # the harness's current shipped default: the committed run's pick, as that run's config defines it
    results = json.loads((Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "evaluate" /
                          "results.json").read_text())
    config = CONFIGS[results["config"]["name"]]
    (shipped,) = [m for m in methods_for(config) if m.name == results["default"]]
    assert shipped.family == "fusion_zsum_learned" and shipped.opt("types") == ("fwd_down",)
    assert shipped.opt("embedding") == "last" and shipped.opt("weighting") == "shrinkage"
    assert dict(shipped.opt("params")) == {"m": 50.0, "alpha": 0.5}  # the library's contrast defaults
    # the library takes the column's layers as they are (featurizing the last 10 layers is the harness's "last10")
    method = MethodSpec("h", shipped.family, tuple((k, "all" if k == "layers" else v) for k, v in shipped.options))

    target, pool, tp, bg = data
    hybrid = tp.contrast(bg)
    assert isinstance(hybrid, FusedProfile) and hybrid.signal == "hybrid"
    assert hybrid.nag_weight == DEFAULT_NAG_WEIGHT == shipped.opt("w") == 0.2
    # the harness's features: all rows (targets first, then the pool), float16 embeddings
    sigs = np.concatenate([np.asarray(target["nag_fwd_down"], np.uint16),
                           np.asarray([s if s is not None else np.zeros((3, 4)) for s in pool["nag_fwd_down"]],
                                      np.uint16)])
    emb = np.concatenate([np.asarray(target["nag_embedding"], np.float32),
                          np.asarray([e if e is not None else np.zeros(8) for e in pool["nag_embedding"]],
                                     np.float32)])
    feats = FeatureSet({"fwd_down": sigs}, {"last": emb}, np.full(len(sigs), 5), {"fwd_down": SPEC}, 0.0, 0, 0)
    targets = np.arange(len(target))
    pool_rows = len(target) + np.array([i for i in range(len(pool)) if i != 7])
    # the background sample's rows, in pool order, as the profile kept them
    kept = [int(np.flatnonzero((sigs[pool_rows] == s).all(axis=(1, 2)))[0]) for s in bg.embedding_stats.signatures]
    background = pool_rows[np.array(kept)]
    assert np.array_equal(np.sort(background), background) and len(background) == 40
    ref = _score(method, None, feats, pool_rows, targets, background=background)
    got = hybrid.score(pool)
    assert np.isnan(got[7])
    diff = np.abs(np.delete(got, 7).astype(np.float64) - ref)
    assert diff.max() < 1e-6 * max(1.0, np.abs(ref).max()), diff.max()  # float32 rounding of the same float64 sum
    # the components too: the embedding model is the harness's learned model
    emb_only = tp.contrast(bg, signal="embedding")
    learned = MethodSpec("l", "learned", (("features", "emb"), ("embedding", "last"), ("Cs", config.learned_cs),
                                          ("folds", config.learned_folds)))
    np.testing.assert_allclose(np.delete(emb_only.score(pool), 7),
                               _score(learned, None, feats, pool_rows, targets, background=background),
                               rtol=1e-6, atol=1e-6)


def test_z_statistics_come_from_the_background_rows_only(data):
    _, pool, tp, bg = data
    hybrid = tp.contrast(bg)
    rows = bg.embedding_stats
    assert hybrid.nag_stats == background_stats(hybrid.nag.score(rows.signatures))
    assert hybrid.embedding_stats_z == background_stats(hybrid.model.scores(rows.embeddings))
    # scoring another pool leaves them as they are and scores each row alike
    assert np.array_equal(hybrid.score(pool.select(range(20, 30))), hybrid.score(pool)[20:30])
    assert background_stats([2.0, 2.0]) == (2.0, 1.0)
    out = fuse_scores(np.array([np.nan, 1.0], np.float32), np.array([0.0, np.nan]), 0.3, (0, 1), (0, 1))
    assert np.isnan(out).all() and out.dtype == np.float32


def test_default_signal_is_hybrid_with_embeddings_and_nag_with_a_warning_without(data):
    _, _, tp, bg = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tp.contrast(bg).signal == "hybrid"
    with pytest.warns(UserWarning, match=r"the target profile keeps no embeddings.*embedding='last'.*--embedding last"):
        plain = tp.without_embeddings().contrast(bg)
    assert type(plain) is ContrastiveProfile
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = tp.without_embeddings().contrast(bg, signal="nag")
    assert explicit == plain and np.array_equal(explicit.weights, tp.contrast(bg).nag.weights)
    assert tp.contrast(bg, signal="nag").fingerprint() == plain.fingerprint()  # rows are not part of the NAG profile


def test_refusals_name_the_fix(data):
    target, _, tp, bg = data
    with pytest.raises(ProfileError, match=r"background profile has none: .*embedding='last'"):
        tp.contrast(bg.without_embeddings(), signal="hybrid")
    with pytest.raises(ProfileError, match="needs at least 3 target"):
        NAGProfile.from_dataset(target.select(range(2)), column="nag_fwd_down").contrast(bg, signal="embedding")
    other = NAGProfile.from_dataset(make_fused_dataset(random_signatures(5, SPEC, 9), random_embeddings(5, seed=9),
                                                       SPEC, EMB.replace(layer=1)), column="nag_fwd_down")
    with pytest.raises(SpecMismatchError, match="layer: target embeddings=2 vs background embeddings=1"):
        tp.contrast(other, signal="hybrid")
    with pytest.raises(Exception, match="signal must be one of"):
        tp.contrast(bg, signal="both")
    with pytest.raises(ProfileError, match="needs a contrastive weighting"):
        tp.contrast(bg, "frequency", signal="hybrid")
    hybrid = tp.contrast(bg)
    with pytest.raises(ProfileError, match="scores signatures and embeddings together"):
        hybrid.scoring_table()
    with pytest.raises(ProfileError, match="already contrastive"):
        hybrid.contrast(bg)


def test_embeddings_must_come_from_the_signatures_forward_pass():
    other = make_embedding_spec(SPEC, max_length=64)
    ds = make_fused_dataset(random_signatures(4, SPEC), random_embeddings(4), SPEC, other)
    with pytest.raises(SpecMismatchError, match="max_length: signature column 'nag_fwd_down'=16 vs embedding column"):
        NAGProfile.from_dataset(ds, column="nag_fwd_down")
    assert NAGProfile.from_dataset(ds, column="nag_fwd_down", embedding=False).embedding_stats is None


def test_a_stream_and_the_same_pool_in_memory_keep_the_same_rows(data, tmp_path):
    _, pool, _, bg = data
    pool.to_parquet(str(tmp_path / "pool.parquet"))
    from datasets import load_dataset

    stream = load_dataset("parquet", data_files=str(tmp_path / "pool.parquet"), split="train", streaming=True)
    streamed = NAGProfile.from_dataset(stream, column="nag_fwd_down", sample=40, seed=3, batch_size=7)
    assert streamed == bg and streamed.fingerprint() == bg.fingerprint()
    whole = NAGProfile.from_dataset(pool, column="nag_fwd_down")
    assert whole.embedding_stats.num_rows == 59 and whole.skipped_null == 1


def test_save_and_load_give_the_same_profile_and_scores(data, tmp_path):
    _, pool, tp, bg = data
    for signal in ("hybrid", "embedding"):
        for model in ("learned", "centred"):
            profile = tp.contrast(bg, signal=signal, embedding_model=model, nag_weight=0.4)
            folder = profile.save(tmp_path / f"{signal}-{model}")
            meta = json.loads((Path(folder) / "profile.json").read_text())
            assert meta["format_version"] == 3 and meta["kind"] == "fused" and meta["signal"] == signal
            loaded = NAGProfile.load(folder)
            assert loaded == profile and loaded.fingerprint() == profile.fingerprint()
            assert np.array_equal(loaded.score(pool), profile.score(pool), equal_nan=True)
    for p in (tp, bg):  # profiles that keep their rows come back with them (and can be contrasted later)
        loaded = NAGProfile.load(p.save(tmp_path / f"rows-{p.num_targets}"))
        assert loaded == p and loaded.embedding_stats == p.embedding_stats
    assert NAGProfile.load(tmp_path / "rows-10").contrast(NAGProfile.load(tmp_path / "rows-40")) == tp.contrast(bg)


def test_fingerprint_covers_weight_model_and_rows(data, tmp_path):
    _, _, tp, bg = data
    base = tp.contrast(bg)
    assert base.fingerprint() != tp.contrast(bg, nag_weight=0.5).fingerprint()
    assert base.fingerprint() != tp.contrast(bg, embedding_model="centred").fingerprint()
    assert tp.fingerprint() != tp.without_embeddings().fingerprint()
    folder = base.save(tmp_path / "p")
    meta = json.loads((folder / "profile.json").read_text())
    meta["nag_weight"] = 0.5
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="was changed after saving"):
        NAGProfile.load(folder)


def test_old_profile_files_still_load_and_score_as_before():
    expected = json.loads((OLD / "expected.json").read_text())
    pool = np.load(OLD / "pool_signatures.npy")
    for name in ("v1_frequency", "v2_contrastive"):
        profile = NAGProfile.load(OLD / name)
        assert profile.fingerprint() == expected[name]["fingerprint"]
        assert profile.score(pool).tolist() == expected[name]["scores"]
        assert profile.embedding_stats is None
    assert type(NAGProfile.load(OLD / "v2_contrastive")) is ContrastiveProfile
