"""The contrastive profile: weights, background sampling, every scoring entry point, persistence, refusals."""

from __future__ import annotations

import doctest
import pickle

import numpy as np
import pytest
from helpers import make_signature_dataset, random_signatures

from nag_datasets.scoring import contrastive, kernel
from nag_datasets.scoring.contrastive import CONTRAST_SCORE_COLUMN, ContrastiveProfile
from nag_datasets.scoring.kernel import score_signatures, score_signatures_numpy
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.scoring.weighting import WEIGHTINGS
from nag_datasets.selection.budgeted import select_multi_target, select_top_fraction
from nag_datasets.selection.quality import combine_with_quality
from nag_datasets.signatures.spec import SpecMismatchError

pytestmark = pytest.mark.fast


@pytest.fixture
def pool(spec, tmp_path):
    sigs = random_signatures(400, spec, seed=1)
    ds = make_signature_dataset(sigs, spec, {"n": list(range(400)), "num_tokens": [5 + i % 13 for i in range(400)],
                                             "quality": [(i * 37 % 101) / 100 for i in range(400)]},
                                null_rows=[3, 77, 399], path=tmp_path / "pool")
    return sigs, ds


@pytest.fixture
def target(spec):
    return NAGProfile.from_signatures(random_signatures(25, spec, seed=2), spec, description="targets")


@pytest.fixture
def background(pool):
    _, ds = pool
    return NAGProfile.from_dataset(ds, "nag_fwd_up", sample=120, seed=3, description="pool sample")


@pytest.fixture
def profile(target, background):
    return target.contrast(background, "log_odds", alpha=0.25)


@pytest.mark.parametrize("module", [contrastive, kernel])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_weights_finite_with_empty_background_counts(spec, target, name):
    empty_neurons = NAGProfile.from_signatures(np.tile(np.arange(spec.top_k), (3, spec.num_layers, 1)), spec)
    assert (empty_neurons.counts == 0).sum() > 0  # most neurons never appear in this background
    profile = target.contrast(empty_neurons, name)
    assert profile.weights.dtype == np.float32 and np.isfinite(profile.weights).all()


def test_target_specific_neurons_rank_first(spec):
    """A document sharing the target-only neurons beats one sharing only neurons every document has."""
    K, L = spec.top_k, spec.num_layers
    common = np.arange(K - 1)  # neurons in every NAG
    def doc(last: int) -> np.ndarray:
        return np.tile(np.append(common, last), (L, 1))
    assert spec.neurons_per_layer >= 32 and K == 4
    targets = np.stack([doc(10 + i % 2) for i in range(10)])            # target-specific neurons 10, 11
    background = np.stack([doc(12 + i % 20) for i in range(40)])        # rarer neurons 12..31
    t, b = NAGProfile.from_signatures(targets, spec), NAGProfile.from_signatures(background, spec)
    cand = np.stack([doc(10), doc(12), doc(7)])
    for name in WEIGHTINGS:
        scores = t.contrast(b, name).score(cand)
        assert scores[0] > scores[1] and scores[0] > scores[2], name


def test_frequency_is_the_paper_profile(target, background):
    assert target.contrast(background, "frequency") is target
    with pytest.raises(ProfileError, match="no parameters"):
        target.contrast(background, "frequency", alpha=1.0)


def test_float_kernel_matches_numpy_reference_bit_for_bit(profile, pool):
    sigs, _ = pool
    valid = np.ones(len(sigs), bool)
    valid[[3, 77]] = False
    fast = score_signatures(sigs, profile.weights, valid=valid)
    slow = score_signatures_numpy(sigs, profile.weights, valid=valid)
    assert fast.tobytes() == slow.tobytes()
    threaded = score_signatures(np.concatenate([sigs] * 100), profile.weights, num_threads=2)
    assert threaded.tobytes() == np.concatenate([score_signatures(sigs, profile.weights)] * 100).tobytes()
    mean = profile.weights[np.arange(spec_layers := sigs.shape[1])[None, :, None], sigs].astype(np.float64)
    np.testing.assert_allclose(fast[valid], mean.mean(axis=(1, 2))[valid], rtol=1e-6)
    assert spec_layers == profile.spec.num_layers


def test_every_entry_point_gives_the_same_scores(profile, pool):
    sigs, ds = pool
    scores = profile.score(ds)
    assert np.isnan(scores[[3, 77, 399]]).all()
    assert profile.score(sigs[:3]).tobytes() == scores[:3].tobytes()
    mapped = ds.map(profile.scorer_for(ds), batched=True, batch_size=37)
    assert CONTRAST_SCORE_COLUMN in mapped.column_names and "nag_similarity" not in mapped.column_names
    assert np.array(mapped[CONTRAST_SCORE_COLUMN][:], np.float32).tobytes() == scores.tobytes()
    threshold = float(np.nanmedian(scores))
    kept = ds.filter(profile.filter(threshold, dataset=ds), batched=True, batch_size=50)
    assert kept["n"][:] == np.flatnonzero(scores >= threshold).tolist()
    sub = ds.select([10, 5, 300, 77])
    assert profile.score(sub).tobytes() == scores[[10, 5, 300, 77]].tobytes()
    clone = pickle.loads(pickle.dumps(profile.scorer(check_spec=False)))
    assert np.array(clone({"nag_fwd_up": sigs[:5].tolist()})[CONTRAST_SCORE_COLUMN]).tobytes() == \
        profile.score(sigs[:5]).tobytes()


