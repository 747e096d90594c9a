from __future__ import annotations

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures
from hypothesis import given, settings
from hypothesis import strategies as st

from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_indices, select_multi_target, select_top_fraction
from nag_datasets.selection.quality import combine_with_quality, combined_scores
from nag_datasets.selection.recipe import get_recipe, get_score_info
from nag_datasets.selection.reports import MultiTargetReport, SelectionReport
from nag_datasets.selection.tokens import count_tokens

pytestmark = pytest.mark.fast


def greedy_reference(scores, tokens, fraction, higher_is_better=True):
    """The rule as written: rank (ties by position), walk, stop at the first document that would overflow."""
    pool = [i for i in range(len(scores)) if not np.isnan(scores[i])]
    sign = -1 if higher_is_better else 1
    ranked = sorted(pool, key=lambda i: (sign * float(scores[i]), i))
    budget = fraction * sum(int(tokens[i]) for i in pool)
    kept, total = [], 0
    for i in ranked:
        if total + int(tokens[i]) > budget:
            break
        kept.append(i)
        total += int(tokens[i])
    return kept


@settings(max_examples=60, deadline=None, database=None)
@given(
    data=st.lists(
        st.tuples(st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1, width=32)),
                  st.integers(0, 50)),
        min_size=0, max_size=40),
    fraction=st.floats(0, 1),
    higher=st.booleans(),
)
def test_exact_matches_brute_force_and_budget(data, fraction, higher):
    scores = np.array([np.nan if s is None else s for s, _ in data], dtype=np.float32)
    tokens = np.array([t for _, t in data], dtype=np.int64)
    indices, report = select_indices(scores, tokens, fraction, higher_is_better=higher)
    assert indices.tolist() == greedy_reference(scores, tokens, fraction, higher)
    assert report.tokens_selected <= fraction * report.pool_tokens
    assert report.documents_selected == len(indices)
    assert report.null_rows_skipped == int(np.isnan(scores).sum())
    assert report.null_tokens_skipped == int(tokens[np.isnan(scores)].sum())
    assert report.pool_tokens == int(tokens[~np.isnan(scores)].sum())


def test_ties_by_position_and_stop_at_first_overflow():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    tokens = np.array([10, 10, 10, 10, 1])
    indices, report = select_indices(scores, tokens, 0.75)  # budget 30.75 of 41
    assert indices.tolist() == [1, 3, 0]
    assert report.threshold == pytest.approx(0.5) and report.tokens_selected == 30
    # The 2nd-ranked document overflows: the walk stops there even though a later, smaller one would fit.
    indices, _ = select_indices(np.array([0.9, 0.8, 0.1], np.float32), np.array([5, 100, 1]), 0.06)
    assert indices.tolist() == [0]


def test_nulls_are_outside_the_pool():
    scores = np.array([np.nan, 0.2, np.nan, 0.4], dtype=np.float32)
    tokens = np.array([1000, 10, 500, 10])
    indices, report = select_indices(scores, tokens, 0.5)
    assert indices.tolist() == [3]
    assert (report.pool_documents, report.pool_tokens) == (2, 20)
    assert (report.null_rows_skipped, report.null_tokens_skipped) == (2, 1500)
    assert report.achieved_fraction == 0.5


@pytest.mark.parametrize("bad", [[1, -1], [1.0, np.nan], [1.5, 2.0]])
def test_bad_token_counts_raise(bad):
    with pytest.raises(ValueError):
        select_indices(np.array([0.1, 0.2]), np.array(bad), 0.5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="fraction"):
        select_indices(np.array([0.1]), np.array([1]), 1.5)
    with pytest.raises(ValueError, match="method"):
        select_indices(np.array([0.1]), np.array([1]), 0.5, method="fast")


def test_sampled_on_a_million_documents():
    rng = np.random.default_rng(0)
    n = 1_000_000
    scores = rng.random(n).astype(np.float32)
    scores[rng.random(n) < 0.01] = np.nan
    tokens = rng.integers(1, 2000, n)
    for fraction in (0.05, 0.2):
        indices, report = select_indices(scores, tokens, fraction, method="sampled", seed=1)
        assert abs(report.achieved_fraction - fraction) < 0.01
        assert report.sample_documents == 100_000 and report.seed == 1
        picked = scores[indices]
        assert np.all(picked >= report.threshold) and np.all(np.diff(picked) <= 0)
        assert len(np.unique(indices)) == len(indices)


