from __future__ import annotations

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.recipe import RecipeError, SelectionRecipe, attach_recipe, get_recipe

pytestmark = pytest.mark.fast


@pytest.fixture
def selected(tmp_path):
    spec = make_spec()
    sigs = random_signatures(200, spec, seed=1)
    ds = make_signature_dataset(sigs, spec, {"row": list(range(200)), "num_tokens": [7] * 200},
                                null_rows=[5], path=tmp_path / "pool")
    profile = NAGProfile.from_signatures(random_signatures(6, spec, seed=2), spec, description="t")
    out, report = select_top_fraction(ds, 0.25, token_column="num_tokens", profile=profile, return_report=True)
    return out, report, profile


def test_plain_dataset_has_no_recipe():
    from datasets import Dataset

    assert get_recipe(Dataset.from_dict({"x": [1]})) is None
    assert get_recipe(Dataset.from_dict({"nag_rank": [1]})) is None


def test_recipe_contents(selected):
    out, report, profile = selected
    recipe = get_recipe(out)
    assert recipe.kind == "top_fraction" and recipe.method == "exact" and recipe.fraction == 0.25
    assert recipe.spec == make_spec().to_dict()
    assert recipe.profiles == [{"fingerprint": profile.fingerprint, "description": "t", "num_targets": 6,
                                "score_kind": "similarity"}]
    assert recipe.reports == [report.to_dict()]
    assert recipe.library_version and recipe.created
    assert SelectionRecipe.from_json(recipe.to_json()) == recipe


def test_rank_column_is_added_without_flattening(selected):
    out, _, _ = selected
    assert out._indices is not None  # still a view on the pool's memory-mapped table
    assert out["nag_rank"][:] == list(range(len(out)))


def test_recipe_survives_save_load_and_parquet(selected, tmp_path):
    from datasets import load_dataset, load_from_disk

    out, _, _ = selected
    recipe = get_recipe(out)
    out.save_to_disk(str(tmp_path / "sel"))
    back = load_from_disk(str(tmp_path / "sel"))
    assert get_recipe(back) == recipe
    assert back["row"][:] == out["row"][:] and back["nag_rank"][:] == list(range(len(out)))
    out.to_parquet(str(tmp_path / "sel.parquet"))
    pq = load_dataset("parquet", data_files=str(tmp_path / "sel.parquet"), split="train",
                      cache_dir=str(tmp_path / "cache"))
    assert get_recipe(pq) == recipe
    assert pq["row"][:] == out["row"][:]
    assert get_recipe(out.select([2, 0])) == recipe
    assert get_recipe(out.filter(lambda r: r % 2 == 0, input_columns="row")) == recipe


def test_attach_replaces_previous_recipe(selected):
    out, _, _ = selected
    newer = SelectionRecipe(kind="top_fraction", fraction=0.1, method="sampled", reports=[])
    again = attach_recipe(out.select([3, 1]), newer)
    assert get_recipe(again) == newer
    assert again["nag_rank"][:] == [0, 1] and again.column_names.count("nag_rank") == 1
    assert again["row"][:] == [out["row"][3], out["row"][1]]


def test_attach_keeps_format():
    from datasets import Dataset

    ds = Dataset.from_dict({"x": [1.0, 2.0]}).with_format("numpy")
    out = attach_recipe(ds, SelectionRecipe(kind="top_fraction", fraction=1.0, method="exact", reports=[]))
    assert isinstance(out["nag_rank"][:], np.ndarray)


def test_malformed_recipe_raises():
    with pytest.raises(RecipeError):
        SelectionRecipe.from_json("{")
    with pytest.raises(RecipeError, match="unknown"):
        SelectionRecipe.from_dict({"kind": "x", "fraction": 1, "method": "exact", "reports": [], "nope": 1})