@pytest.mark.parametrize("method", ["exact", "sampled"])
def test_selection_with_a_contrastive_profile(profile, pool, method):
    _, ds = pool
    scores = profile.score(ds)
    selected, report = select_top_fraction(ds, 0.2, token_column="num_tokens", profile=profile, method=method,
                                           return_report=True)
    by_column = select_top_fraction(ds.add_column("s", scores.astype(np.float64).tolist()), 0.2,
                                    token_column="num_tokens", score_column="s", method=method)
    assert selected["n"][:] == by_column["n"][:]
    assert report.score_kind == "contrastive" and report.profile["weighting"] == {"name": "log_odds", "alpha": 0.25}
    assert report.profile["background"]["num_documents"] == 120
    assert report.profile["background"]["sample"]["seed"] == 3
    assert report.profile_fingerprint == profile.fingerprint


def test_multi_target_each_against_the_same_background(spec, pool, background):
    _, ds = pool
    targets = [NAGProfile.from_signatures(random_signatures(20, spec, seed=s), spec) for s in (5, 6)]
    profiles = [t.contrast(background) for t in targets]
    out, report = select_multi_target(ds, profiles, 0.2, token_column="num_tokens", return_report=True)
    for p, r in zip(profiles, report.targets):
        assert r.score_kind == "contrastive" and r.profile["background"]["fingerprint"] == background.fingerprint
    first = select_top_fraction(ds, 0.1, token_column="num_tokens", profile=profiles[0])
    assert out["n"][: len(first)] == first["n"][:]


def test_combine_with_quality_orders_by_contrast(profile, pool):
    _, ds = pool
    combined = combine_with_quality(ds, profile, "quality", weight=0.0)
    values = np.array(combined["nag_combined"][:], dtype=np.float64)
    scores = profile.score(ds).astype(np.float64)
    ok = ~np.isnan(scores)
    # With weight 0 the combined value is the min-max-normalised reversed score.
    expected = (scores.max(where=ok, initial=-np.inf) - scores) / (np.nanmax(scores) - np.nanmin(scores))
    np.testing.assert_allclose(values[ok], expected[ok], atol=1e-12)


def test_round_trip_and_fingerprint(profile, target, background, tmp_path):
    profile.save(tmp_path / "p")
    loaded = NAGProfile.load(tmp_path / "p")
    assert isinstance(loaded, ContrastiveProfile)
    assert loaded == profile and loaded.fingerprint == profile.fingerprint
    assert loaded.weights.tobytes() == profile.weights.tobytes()
    assert loaded.background.sample_info == background.sample_info
    other = target.contrast(background, "log_odds", alpha=0.5)
    assert other.fingerprint != profile.fingerprint
    # The background's counts are part of the fingerprint (its description and sample record are not).
    same_counts = NAGProfile(background.counts, background.num_targets, background.spec)
    assert target.contrast(same_counts, "log_odds", alpha=0.25).fingerprint == profile.fingerprint
    moved = NAGProfile.from_signatures(random_signatures(120, background.spec, seed=9), background.spec)
    assert target.contrast(moved, "log_odds", alpha=0.25).fingerprint != profile.fingerprint
    assert target.fingerprint != profile.fingerprint


def test_load_refuses_changed_weighting_or_counts(profile, tmp_path):
    import json

    folder = profile.save(tmp_path / "p")
    meta = json.loads((folder / "profile.json").read_text())
    meta["weighting"]["alpha"] = 1.0
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="was changed after saving"):
        NAGProfile.load(folder)
    folder = profile.save(tmp_path / "q")
    meta = json.loads((folder / "profile.json").read_text())
    meta["background"]["num_documents"] += 1
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError):
        NAGProfile.load(folder)
    meta["format_version"] = 7
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="format_version 7"):
        NAGProfile.load(folder)


def test_background_spec_mismatch_refused(target, spec):
    other = spec.replace(max_length=32)
    bg = NAGProfile.from_signatures(random_signatures(10, other), other)
    with pytest.raises(SpecMismatchError, match="max_length"):
        target.contrast(bg)


def test_contrastive_cannot_be_merged_or_contrasted_again(profile, background):
    with pytest.raises(ProfileError, match="merge the targets' plain profiles"):
        ContrastiveProfile.merge([profile])
    with pytest.raises(ProfileError, match="already contrastive"):
        profile.contrast(background)