def test_sampled_is_reproducible_and_matches_exact_on_small_pools():
    rng = np.random.default_rng(4)
    scores = rng.random(500)
    tokens = rng.integers(1, 9, 500)
    a, _ = select_indices(scores, tokens, 0.3, method="sampled", seed=7)
    b, _ = select_indices(scores, tokens, 0.3, method="sampled", seed=7)
    exact, _ = select_indices(scores, tokens, 0.3)
    # A sample of the whole pool sees every row: same threshold, same rows as the exact walk.
    assert a.tolist() == b.tolist() == exact.tolist()


@pytest.fixture
def spec():
    return make_spec()


@pytest.fixture
def pool(spec, tmp_path):
    rng = np.random.default_rng(5)
    sigs = random_signatures(300, spec, seed=3)
    extra = {"row": list(range(300)), "num_tokens": rng.integers(1, 100, 300).tolist(),
             "quality": rng.random(300).tolist()}
    ds = make_signature_dataset(sigs, spec, extra, null_rows=[0, 150], path=tmp_path / "pool")
    return sigs, ds


def _profile(spec, seed, description=""):
    return NAGProfile.from_signatures(random_signatures(10, spec, seed=seed), spec, description=description)


def test_select_top_fraction_with_profile(spec, pool):
    _, ds = pool
    profile = _profile(spec, 8, "science")
    out, report = select_top_fraction(ds, 0.2, token_column="num_tokens", profile=profile, return_report=True)
    scores = profile.score(ds)
    tokens = np.array(ds["num_tokens"][:])
    expected, _ = select_indices(scores, tokens, 0.2)
    assert out["row"][:] == expected.tolist()
    assert out.column_names == ["nag_fwd_up", "row", "num_tokens", "quality", "nag_rank"]
    assert out["nag_rank"][:] == list(range(len(out)))
    assert report.signature_column == "nag_fwd_up" and report.spec == spec.to_dict()
    assert report.profile_fingerprint == profile.fingerprint and report.profile_description == "science"
    assert report.profile_num_targets == 10
    assert report.null_rows_skipped == 2 and report.null_tokens_skipped == tokens[[0, 150]].sum()
    assert SelectionReport.from_dict(report.to_dict()) == report
    recipe = get_recipe(out)
    assert recipe.reports == [report.to_dict()] and recipe.profiles[0]["fingerprint"] == profile.fingerprint


def test_select_on_shuffled_dataset_and_by_score_column(spec, pool):
    _, ds = pool
    profile = _profile(spec, 8)
    shuffled = ds.shuffle(seed=2)
    out = select_top_fraction(shuffled, 0.3, token_column="num_tokens", profile=profile)
    direct = select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile)
    # Ties follow the shuffled dataset's own row order.
    order = np.array(shuffled["row"][:])
    expected, _ = select_indices(profile.score(ds)[order], np.array(ds["num_tokens"][:])[order], 0.3)
    assert out["row"][:] == order[expected].tolist()
    mapped = ds.map(profile.scorer_for(ds), batched=True)
    by_column = select_top_fraction(mapped, 0.3, token_column="num_tokens")
    assert by_column["row"][:] == direct["row"][:]
    sampled, report = select_top_fraction(mapped, 0.3, token_column="num_tokens", method="sampled",
                                          sample_size=50, seed=3, return_report=True)
    assert report.method == "sampled" and report.sample_documents == 50
    assert sampled["nag_rank"][:] == list(range(len(sampled)))


