"""Artefact integrity: every comparison across signature specs is refused naming the fields, and damaged profile or
recipe files fail loudly instead of producing a wrong score."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.hub import export_for_hub, regenerate_card
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.selection.budgeted import select_multi_target, select_top_fraction
from nag_datasets.selection.quality import combine_with_quality, combined_scores
from nag_datasets.selection.recipe import RecipeError, SelectionRecipe, attach_recipe, get_recipe
from nag_datasets.signatures.spec import COMPARED_FIELDS, RECORDED_FIELDS, SpecError, SpecMismatchError

pytestmark = pytest.mark.fast

#: A value different from make_spec()'s for every compared field (shapes stay valid for the spec).
CHANGED = {
    "model_fingerprint": "model-b", "tokenizer_fingerprint": "tok-b", "neuron_type": "att_q", "top_k": 3,
    "layers": (0, 1, 5), "max_length": 32, "add_special_tokens": True, "neurons_per_layer": 64,
    "impact_version": "999",
}


def test_changed_values_cover_every_compared_field():
    assert set(CHANGED) == set(COMPARED_FIELDS)


def _pool(spec, n=60, seed=1, column="nag_fwd_up"):
    rng = np.random.default_rng(seed)
    extra = {"text": [f"doc {i}" for i in range(n)], "num_tokens": rng.integers(1, 50, n).tolist(),
             "quality": rng.random(n).tolist()}
    return make_signature_dataset(random_signatures(n, spec, seed), spec, extra, column=column)


def _assert_names(err: pytest.ExceptionInfo, field: str, left, right) -> None:
    message = str(err.value)
    assert field in message, message
    assert repr(left) in message and repr(right) in message, message


def _comparisons(profile, other_profile, ds):
    """Every library call that compares signatures computed with (possibly) different specs."""
    col = "nag_fwd_up"
    return {
        "score": lambda: profile.score(ds, col),
        "scorer_for": lambda: profile.scorer_for(ds, col),
        "filter": lambda: profile.filter(0.1, col, dataset=ds),
        "check_column": lambda: profile.check_column(ds, col),
        "merge": lambda: NAGProfile.merge([profile, other_profile]),
        "select_top_fraction": lambda: select_top_fraction(ds, 0.5, token_column="num_tokens", profile=profile,
                                                           column=col),
        "select_multi_target": lambda: select_multi_target(ds, [profile, profile], 0.5, token_column="num_tokens",
                                                           column=col),
        "combined_scores": lambda: combined_scores(ds, profile, "quality", column=col),
        "combine_with_quality": lambda: combine_with_quality(ds, profile, "quality", column=col),
    }


@pytest.mark.parametrize("field", COMPARED_FIELDS)
def test_every_comparison_refuses_every_mismatched_field(field, tmp_path):
    spec = make_spec()
    other = spec.replace(**{field: CHANGED[field]})
    # The profile goes through disk, as users hold it.
    profile = NAGProfile.load(NAGProfile.from_signatures(random_signatures(20, spec, 3), spec).save(tmp_path / "p"))
    other_profile = NAGProfile.from_signatures(random_signatures(20, other, 4), other)
    ds = _pool(other)
    left, right = spec.to_dict()[field], other.to_dict()[field]
    for name, call in _comparisons(profile, other_profile, ds).items():
        with pytest.raises(SpecMismatchError) as err:
            call()
        _assert_names(err, field, left, right)
        assert name  # (for the failure report)
    # Hub export scoring the selection with a profile of another spec.
    same = _pool(spec)
    selected = select_top_fraction(same, 0.5, token_column="num_tokens", profile=profile)
    if field == "neuron_type":  # the profile looks for its own column, nag_att_q, which is not there
        with pytest.raises(KeyError, match="nag_att_q"):
            export_for_hub(selected, tmp_path / "export", profile=other_profile)
    else:
        with pytest.raises(SpecMismatchError) as err:
            export_for_hub(selected, tmp_path / "export", profile=other_profile)
        _assert_names(err, field, left, right)
    assert not (tmp_path / "export").exists()


def test_several_mismatched_fields_are_all_named():
    spec = make_spec()
    other = spec.replace(model_fingerprint="model-b", max_length=99, add_special_tokens=True)
    profile = NAGProfile.from_signatures(random_signatures(5, spec), spec)
    with pytest.raises(SpecMismatchError) as err:
        profile.score(_pool(other))
    for field in ("model_fingerprint", "max_length", "add_special_tokens"):
        assert field in str(err.value)


@pytest.mark.parametrize("field", RECORDED_FIELDS)
def test_recorded_fields_never_refuse(field):
    spec = make_spec(dtype="float32")
    value = "bfloat16" if field == "dtype" else "something else"
    other = spec.replace(**{field: value})
    profile = NAGProfile.from_signatures(random_signatures(5, spec), spec)
    ds = _pool(other)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = profile.score(ds)
    assert scores.shape == (len(ds),) and not np.isnan(scores).any()
    warned = [str(w.message) for w in caught if "near-tied" in str(w.message)]
    assert bool(warned) == (field == "dtype")


def test_column_without_spec_is_refused_everywhere():
    from datasets import Dataset

    spec = make_spec()
    profile = NAGProfile.from_signatures(random_signatures(5, spec), spec)
    ds = Dataset.from_dict({"nag_fwd_up": random_signatures(4, spec).tolist(), "num_tokens": [1, 2, 3, 4],
                            "quality": [0.1, 0.2, 0.3, 0.4]})
    for name, call in _comparisons(profile, profile, ds).items():
        if name == "merge":  # compares two profiles, no column
            continue
        with pytest.raises(SpecError, match="attach_spec"):
            call()


# -- damaged profile files -------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    spec = make_spec(dtype="float32", model_name="m")
    profile = NAGProfile.from_signatures(random_signatures(30, spec, 5), spec, description="targets")
    folder = profile.save(tmp_path / "profile")
    pool = _pool(spec, n=50)
    return profile, folder, pool, profile.score(pool)


def _load_or_error(folder: Path):
    try:
        return NAGProfile.load(folder)
    except ProfileError as e:
        assert str(e)  # a message, not an empty error
        return None


def test_every_truncation_of_either_profile_file_is_refused(saved):
    profile, folder, _, _ = saved
    for name in ("profile.json", "profile.safetensors"):
        path = folder / name
        original = path.read_bytes()
        for n in range(len(original)):
            path.write_bytes(original[:n])
            # A shorter JSON file can still parse (truncating only the final newline); it must then be identical.
            loaded = _load_or_error(folder)
            assert loaded is None or (loaded == profile and n >= len(original.rstrip())), (name, n)
        path.write_bytes(original)
    assert NAGProfile.load(folder) == profile


@pytest.mark.filterwarnings("ignore:profile was computed in")
def test_any_byte_flip_is_refused_or_harmless(saved):
    """Flip every byte of profile.json and a sample of profile.safetensors: the load fails or scores identically."""
    profile, folder, pool, scores = saved
    rng = np.random.default_rng(0)
    for name, positions in (("profile.json", None), ("profile.safetensors", 200)):
        path = folder / name
        original = path.read_bytes()
        where = range(len(original)) if positions is None else rng.choice(len(original), positions, replace=False)
        for i in where:
            damaged = bytearray(original)
            damaged[int(i)] ^= 0x01
            path.write_bytes(bytes(damaged))
            loaded = _load_or_error(folder)
            if loaded is not None:
                assert name == "profile.json"
                assert loaded.fingerprint == profile.fingerprint, i
                assert loaded.score(pool).tobytes() == scores.tobytes(), i
        path.write_bytes(original)


@pytest.mark.parametrize("change", [
    {"spec.layers": [0, 1, 5]}, {"spec.model_fingerprint": "model-b"}, {"spec.max_length": 17},
    {"spec.add_special_tokens": True}, {"spec.impact_version": "2"}, {"num_targets": 60},
])
def test_edited_profile_json_is_refused(saved, change):
    """A valid JSON edit that keeps shapes consistent would silently change what the profile compares with."""
    _, folder, _, _ = saved
    meta = json.loads((folder / "profile.json").read_text())
    for key, value in change.items():
        target = meta
        *parents, last = key.split(".")
        for p in parents:
            target = target[p]
        target[last] = value
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="changed after saving|sum to"):
        NAGProfile.load(folder)


@pytest.mark.parametrize("value", ["abc", None, [1], -1, 0])
def test_malformed_num_targets_is_a_profile_error(saved, value):
    _, folder, _, _ = saved
    meta = json.loads((folder / "profile.json").read_text())
    meta["num_targets"] = value
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError):
        NAGProfile.load(folder)


def test_swapped_counts_file_from_another_profile_is_refused(saved, tmp_path):
    profile, folder, _, _ = saved
    other = NAGProfile.from_signatures(random_signatures(30, profile.spec, 99), profile.spec)
    other_folder = other.save(tmp_path / "other")
    (folder / "profile.safetensors").write_bytes((other_folder / "profile.safetensors").read_bytes())
    with pytest.raises(ProfileError, match="sha256"):
        NAGProfile.load(folder)
    # ... even with the hash updated to match: the fingerprint no longer does.
    meta = json.loads((folder / "profile.json").read_text())
    meta["counts_sha256"] = hashlib.sha256((folder / "profile.safetensors").read_bytes()).hexdigest()
    (folder / "profile.json").write_text(json.dumps(meta))
    with pytest.raises(ProfileError, match="changed after saving"):
        NAGProfile.load(folder)


# -- damaged recipes -------------------------------------------------------------------------------------------


@pytest.fixture
def export(tmp_path):
    spec = make_spec()
    pool = _pool(spec, n=80)
    profile = NAGProfile.from_signatures(random_signatures(20, spec, 3), spec)
    selected = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile)
    return selected, export_for_hub(selected, tmp_path / "export", token_column="num_tokens")


def test_truncated_hub_recipe_file_is_a_clear_error(export, capsys):
    from nag_datasets.cli.app import main

    _, folder = export
    path = folder / "nag_recipe.json"
    original = path.read_bytes()
    card = (folder / "README.md").read_bytes()
    for n in sorted({0, 1, 10, len(original) // 3, len(original) // 2, len(original) - 3}):
        path.write_bytes(original[:n])
        with pytest.raises(RecipeError, match="not valid JSON"):
            regenerate_card(folder)
        assert main(["card", str(folder)]) == 1
        assert "not valid JSON" in capsys.readouterr().err
        assert (folder / "README.md").read_bytes() == card  # the card was not rewritten from bad data
    path.write_bytes(original)
    regenerate_card(folder)


@pytest.mark.parametrize("edit, pattern", [
    (lambda m: m["recipe"].update(fraction="0.3"), "fraction"),
    (lambda m: m["recipe"].update(fraction=3.0), "outside"),
    (lambda m: m["recipe"].update(reports="none"), "reports"),
    (lambda m: m["recipe"].update(higher_is_better="yes"), "higher_is_better"),
    (lambda m: m["recipe"]["spec"].pop("top_k"), "top_k"),
    (lambda m: m["recipe"].pop("kind"), "kind"),
    (lambda m: m["recipe"].update(surprise=1), "surprise"),
    (lambda m: m.pop("card"), "card"),
    (lambda m: m.update(score_histogram=[]), "score_histogram"),
    (lambda m: m.update(format="something"), "not a nag_datasets export"),
])
def test_malformed_hub_recipe_is_refused(export, edit, pattern):
    _, folder = export
    meta = json.loads((folder / "nag_recipe.json").read_text())
    edit(meta)
    (folder / "nag_recipe.json").write_text(json.dumps(meta))
    with pytest.raises(RecipeError, match=pattern):
        regenerate_card(folder)


def _tamper_rank_id(folder: Path, change) -> None:
    """Rewrite the recipe stored in the ``nag_rank`` feature of a save_to_disk folder."""
    info_path = folder / "dataset_info.json"
    info = json.loads(info_path.read_text())
    feature = info["features"]["nag_rank"]
    feature["id"] = change(feature["id"])
    info_path.write_text(json.dumps(info))


@pytest.mark.parametrize("change, pattern", [
    (lambda s: s[: len(s) // 2], "not valid JSON"),
    (lambda s: s[:-1], "not valid JSON"),
    (lambda s: s.replace('"fraction":0.3', '"fraction":"0.3"'), "fraction"),
    (lambda s: s.replace('"kind":"top_fraction",', ""), "kind"),
    (lambda s: s.replace('"method":"exact"', '"method":null'), "method"),
])
def test_damaged_recipe_on_nag_rank_is_refused(export, tmp_path, change, pattern):
    from datasets import load_from_disk

    selected, _ = export
    folder = tmp_path / "selected"
    selected.save_to_disk(str(folder))
    _tamper_rank_id(folder, change)
    damaged = load_from_disk(str(folder))
    with pytest.raises(RecipeError, match=pattern):
        get_recipe(damaged)
    with pytest.raises(RecipeError, match=pattern):
        export_for_hub(damaged, tmp_path / "export2")
    assert not (tmp_path / "export2").exists()


def test_intact_recipe_round_trips_through_the_type_checks():
    recipe = SelectionRecipe(kind="top_fraction", fraction=0.2, method="exact", reports=[{"a": 1}],
                             spec=make_spec().to_dict(), shares=[0.1, 0.1], dedup=False, quality={"w": 1.0})
    assert SelectionRecipe.from_json(recipe.to_json()) == recipe
    from datasets import Dataset

    assert get_recipe(attach_recipe(Dataset.from_dict({"t": [1]}), recipe)) == recipe
