"""A fused profile (embedding or hybrid signal) gives the same float32 scores through every entry point: ``score``,
the ``map``/``filter`` callables at any batch size, selection (exact and sampled), multi-target, quality mixing,
``score_pool``, Ray and a distilled scorer's teacher column; and every one refuses a pool without the embedding
column, naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.errors import MissingColumnError
from nag_datasets.scoring.fusion import FusedProfile
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_indices, select_multi_target, select_top_fraction
from nag_datasets.selection.quality import combine_with_quality
from nag_datasets.selection.recipe import get_recipe, get_score_info
from nag_datasets.selection.scored import score_pool

SPEC = make_spec(top_k=2, neurons_per_layer=12)
EMB = make_embedding_spec(SPEC)
N = 200


@pytest.fixture(scope="module")
def pool():
    rng = np.random.default_rng(5)
    extra = {"row": np.arange(N), "num_tokens": rng.integers(1, 50, N), "quality": rng.random(N),
             "text": [" ".join(rng.choice(["alpha", "beta", "gamma", "delta", "sum", "add"], 6)) for _ in range(N)]}
    return make_fused_dataset(random_signatures(N, SPEC, 6), random_embeddings(N, seed=6), SPEC, EMB, extra,
                              null_rows=[3, 90])


@pytest.fixture(scope="module", params=["hybrid", "embedding"])
def profile(request, pool):
    target = make_fused_dataset(random_signatures(12, SPEC, 7), random_embeddings(12, shift=0.7, seed=7), SPEC, EMB)
    background = NAGProfile.from_dataset(pool, sample=120, seed=1)
    return NAGProfile.from_dataset(target).contrast(background, signal=request.param)


def test_score_is_float32_with_nan_for_rows_without_columns(profile, pool):
    scores = profile.score(pool)
    assert isinstance(profile, FusedProfile) and scores.dtype == np.float32 and len(scores) == N
    assert np.isnan(scores[[3, 90]]).all() and np.isfinite(np.delete(scores, [3, 90])).all()
    picked = pool.select([150, 3, 7, 7])  # a selection (indices mapping) scores the same rows alike
    assert np.array_equal(profile.score(picked), scores[[150, 3, 7, 7]], equal_nan=True)
    shuffled = pool.shuffle(seed=2)
    assert np.array_equal(profile.score(shuffled), scores[np.asarray(shuffled["row"])], equal_nan=True)


@pytest.mark.parametrize("batch_size", [1, 3, 7, 64, 1000])
def test_map_scorer_and_filter_are_bit_equal_at_any_batch_size(profile, pool, batch_size):
    scores = profile.score(pool)
    mapped = pool.map(profile.scorer(), batched=True, batch_size=batch_size, load_from_cache_file=False)
    got = np.array([np.nan if s is None else s for s in mapped["nag_contrast_score"]], np.float32)
    assert np.array_equal(got, scores, equal_nan=True)
    threshold = float(np.nanmedian(scores))
    kept = pool.filter(profile.filter(threshold), batched=True, batch_size=batch_size, load_from_cache_file=False)
    assert kept["row"] == [i for i in range(N) if scores[i] >= threshold]
    checked = pool.remove_columns("nag_spec").map(profile.scorer_for(pool), batched=True, batch_size=batch_size,
                                                  load_from_cache_file=False)
    assert np.array_equal(np.array([np.nan if s is None else s for s in checked["nag_contrast_score"]], np.float32),
                          scores, equal_nan=True)


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_selection_ranks_by_the_same_scores(profile, pool, method):
    selected, report = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile, method=method,
                                           sample_size=80, return_report=True)
    indices, expected = select_indices(profile.score(pool), np.asarray(pool["num_tokens"]), 0.3, method=method,
                                       sample_size=80)
    assert selected["row"] == indices.tolist() and report.threshold == expected.threshold
    recipe = get_recipe(selected)
    assert recipe.profiles[0]["signal"] == profile.signal and report.score_kind == "contrastive"


def test_multi_target_and_quality_mixing_use_the_same_scores(profile, pool):
    other = NAGProfile.from_dataset(make_fused_dataset(random_signatures(9, SPEC, 8), random_embeddings(9, seed=8),
                                                       SPEC, EMB))
    second = other.contrast(NAGProfile.from_dataset(pool, sample=120, seed=1), signal=profile.signal)
    tokens = np.asarray(pool["num_tokens"])
    out = select_multi_target(pool, [profile, second], 0.4, token_column="num_tokens")
    parts = [select_indices(p.score(pool), tokens, 0.2)[0] for p in (profile, second)]
    assert out["row"] == np.concatenate(parts).tolist()
    mixed = combine_with_quality(pool, profile, "quality", weight=0.5)
    scores = profile.score(pool).astype(np.float64)
    present = ~np.isnan(scores)
    dist, bad = 1.0 - scores, 1.0 - np.asarray(pool["quality"])
    want = ((dist - dist[present].min()) / (dist[present].max() - dist[present].min())
            + 0.5 * (bad - bad[present].min()) / (bad[present].max() - bad[present].min()))
    got = np.array([np.nan if v is None else v for v in mixed["nag_combined"]])
    np.testing.assert_array_equal(got[present], want[present])
    assert get_score_info(mixed, "nag_combined")["profile"]["signal"] == profile.signal


def test_score_pool_and_a_distilled_teacher_carry_the_scores_and_the_signal(profile, pool, tmp_path):
    pytest.importorskip("sklearn")
    from nag_datasets.distill import distill_dataset

    scored = score_pool(pool, profile)
    column = scored["nag_contrast_score"]
    assert np.array_equal(np.array([np.nan if s is None else s for s in column], np.float32), profile.score(pool),
                          equal_nan=True)
    info = get_score_info(scored, "nag_contrast_score")
    assert info["profile"]["signal"] == profile.signal and info["profile_fingerprint"] == profile.fingerprint()
    cut = select_top_fraction(scored, 0.3, token_column="num_tokens", score_column="nag_contrast_score")
    assert cut["row"] == select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile)["row"]
    scorer = distill_dataset(scored, tmp_path / "d", score_column="nag_contrast_score", profile=profile,
                             model="linear", params={"n_features": 1 << 12})
    assert scorer.meta["source"]["signal"] == profile.signal
    assert scorer.meta["source"]["profile_fingerprint"] == profile.fingerprint()


def test_every_entry_point_refuses_a_pool_without_the_embedding_column(profile, pool):
    bare = pool.remove_columns("nag_embedding")
    fix = r"embedding='last'.*--embedding last"
    for call in (lambda: profile.score(bare), lambda: select_top_fraction(bare, 0.2, token_column="num_tokens",
                                                                          profile=profile),
                 lambda: score_pool(bare, profile), lambda: combine_with_quality(bare, profile, "quality"),
                 lambda: bare.map(profile.scorer(), batched=True), lambda: profile.scorer_for(bare)):
        with pytest.raises(MissingColumnError, match=fix):
            call()


@pytest.mark.slow
def test_ray_selection_equals_the_exact_selection(profile, pool, tmp_path):
    ray = pytest.importorskip("ray")
    from nag_datasets.selection.ray_select import select_top_fraction_ray
    from nag_datasets.signatures.formats import load_any

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 1024**2, ignore_reinit_error=True)
    try:
        src = tmp_path / "pool"
        src.mkdir()
        for i in range(2):
            pool.shard(num_shards=2, index=i, contiguous=True).to_parquet(str(src / f"part-{i:06d}.parquet"),
                                                                          batch_size=60)
        report = select_top_fraction_ray(src, tmp_path / "out", profile, 0.3, token_column="num_tokens")
        expected, exp = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile,
                                            return_report=True)
        for key in ("documents_selected", "tokens_selected", "pool_documents", "threshold", "null_rows_skipped"):
            assert report[key] == getattr(exp, key), key
        assert load_any(tmp_path / "out")["row"][:] == sorted(expected["row"][:])
        assert report["profile"]["signal"] == profile.signal
        bare = tmp_path / "bare"
        bare.mkdir()
        pool.remove_columns("nag_embedding").to_parquet(str(bare / "part-000000.parquet"))
        with pytest.raises(MissingColumnError, match="embedding='last'"):
            select_top_fraction_ray(bare, tmp_path / "out2", profile, 0.3, token_column="num_tokens")
    finally:
        ray.shutdown()