def test_multi_target_shares_order_and_dedup(spec, pool):
    _, ds = pool
    profiles = [_profile(spec, 8, "a"), _profile(spec, 9, "b"), _profile(spec, 10, "c")]
    tokens = np.array(ds["num_tokens"][:])
    out, report = select_multi_target(ds, profiles, 0.6, token_column="num_tokens", return_report=True)
    parts = [select_indices(p.score(ds), tokens, 0.2)[0] for p in profiles]
    assert out["row"][:] == np.concatenate(parts).tolist()
    assert report.share == pytest.approx(0.2) and report.target_documents == [len(p) for p in parts]
    for target in report.targets:
        assert target.fraction == pytest.approx(0.2)
        assert target.tokens_selected <= 0.2 * target.pool_tokens
    assert report.tokens_selected == sum(t.tokens_selected for t in report.targets)
    assert MultiTargetReport.from_dict(report.to_dict()) == report
    recipe = get_recipe(out)
    assert recipe.kind == "multi_target" and recipe.shares == [pytest.approx(0.2)] * 3
    assert [p["description"] for p in recipe.profiles] == ["a", "b", "c"]

    deduped, dreport = select_multi_target(ds, profiles, 0.6, token_column="num_tokens", dedup=True,
                                           return_report=True)
    rows = deduped["row"][:]
    assert len(rows) == len(set(rows))
    seen, expected = set(), []
    for part in parts:
        expected += [int(r) for r in part if r not in seen]
        seen.update(int(r) for r in part)
    assert rows == expected
    duplicates = len(out) - len(deduped)
    assert sum(dreport.duplicates_dropped) == duplicates and dreport.duplicates_dropped[0] == 0
    assert dreport.tokens_selected == report.tokens_selected - sum(dreport.duplicate_tokens_dropped)


def test_multi_target_keeps_duplicates_when_targets_agree(spec, pool):
    _, ds = pool
    profile = _profile(spec, 8)
    out = select_multi_target(ds, [profile, profile], 0.4, token_column="num_tokens")
    half = len(out) // 2
    assert out["row"][:half] == out["row"][half:]
    # A duplicated row shows the rank of its first appearance.
    assert out["nag_rank"][:] == list(range(half)) * 2


def test_combine_with_quality_by_hand(spec, tmp_path):
    targets = random_signatures(4, spec, seed=1)
    profile = NAGProfile.from_signatures(targets, spec)
    sigs = random_signatures(5, spec, seed=2)
    quality = [0.9, None, 0.1, 0.5, 0.3]
    ds = make_signature_dataset(sigs, spec, {"quality": quality, "num_tokens": [5] * 5}, null_rows=[3],
                                path=tmp_path / "q")
    sim = profile.score(sigs).astype(np.float64)
    rows = [0, 2, 4]  # both a signature and a quality value
    dist = {r: 1 - sim[r] for r in rows}
    bad = {r: 1 - quality[r] for r in rows}
    dmin, dmax = min(dist.values()), max(dist.values())
    bmin, bmax = min(bad.values()), max(bad.values())
    expected = {r: (dist[r] - dmin) / (dmax - dmin) + 0.5 * (bad[r] - bmin) / (bmax - bmin) for r in rows}
    got = combined_scores(ds, profile, "quality", weight=0.5)
    assert np.isnan(got[[1, 3]]).all()
    for r in rows:
        assert got[r] == pytest.approx(expected[r], abs=1e-12)
    combined = combine_with_quality(ds, profile, "quality", weight=0.5)
    values = combined["nag_combined"][:]
    assert values[1] is None and values[3] is None
    info = get_score_info(combined, "nag_combined")
    assert info["higher_is_better"] is False and info["quality"] == {"column": "quality", "weight": 0.5}
    out, report = select_top_fraction(combined, 0.7, token_column="num_tokens", score_column="nag_combined",
                                      return_report=True)
    best_first = sorted(rows, key=lambda r: (expected[r], r))
    assert out["quality"][:] == [quality[r] for r in best_first[:2]]
    assert report.higher_is_better is False and report.profile_fingerprint == profile.fingerprint
    recipe = get_recipe(out)
    assert recipe.quality == {"column": "quality", "weight": 0.5} and recipe.higher_is_better is False


