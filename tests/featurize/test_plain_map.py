"""Plain ``ds.map(featurizer, batched=True)`` just works (issue 15.1), and its column is still spec-checked (17.2-3)."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset, load_dataset

from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.signatures.spec import SpecError, SpecMismatchError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo():
    import datasets

    from nag_datasets.demo_data import load_demo

    datasets.disable_progress_bars()
    target = load_demo("target").select(range(5))
    pool = load_demo("pool").shuffle(seed=1).select(range(10))
    pool = pool.add_column("n", [len(t) for t in pool["text"]])
    return target, pool


@pytest.fixture(scope="module")
def plain(featurizer, demo):
    target, pool = demo
    return target.map(featurizer, batched=True), pool.map(featurizer, batched=True)


def test_plain_map_end_to_end_equals_apply(featurizer, demo, plain):
    target, pool = demo
    target_plain, pool_plain = plain
    assert "nag_spec" in pool_plain.column_names
    typed_profile = NAGProfile.from_dataset(featurizer.apply(target))
    profile = NAGProfile.from_dataset(target_plain)
    assert profile == typed_profile
    typed_pool = featurizer.apply(pool)
    scores = profile.score(pool_plain)
    assert np.array_equal(scores, typed_profile.score(typed_pool), equal_nan=True)
    threshold = float(np.median(scores))
    kept = pool_plain.filter(profile.filter(threshold), batched=True)
    assert kept["id"] == [i for i, s in zip(pool["id"], scores) if s >= threshold]
    mapped = pool_plain.map(profile.scorer(), batched=True)
    assert np.array_equal(np.asarray(mapped["nag_similarity"], np.float32), scores)
    selected = select_top_fraction(pool_plain, 0.5, token_column="n", profile=profile)
    typed_selected = select_top_fraction(typed_pool, 0.5, token_column="n", profile=typed_profile)
    assert len(selected) > 0 and selected["id"] == typed_selected["id"]


def test_plain_map_with_another_spec_is_refused_naming_the_field(demo, plain, tmp_path):
    import pyarrow.parquet as pq

    _, pool = demo
    profile = NAGProfile.from_dataset(plain[0])
    other = pool.map(NAGFeaturizer(max_length=16), batched=True)
    pq.write_table(other.data.table, str(tmp_path / "pyarrow.parquet"))
    other.to_pandas().to_parquet(str(tmp_path / "pandas.parquet"))
    copies = [other] + [load_dataset("parquet", data_files=str(tmp_path / f"{w}.parquet"), split="train")
                        for w in ("pyarrow", "pandas")]
    for ds in copies:
        with pytest.raises(SpecMismatchError, match="max_length: profile=32 vs column 'nag_fwd_up'=16"):
            profile.score(ds)
        with pytest.raises(SpecMismatchError, match="max_length"):
            ds.filter(profile.filter(0.1), batched=True)
        with pytest.raises(SpecMismatchError, match="max_length"):
            ds.map(profile.scorer(), batched=True)
        with pytest.raises(SpecMismatchError, match="max_length"):
            select_top_fraction(ds, 0.5, token_column="n", profile=profile)
    # The same writers keep a matching column usable.
    plain[1].to_pandas().to_parquet(str(tmp_path / "same.parquet"))
    same = load_dataset("parquet", data_files=str(tmp_path / "same.parquet"), split="train")
    assert np.array_equal(profile.score(same), profile.score(plain[1]), equal_nan=True)


def test_plain_map_spec_unknown_here_is_refused_with_the_fix(demo, plain, tmp_path, monkeypatch):
    profile = NAGProfile.from_dataset(plain[0])
    other = demo[1].map(NAGFeaturizer(top_k=10, max_length=32), batched=True)
    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path / "empty-cache"))  # another machine: no registry
    with pytest.raises(SpecMismatchError, match="unknown here.*attach_spec"):
        profile.score(other)
    with pytest.raises(SpecError, match="unknown here.*attach_spec"):
        NAGProfile.from_dataset(other, "nag_fwd_up")


def test_per_row_map_is_refused_naming_batched(featurizer, demo, plain):
    target, _ = demo
    with pytest.raises(TypeError, match="batched=True"):
        target.select(range(2)).map(featurizer)
    profile = NAGProfile.from_dataset(plain[0])
    with pytest.raises(TypeError, match="batched=True"):
        plain[1].filter(profile.filter(0.1))
    with pytest.raises(TypeError, match="batched=True"):
        plain[1].map(profile.scorer())


def test_first_batch_without_any_signature_is_refused_by_datasets_naming_features(featurizer):
    # A documented limit of plain map (README, "Bad input"): `datasets` cannot infer a column type from a first
    # batch holding only nulls, and says so; `apply` (typed features) handles it.
    ds = Dataset.from_dict({"text": ["", "   ", "Water boils at 100 degrees.", ""]})
    with pytest.raises(TypeError, match="features="):
        ds.map(featurizer, batched=True, batch_size=2)
    assert featurizer.apply(ds, batch_size=2)["nag_status"] == ["empty", "whitespace", "ok", "empty"]
