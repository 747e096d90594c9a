"""Hub publishing: export folders that reload exactly, cards that state the real recipe, offline-safe pushes."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets import hub
from nag_datasets.hub import (
    HubPublishError,
    export_for_hub,
    profile_card,
    push_to_hub,
    regenerate_card,
    size_category,
)
from nag_datasets.hub import card as hub_card
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.selection.budgeted import select_multi_target, select_top_fraction
from nag_datasets.selection.quality import combine_with_quality
from nag_datasets.selection.recipe import get_recipe
from nag_datasets.signatures.columns import signature_columns
from nag_datasets.storage.atomic import FolderLockedError, lock_dir

FAKE_TOKEN = "hf_FAKEtokenNeverValid0123456789abcdef"
REPO = Path(__file__).resolve().parents[2]


def _pool(spec, n=240, seed=1):
    rng = np.random.default_rng(seed)
    extra = {
        "text": [f"document {i}" for i in range(n)],
        "num_tokens": rng.integers(1, 200, n).tolist(),
        "source": [("web", "code", "books")[i % 3] for i in range(n)],
        "quality": rng.random(n).tolist(),
    }
    return make_signature_dataset(random_signatures(n, spec, seed), spec, extra)


def _profile(spec, seed=7, description="synthetic target"):
    return NAGProfile.from_signatures(random_signatures(40, spec, seed), spec, description=description)


def _load(folder, tmp_path):
    from datasets import load_dataset

    return load_dataset(str(folder), split="train", cache_dir=str(tmp_path / "hf_cache"))


def _card(folder):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(Path(folder) / "README.md")


@pytest.fixture
def spec():
    return make_spec(model_name="tiny-test-model")


@pytest.fixture
def selection(spec):
    pool = _pool(spec)
    profile = _profile(spec)
    return pool, profile, select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile)


@pytest.mark.fast
def test_size_category_uses_hub_buckets():
    assert [size_category(n) for n in (0, 999, 1000, 9_999, 10_000, 999_999, 10**6, 10**12)] == [
        "n<1K", "n<1K", "1K<n<10K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "n>1T"]


@pytest.mark.fast
def test_round_trip_rows_order_features(selection, tmp_path):
    _, profile, selected = selection
    folder = export_for_hub(selected, tmp_path / "out", max_shard_rows=20, profile=profile)
    shards = sorted(p.name for p in (folder / "data").iterdir())
    n = -(-len(selected) // 20)
    assert shards == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    loaded = _load(folder, tmp_path)
    assert loaded.features == selected.features
    assert loaded.to_list() == selected.to_list()
    assert get_recipe(loaded) == get_recipe(selected)
    assert signature_columns(loaded) == signature_columns(selected)
    assert loaded["nag_rank"][:] == list(range(len(selected)))
    meta = json.loads((folder / "nag_recipe.json").read_text())
    assert meta["recipe"] == get_recipe(selected).to_dict()
    assert (folder / "score_distribution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.fast
def test_card_yaml_and_recipe_values_are_those_used(spec, tmp_path):
    seen = []
    for top_k, fraction in ((4, 0.3), (6, 0.1)):
        s = spec.replace(top_k=top_k)
        pool, profile = _pool(s), _profile(s)
        selected, report = select_top_fraction(pool, fraction, token_column="num_tokens", profile=profile,
                                               return_report=True)
        folder = export_for_hub(selected, tmp_path / f"k{top_k}", license="odc-by", source_datasets=["org/pool"],
                                source_column="source", token_column="num_tokens", profile=profile)
        card = _card(folder)
        data = card.data.to_dict()
        assert data["license"] == "odc-by"
        assert data["source_datasets"] == ["org/pool"]
        assert data["task_categories"] == ["text-generation"]
        assert data["size_categories"] == ["n<1K"]
        assert "nag" in data["tags"]
        assert data["configs"] == [{"config_name": "default", "data_files": [{"split": "train",
                                                                                "path": "data/train-*"}]}]
        nag = data["nag_selection"]
        assert (nag["top_k"], nag["fraction"], nag["method"]) == (top_k, fraction, "exact")
        assert nag["profile_fingerprints"] == [profile.fingerprint()]
        assert nag["spec_fingerprint"] == s.fingerprint()
        assert nag["model_name"] == "tiny-test-model"
        body = card.text
        assert f"| K (top_k) | {top_k} |" in body
        assert f"| r_f (token budget) | {fraction:.4g} ({100 * fraction:.2f}%)" in body
        assert profile.fingerprint() in body and s.fingerprint() in body
        assert f"| documents | {report.documents_selected:,} |" in body
        assert f"| tokens | {report.tokens_selected:,} tokens |" in body
        assert f"{100 * report.achieved_fraction:.2f}%" in body
        assert "| code |" in body and "| web |" in body and "| books |" in body
        assert "arXiv:2604.15706" in body
        seen.append(body)
    assert seen[0] != seen[1]


@pytest.mark.fast
def test_unknown_license_is_stated(selection, tmp_path):
    _, _, selected = selection
    card = _card(export_for_hub(selected, tmp_path / "out"))
    assert card.data.license == "unknown"
    assert "**License:** unknown." in card.text


@pytest.mark.fast
def test_reproduce_snippets_match_the_recipe(selection, tmp_path):
    _, _, selected = selection
    body = _card(export_for_hub(selected, tmp_path / "out", token_column="num_tokens", license="mit")).text
    code = body.split("```python\n")[2].split("```")[0]
    compile(code, "card", "exec")
    assert "select_top_fraction(pool, 0.3, token_column='num_tokens', profile=profile, method='exact')" in code
    assert "top_k=4" in code and "layers=[0, 1, 2]" in code
    cli = body.split("```bash\n")[1].split("```")[0]
    assert "--fraction 0.3 --token-column num_tokens --method exact" in cli
    assert "--top-k 4 --max-length 16 --layers 0,1,2" in cli
    assert "--license mit" in cli


@pytest.mark.fast
def test_multi_target_and_quality_recipes(spec, tmp_path):
    pool = _pool(spec)
    profiles = [_profile(spec, seed=3, description="target A"), _profile(spec, seed=4, description="target B")]
    multi = select_multi_target(pool, profiles, 0.2, token_column="num_tokens")
    card = _card(export_for_hub(multi, tmp_path / "multi", profile=profiles))
    assert card.data.nag_selection["shares"] == [0.1, 0.1]
    assert "multi-target mixture: 2 targets" in card.text
    assert "target A" in card.text and "target B" in card.text
    assert "select_multi_target(pool, profiles, 0.2" in card.text
    assert "use the library\nfor this recipe" in card.text

    combined = combine_with_quality(pool, profiles[0], "quality", weight=0.5)
    chosen = select_top_fraction(combined, 0.25, token_column="num_tokens", score_column="nag_combined")
    card = _card(export_for_hub(chosen, tmp_path / "quality"))
    assert card.data.nag_selection["quality_weight"] == 0.5
    assert "column `quality`, weight 0.5" in card.text
    assert "lower is better" in card.text
    meta = json.loads((tmp_path / "quality" / "nag_recipe.json").read_text())
    assert meta["score_histogram"]["origin"] == "column nag_combined"


@pytest.mark.fast
def test_non_empty_folder_refused_without_overwrite(selection, tmp_path):
    _, _, selected = selection
    out = tmp_path / "out"
    export_for_hub(selected, out)
    first = (out / "nag_recipe.json").read_text()
    with pytest.raises(FileExistsError, match="exists; pass overwrite"):
        export_for_hub(selected.select(range(5)), out)
    assert (out / "nag_recipe.json").read_text() == first
    export_for_hub(selected.select(range(5)), out, overwrite=True)
    assert len(_load(out, tmp_path)) == 5

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a nag_datasets export"):
        export_for_hub(selected, foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.fast
def test_concurrent_export_refused_and_failure_leaves_nothing(selection, tmp_path, monkeypatch):
    _, _, selected = selection
    out = tmp_path / "out"
    with lock_dir(out), pytest.raises(FolderLockedError):
        export_for_hub(selected, out)

    def broken(hist):
        raise RuntimeError("figure failed")

    monkeypatch.setattr(hub_card, "_figure_png", broken)
    with pytest.raises(RuntimeError, match="figure failed"):
        export_for_hub(selected, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []
    with pytest.raises(ValueError, match="empty"):
        export_for_hub(selected.select([]), out)


@pytest.mark.fast
def test_subset_without_recipe_says_unknown(spec, tmp_path):
    plain = _pool(spec, n=30)
    assert get_recipe(plain) is None
    folder = export_for_hub(plain, tmp_path / "out")
    card = _card(folder)
    assert card.data.nag_selection == "unknown"
    assert "The selection recipe is unknown" in card.text
    assert "r_f" not in card.text
    assert "| documents | 30 |" in card.text
    loaded = _load(folder, tmp_path)
    assert loaded.features == plain.features and loaded.to_list() == plain.to_list()


@pytest.mark.fast
def test_regenerate_card_from_recipe_and_data(selection, tmp_path):
    _, profile, selected = selection
    folder = export_for_hub(selected, tmp_path / "out", source_column="source", token_column="num_tokens",
                            profile=profile)
    original = (folder / "README.md").read_text()
    (folder / "README.md").unlink()
    (folder / "score_distribution.png").unlink()
    regenerate_card(folder)
    assert (folder / "README.md").read_text() == original
    assert (folder / "score_distribution.png").is_file()
    regenerate_card(folder, license="cc-by-4.0")
    assert _card(folder).data.license == "cc-by-4.0"
    assert json.loads((folder / "nag_recipe.json").read_text())["card"]["license"] == "cc-by-4.0"
    with pytest.raises(TypeError, match="unknown card setting"):
        regenerate_card(folder, licence="mit")


def _online_without_network(monkeypatch, calls):
    """Pretend to be online, with every Hub call recorded instead of sent."""
    import huggingface_hub
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw))
        return f"https://huggingface.co/datasets/{repo_id}"

    def upload_folder(self, **kw):
        calls.append(("upload_folder", sorted(p.name for p in Path(kw["folder_path"]).iterdir()), kw))

    def upload_file(self, **kw):
        calls.append(("upload_file", kw["path_in_repo"], kw))

    def list_repo_files(self, repo_id, **kw):  # a new repo: no config published yet
        return []

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_file", upload_file)


def _assert_token_absent(root, *texts):
    for text in texts:
        assert FAKE_TOKEN not in text
    for path in Path(root).rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


@pytest.mark.fast
def test_push_offline_fails_after_local_export(selection, tmp_path, monkeypatch, caplog, capsys):
    import huggingface_hub

    _, _, selected = selection
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub must not be contacted offline")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubPublishError, match="offline") as err:
        push_to_hub(selected, "someone/subset", token=FAKE_TOKEN, folder=tmp_path / "local")
    assert str(tmp_path / "local") in str(err.value)
    assert err.value.local_folder == tmp_path / "local"
    assert _load(tmp_path / "local", tmp_path).to_list() == selected.to_list()
    assert "someone/subset" in (tmp_path / "local" / "README.md").read_text()
    out = capsys.readouterr()
    _assert_token_absent(tmp_path, str(err.value), repr(err.value), caplog.text, out.out, out.err)

    with pytest.raises(HubPublishError) as err:
        push_to_hub(selected, "someone/subset", token=FAKE_TOKEN)
    temp_export = err.value.local_folder
    try:
        assert str(temp_export) in str(err.value)
        assert (temp_export / "README.md").is_file() and (temp_export / "nag_recipe.json").is_file()
    finally:
        shutil.rmtree(temp_export.parent, ignore_errors=True)


@pytest.mark.fast
def test_push_unauthenticated_fails_after_local_export(selection, tmp_path, monkeypatch):
    from huggingface_hub import constants

    _, _, selected = selection
    calls = []
    _online_without_network(monkeypatch, calls)
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    with pytest.raises(HubPublishError, match="not logged in") as err:
        push_to_hub(selected, "someone/subset", folder=tmp_path / "local")
    assert str(tmp_path / "local") in str(err.value)
    assert (tmp_path / "local" / "README.md").is_file()
    assert calls == []


@pytest.mark.fast
def test_push_uploads_data_first_then_card_private(selection, tmp_path, monkeypatch, caplog, capsys):
    _, _, selected = selection
    calls = []
    _online_without_network(monkeypatch, calls)
    caplog.set_level(logging.DEBUG)
    url = push_to_hub(selected, "someone/subset", token=FAKE_TOKEN, folder=tmp_path / "local", license="mit")
    assert url == "https://huggingface.co/datasets/someone/subset"
    assert [c[0] for c in calls] == ["create_repo", "upload_folder", "upload_file"]
    assert calls[0][2]["private"] is True and calls[0][2]["repo_type"] == "dataset"
    assert calls[1][2]["ignore_patterns"] == ["README.md"]
    assert calls[1][2]["delete_patterns"] == ["data/*"]
    assert calls[2][1] == "README.md"
    assert all(c[2]["token"] == FAKE_TOKEN for c in calls)
    out = capsys.readouterr()
    _assert_token_absent(tmp_path, caplog.text, out.out, out.err)


@pytest.mark.fast
def test_push_failure_message_hides_the_token(selection, tmp_path, monkeypatch):
    import huggingface_hub

    _, _, selected = selection
    _online_without_network(monkeypatch, [])

    def refuse(self, repo_id, **kw):
        raise ConnectionError(f"401 Unauthorized: invalid token {kw['token']}")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", refuse)
    with pytest.raises(HubPublishError, match="401 Unauthorized") as err:
        push_to_hub(selected, "someone/subset", token=FAKE_TOKEN, folder=tmp_path / "local")
    assert err.value.__cause__ is None and err.value.__suppress_context__
    _assert_token_absent(tmp_path, str(err.value))


@pytest.mark.fast
def test_profile_card_and_load_give_identical_scores(spec, tmp_path):
    from huggingface_hub import DatasetCard

    profile = _profile(spec, description="target | with a pipe")
    pool = _pool(spec)
    folder = tmp_path / "profile"
    profile.save(folder)
    card_path = profile_card(profile, folder, license="cc-by-4.0", source_datasets="org/targets",
                             repo_id="someone/profile")
    card = DatasetCard.load(card_path)
    assert card.data.license == "cc-by-4.0"
    assert card.data.nag_profile["fingerprint"] == profile.fingerprint()
    assert card.data.nag_profile["top_k"] == spec.top_k
    assert card.data.viewer is False
    assert 'NAGProfile.from_pretrained("someone/profile")' in card.text
    assert "target \\| with a pipe" in card.text
    for loaded in (NAGProfile.load(folder), NAGProfile.from_pretrained(folder)):
        assert loaded == profile
        np.testing.assert_array_equal(loaded.score(pool), profile.score(pool))

    other = _profile(spec, seed=99)
    with pytest.raises(ProfileError, match="holds profile"):
        profile_card(other, folder)
    fresh = tmp_path / "fresh"
    profile_card(other, fresh)
    assert NAGProfile.from_pretrained(fresh) == other and (fresh / "README.md").is_file()


@pytest.mark.fast
def test_from_pretrained_offline_unknown_repo_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ProfileError, match="could not be fetched"):
        NAGProfile.from_pretrained("someone/no-such-profile")
    with pytest.raises(ProfileError, match="not a profile folder"):
        NAGProfile.from_pretrained(str(tmp_path / "missing-dir") + "/")


@pytest.mark.fast
def test_cli_export_card_and_push(selection, tmp_path, capsys, monkeypatch):
    from nag_datasets.cli.app import main

    _, _, selected = selection
    selected.save_to_disk(str(tmp_path / "selected"))
    out = tmp_path / "export"
    assert main(["export", str(tmp_path / "selected"), str(out), "--license", "mit", "--source-dataset", "a/b",
                 "--source-dataset", "c/d", "--source-column", "source"]) == 0
    card = _card(out)
    assert card.data.license == "mit" and card.data.source_datasets == ["a/b", "c/d"]
    assert "By source" in card.text
    assert main(["export", str(tmp_path / "selected"), str(out)]) == 1
    assert "exists; pass overwrite" in capsys.readouterr().err
    assert main(["card", str(out), "--license", "apache-2.0"]) == 0
    assert _card(out).data.license == "apache-2.0"

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", str(tmp_path / "selected"), "someone/subset", "--folder", str(tmp_path / "p")]) == 1
    err = capsys.readouterr().err
    assert "offline" in err and str(tmp_path / "p") in err
    assert (tmp_path / "p" / "README.md").is_file()


@pytest.mark.fast
def test_templates_are_found():
    for name in ("selected_subset.md", "target_profile.md"):
        path = hub.template_path(name)
        assert path.is_file() and "{{ card_data }}" in path.read_text()
    with pytest.raises(FileNotFoundError):
        hub.template_path("nope.md")


@pytest.mark.slow
def test_templates_ship_in_a_non_editable_install(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".ruff_cache", "benchmarks",
        "notebooks", "tests"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip"]
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)],
                   check=True, env=env, cwd=tmp_path)
    (wheel,) = wheels.glob("*.whl")
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True, env=env)
    for name in ("selected_subset.md", "target_profile.md"):
        installed = target / "nag_datasets" / "hub_cards" / name
        assert installed.is_file() and not installed.is_symlink()
        assert installed.read_text() == (REPO / "hub_cards" / name).read_text()
    code = ("import nag_datasets.hub as h, sys; p = h.template_path('selected_subset.md'); "
            f"assert str(p).startswith({str(target)!r}), p; print(p)")
    run = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": str(target)}, cwd=tmp_path,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr


@pytest.mark.fast
def test_contrastive_selection_card_and_profile_card(spec, tmp_path):
    from huggingface_hub import DatasetCard

    pool = _pool(spec)
    background = NAGProfile.from_dataset(pool, "nag_fwd_up", sample=150, seed=2, description="pool sample")
    profile = _profile(spec).contrast(background, "shrinkage", m=50, alpha=0.5)
    selected = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile)
    recipe = get_recipe(selected)
    summary = recipe.profiles[0]
    assert summary["score_kind"] == "contrastive" and summary["weighting"] == {"name": "shrinkage", "m": 50.0,
                                                                                 "alpha": 0.5}
    assert summary["background"]["fingerprint"] == background.fingerprint()
    body = _card(export_for_hub(selected, tmp_path / "out", token_column="num_tokens", license="mit")).text
    assert "contrastive score against one target profile" in body and "It is not a similarity" in body
    assert "`shrinkage(alpha=0.5, m=50.0)`" in body and background.fingerprint() in body and "pool sample" in body
    assert "uniform sample of 150 of 240 rows with a signature, seed 2" in body
    cli = body.split("```bash\n")[1].split("```")[0]
    assert ("nag-datasets profile target_nag PROFILE_DIR --background pool_nag --weighting shrinkage --alpha 0.5 "
            "--m 50.0 --signal nag --background-sample 150 --background-seed 2") in cli

    folder = tmp_path / "profile"
    card = DatasetCard.load(profile_card(profile, folder, license="mit"))
    assert card.data.nag_profile["score_kind"] == "contrastive"
    assert card.data.nag_profile["background"]["num_documents"] == 150
    assert "**Contrastive profile.**" in card.text and "largest contrastive weights" in card.text
    loaded = NAGProfile.from_pretrained(folder)
    assert loaded == profile and loaded.score(pool).tobytes() == profile.score(pool).tobytes()