def test_count_tokens_full_length():
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[UNK]": 0, "a": 1, "b": 2}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, model_max_length=4, bos_token="a")
    ds = Dataset.from_dict({"text": ["a b a b a b a b a b", "", "b zz", None]})
    out = count_tokens(ds, tok, batch_size=2)
    assert out["num_tokens"][:] == [10, 0, 2, 0]
    assert out.features["num_tokens"].dtype == "int64"


def test_mutually_exclusive_arguments_are_refused_naming_both(spec, pool):
    """Issue 26: a score column beside a profile was silently ignored (ranked by the profile, stale column kept)."""
    from nag_datasets.errors import InvalidArgumentError, NAGError
    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.scoring.weighting import WeightingError, get_weighting
    from nag_datasets.selection.scored import score_pool

    _, ds = pool
    profile = _profile(spec, 8)
    scored = score_pool(ds, profile)
    cases = [
        (lambda: select_top_fraction(scored, 0.3, token_column="num_tokens", profile=profile,
                                     score_column="nag_similarity"), r"either profile= or score_column="),
        (lambda: select_top_fraction(scored, 0.3, token_column="num_tokens", score_column="nag_similarity",
                                     column="nag_fwd_up"), r"column= names the signature column .* profile="),
        (lambda: select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile, seed=3),
         r"seed=3: these apply only to method='sampled'"),
        (lambda: select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile, sample_size=10),
         r"sample_size=10: these apply only to method='sampled'"),
        (lambda: select_indices(np.ones(3), np.ones(3, np.int64), 0.5, seed=0), r"seed=0: .*method='exact' draws none"),
        (lambda: select_multi_target(ds, [profile], 0.3, token_column="num_tokens", seed=1), r"seed=1"),
        (lambda: combine_with_quality(scored, None, "num_tokens", score_column="nag_similarity", column="nag_fwd_up"),
         r"column= names the signature column a profile scores; with score_column="),
        (lambda: profile.scorer(dataset=ds, check_spec=False), r"either dataset= .* or check_spec=False"),
        (lambda: profile.filter(0.1, dataset=ds, check_spec=False), r"either dataset="),
        (lambda: NAGFeaturizer("some/model", tokenizer=object()), r"tokenizer= goes with a loaded model object"),
        (lambda: NAGFeaturizer(object(), tokenizer=object(), revision="main"), r"revision= and trust_remote_code="),
    ]
    for call, message in cases:
        with pytest.raises(InvalidArgumentError, match=message) as info:
            call()
        assert isinstance(info.value, NAGError)
    with pytest.raises(WeightingError, match=r"parameters \['m'\] given with a weighting dict"):
        get_weighting({"name": "shrinkage", "m": 50.0, "alpha": 0.5}, m=3.0)
    # The combinations that mean something still work: sampled with its seed, a score column alone.
    a = select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile, method="sampled", seed=3)
    b = select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile, method="sampled", seed=3,
                            sample_size=100_000)
    assert a["row"][:] == b["row"][:]
    assert get_recipe(a).reports[0]["seed"] == 3
    exact = select_top_fraction(ds, 0.3, token_column="num_tokens", profile=profile)
    assert select_top_fraction(scored, 0.3, token_column="num_tokens", score_column="nag_similarity")["row"][:] \
        == exact["row"][:]
    assert get_recipe(exact).reports[0]["seed"] is None  # exact records no seed, as before


def test_a_score_column_that_records_nothing_warns_by_name(spec, pool):
    """Issue 26: any numeric column (``id``) was a score column without a word."""
    import warnings

    from nag_datasets.selection.budgeted import UnrecordedScoreColumnWarning
    from nag_datasets.selection.scored import score_pool

    _, ds = pool
    with pytest.warns(UnrecordedScoreColumnWarning, match="ranking by column 'row', whose feature records no profile"):
        by_row = select_top_fraction(ds, 0.3, token_column="num_tokens", score_column="row")
    assert by_row["row"][0] == len(ds) - 1  # ranked as asked: a user's own column is still usable
    scored = score_pool(ds, _profile(spec, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnrecordedScoreColumnWarning)
        select_top_fraction(scored, 0.3, token_column="num_tokens", score_column="nag_similarity")  # recorded: quiet
