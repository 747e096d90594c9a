"""Hub conventions: several configs per folder or repo (each loads by name), scored pools as a config, ``language``
in the card, shards sized in bytes, ``revision`` / ``create_pr`` and the large-folder uploader (a recording fake
``HfApi``: no network)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.cli.app import main
from nag_datasets.hub import export_for_hub, push_to_hub, regenerate_card
from nag_datasets.hub.configs import yaml_configs
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.scored import score_pool

pytestmark = pytest.mark.fast

FAKE_TOKEN = "hf_FAKEtokenNeverValid0123456789abcdef"
N = 90


@pytest.fixture(scope="module")
def data():
    """(pool, profile, selection, scored pool): fixed-size rows, so equal-row shards have equal bytes."""
    spec = make_spec(model_name="tiny-test-model")
    extra = {"text": [f"document {i:04d}" for i in range(N)], "num_tokens": [10 + i % 5 for i in range(N)]}
    pool = make_signature_dataset(random_signatures(N, spec, seed=3), spec, extra)
    profile = NAGProfile.from_signatures(random_signatures(20, spec, seed=5), spec, description="target")
    return (
        pool,
        profile,
        select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profile),
        score_pool(pool, profile),
    )


def _load(folder, name, tmp_path):
    from datasets import load_dataset

    return load_dataset(str(folder), name, split="train", cache_dir=str(tmp_path / "hf_cache"))


def _card(path):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(Path(path))


def test_two_configs_in_one_folder_load_by_name(data, tmp_path, capsys):
    _, _, selected, scored = data
    out = tmp_path / "out"
    export_for_hub(selected, out, license="odc-by", token_column="num_tokens")
    export_for_hub(scored, out, config_name="scored", license="odc-by", token_column="num_tokens")
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "data",
        "nag_recipe.json",
        "score_distribution.png",
        "scored",
    ]
    assert sorted(p.name for p in (out / "scored").iterdir()) == [
        "nag_recipe.json",
        "score_distribution.png",
        "train-00000-of-00001.parquet",
    ]
    for name, ds in (("default", selected), ("scored", scored)):
        loaded = _load(out, name, tmp_path)
        assert loaded.features == ds.features and loaded.to_list() == ds.to_list()
    card = _card(out / "README.md")
    assert card.data.configs == yaml_configs(["default", "scored"])
    assert card.data.nag_scored["score_column"] == "nag_similarity"
    assert "# NAG-scored pool" in card.text and "this card describes `scored`" in card.text
    assert 'load_dataset("REPO_ID", "scored", split="train")' in card.text
    assert "![Score distribution](scored/score_distribution.png)" in card.text and "nag_selection" not in card.data
    assert "## How it was scored" in card.text and "Nothing was dropped" in card.text
    assert "| `default` | 27 | NAG selection | `data/` |" in card.text.replace(f"{len(selected):,}", "27")
    assert f"| `scored` | {N} | scored pool (column `nag_similarity`) | `scored/` |" in card.text

    # The same config again: refused without overwrite, replaced alone with it.
    with pytest.raises(FileExistsError, match="exists; pass overwrite.*'scored'"):
        export_for_hub(scored, out, config_name="scored")
    export_for_hub(scored.select(range(10)), out, config_name="scored", overwrite=True)
    assert len(_load(out, "scored", tmp_path / "2")) == 10
    assert _load(out, "default", tmp_path / "2").to_list() == selected.to_list()
    # The card rebuilt from the recipes: the default config described, both listed.
    regenerate_card(out)
    card = _card(out / "README.md")
    assert card.data.configs == yaml_configs(["default", "scored"]) and "this card describes `default`" in card.text
    with pytest.raises(ValueError, match="config name"):
        export_for_hub(scored, out, config_name="data")

    # The command line: a scored pool saved to disk, exported as a config of the same folder.
    scored.save_to_disk(str(tmp_path / "scored_ds"))
    assert main(["export", str(tmp_path / "scored_ds"), str(out), "--config-name", "pool"]) == 0
    assert json.loads(capsys.readouterr().out)["config"] == "pool"
    assert _load(out, "pool", tmp_path / "3").to_list() == scored.to_list()
    assert [c["config_name"] for c in _card(out / "README.md").data.configs] == ["default", "pool", "scored"]
    (out / "notes.txt").write_text("mine")
    assert main(["export", str(tmp_path / "scored_ds"), str(out), "--config-name", "other"]) == 1
    assert "notes.txt" in capsys.readouterr().err


def test_overwrite_never_deletes_a_users_file_inside_a_config_folder(data, tmp_path, capsys):
    _, _, selected, scored = data
    out = tmp_path / "out"
    export_for_hub(selected, out)
    (out / "data" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"data/notes\.txt"):  # the only config: the whole folder is rebuilt
        export_for_hub(selected, out, overwrite=True)
    export_for_hub(scored, out, config_name="scored")  # another config does not write data/: the file stays
    assert (out / "data" / "notes.txt").read_text() == "mine"
    (out / "scored" / "keep.md").write_text("mine too")
    (out / "scored" / "plots").mkdir()
    selected.save_to_disk(str(tmp_path / "sel"))
    scored.save_to_disk(str(tmp_path / "scored_ds"))
    for source, argv, needle in ((tmp_path / "sel", ["--overwrite"], "data/notes.txt"),
                                 (tmp_path / "scored_ds", ["--config-name", "scored", "--overwrite"],
                                  "scored/keep.md, scored/plots")):
        capsys.readouterr()
        assert main(["export", str(source), str(out), *argv]) == 1
        err = capsys.readouterr().err
        assert needle in err and "not a nag_datasets export" in err, err
    assert (out / "data" / "notes.txt").read_text() == "mine" and (out / "scored" / "keep.md").read_text() == "mine too"
    # Its own files alone, a config is replaced as before.
    (out / "scored" / "keep.md").unlink()
    (out / "scored" / "plots").rmdir()
    export_for_hub(scored.select(range(5)), out, config_name="scored", overwrite=True)
    assert len(_load(out, "scored", tmp_path)) == 5 and (out / "data" / "notes.txt").is_file()


def test_card_yaml_carries_language_when_known(data, tmp_path):
    _, _, selected, _ = data
    export_for_hub(selected, tmp_path / "en", language=["en", "fr"])
    assert _card(tmp_path / "en" / "README.md").data.language == ["en", "fr"]
    export_for_hub(selected, tmp_path / "none")
    assert "language" not in _card(tmp_path / "none" / "README.md").data.to_dict()
    regenerate_card(tmp_path / "none", language="de")
    assert _card(tmp_path / "none" / "README.md").data.language == ["de"]
    assert main(["card", str(tmp_path / "none"), "--language", "es"]) == 0
    assert _card(tmp_path / "none" / "README.md").data.language == ["es"]


def test_shards_are_sized_in_bytes(data, tmp_path):
    import pyarrow.parquet as pq

    _, _, _, scored = data
    nbytes = scored._estimate_nbytes()
    for size, expected in ((nbytes // 3 + 1, 3), (nbytes // 5 + 1, 5), (str(nbytes + 1), 1), ("500MB", 1)):
        limit = int(size) if str(size).isdigit() else 500 * 10**6
        out = export_for_hub(scored, tmp_path / f"s{expected}-{size}", max_shard_size=size)
        files = sorted((out / "data").glob("train-*.parquet"))
        assert len(files) == expected == math.ceil(nbytes / limit)
        for i, f in enumerate(files):
            # Each shard holds the rows of an even split, at most `limit` bytes of Arrow data as `datasets` counts
            # them for push_to_hub (the parquet file itself is compressed, plus metadata).
            part = scored.shard(expected, i, contiguous=True)
            assert pq.read_table(f).num_rows == len(part) == N // expected
            assert part._estimate_nbytes() <= limit
        assert _load(out, "default", tmp_path / f"c{expected}-{size}").to_list() == scored.to_list()
    # Rows and bytes together: the stricter of the two.
    out = export_for_hub(scored, tmp_path / "both", max_shard_size=nbytes // 2 + 1, max_shard_rows=10)
    assert len(list((out / "data").glob("train-*.parquet"))) == 9
    for bad in (0, "0KB", "lots"):
        with pytest.raises(ValueError, match="max_shard_size"):
            export_for_hub(scored, tmp_path / "bad", max_shard_size=bad)
    assert not (tmp_path / "bad").exists()


class FakeHub:
    """An ``HfApi`` stand-in that records every call and answers from a fixed repo file list (no network)."""

    def __init__(self, files=(), *, large: bool = False, card: str | None = None) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.files = list(files)
        self.card = card  # the repo's README.md, when it has one
        self.cards: list[str] = []
        self.uploaded: list[list[str]] = []
        if large:  # huggingface_hub < 2 has upload_large_folder; 2.x removed it
            self.upload_large_folder = self._upload_large_folder

    def _record(self, name, kw):
        self.calls.append((name, kw))

    def create_repo(self, repo_id, **kw):
        self._record("create_repo", {"repo_id": repo_id, **kw})
        return f"https://huggingface.co/datasets/{repo_id}"

    def create_branch(self, repo_id, **kw):
        self._record("create_branch", {"repo_id": repo_id, **kw})

    def list_repo_files(self, repo_id, **kw):
        self._record("list_repo_files", {"repo_id": repo_id, **kw})
        return list(self.files)

    def hf_hub_download(self, **kw):
        from huggingface_hub.errors import EntryNotFoundError

        self._record("hf_hub_download", kw)
        if self.card is None:
            raise EntryNotFoundError(f"{kw['filename']} not in the repo")
        path = Path(__import__("tempfile").mkdtemp()) / kw["filename"]
        path.write_text(self.card)
        return str(path)

    def _files(self, folder):
        return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*") if p.is_file())

    def upload_folder(self, **kw):
        self._record("upload_folder", kw)
        self.uploaded.append(self._files(kw["folder_path"]))
        pr = kw.get("create_pr")
        return SimpleNamespace(
            pr_revision="refs/pr/7" if pr else None,
            pr_url="https://huggingface.co/datasets/me/ds/discussions/7" if pr else None,
        )

    def _upload_large_folder(self, **kw):
        self._record("upload_large_folder", kw)
        self.uploaded.append(self._files(kw["folder_path"]))

    def upload_file(self, **kw):
        self._record("upload_file", kw)
        self.cards.append(Path(kw["path_or_fileobj"]).read_text())

    def create_commit(self, **kw):
        self._record("create_commit", {**kw, "operations": [op.path_in_repo for op in kw["operations"]]})

    def names(self):
        return [c[0] for c in self.calls]

    def call(self, name):
        (kw,) = [kw for n, kw in self.calls if n == name]
        return kw


@pytest.fixture
def online(monkeypatch):
    """Online as far as the library can tell (push refuses HF_HUB_OFFLINE before any Hub call), but every Hub call
    goes to a FakeHub passed as ``api``: a real ``HfApi`` cannot even be made."""
    import huggingface_hub
    from huggingface_hub import constants

    def no_network(*args, **kwargs):
        raise AssertionError("a real HfApi was made: tests must pass a FakeHub")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", no_network)


DEFAULT_FILES = ["README.md", "nag_recipe.json", "score_distribution.png", "data/train-00000-of-00001.parquet"]


def test_publishing_a_second_config_keeps_the_first(data, tmp_path, online):
    from huggingface_hub import DatasetCard

    _, _, _, scored = data
    hub = FakeHub(DEFAULT_FILES)
    url = push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=hub, config_name="scored", folder=tmp_path / "local")
    assert url == "https://huggingface.co/datasets/me/ds"
    assert hub.names() == ["create_repo", "list_repo_files", "hf_hub_download", "upload_folder", "upload_file"]
    assert hub.call("hf_hub_download")["filename"] == "README.md"  # the repo card's repository-level fields
    up = hub.call("upload_folder")
    assert up["delete_patterns"] == ["scored/*"] and up["ignore_patterns"] == ["README.md"]
    # The folder holds this config only (README.md is ignored, uploaded last on its own).
    assert hub.uploaded[0] == [
        "README.md",
        "scored/nag_recipe.json",
        "scored/score_distribution.png",
        "scored/train-00000-of-00001.parquet",
    ]
    card = DatasetCard(hub.cards[0])
    assert card.data.configs == yaml_configs(["default", "scored"])
    assert "(published earlier; see its nag_recipe.json)" in card.text
    assert (
        all(kw.get("token") == FAKE_TOKEN for name, kw in hub.calls if name != "list_repo_files")
        and hub.call("list_repo_files")["token"] == FAKE_TOKEN
    )
    # Publishing the default config over it replaces only data/*.
    hub = FakeHub([*DEFAULT_FILES, "scored/train-00000-of-00001.parquet", "scored/nag_recipe.json"])
    push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=hub)
    assert hub.call("upload_folder")["delete_patterns"] == ["data/*"]
    assert DatasetCard(hub.cards[0]).data.configs == yaml_configs(["default", "scored"])


def test_a_later_config_keeps_the_repository_level_card_fields(data, tmp_path, capsys, online):
    from huggingface_hub import DatasetCard

    _, _, selected, scored = data
    out = tmp_path / "out"
    selected.save_to_disk(str(tmp_path / "sel"))
    scored.save_to_disk(str(tmp_path / "scored"))
    assert main(["export", str(tmp_path / "sel"), str(out), "--license", "odc-by", "--source-dataset", "org/pool",
                 "--language", "en", "--pretty-name", "Math subset"]) == 0
    # README step 4: the scored pool as a second config, without --license or --source-dataset.
    assert main(["export", str(tmp_path / "scored"), str(out), "--config-name", "scored",
                 "--token-column", "num_tokens", "--language", "en"]) == 0
    card = _card(out / "README.md")
    assert card.data.license == "odc-by" and card.data.source_datasets == ["org/pool"]
    assert card.data.pretty_name == "Math subset" and card.data.language == ["en"]
    recorded = json.loads((out / "scored" / "nag_recipe.json").read_text())["card"]
    assert (recorded["license"], recorded["source_datasets"]) == ("odc-by", ["org/pool"])
    # A conflicting explicit value is refused by name, with both values and the way to change it.
    capsys.readouterr()
    assert main(["export", str(tmp_path / "scored"), str(out), "--config-name", "scored", "--overwrite",
                 "--license", "mit"]) == 1
    err = capsys.readouterr().err
    assert "--license mit conflicts with the license 'odc-by'" in err and "config 'default'" in err
    assert f"nag-datasets card {out} --license mit" in err and "license='mit'" not in err
    with pytest.raises(ValueError, match=r"source_datasets=\['org/other'\] conflicts .*\['org/pool'\].*"
                                         r"regenerate_card\(folder, source_datasets=\['org/other'\]\)"):
        export_for_hub(scored, out, config_name="other", source_datasets="org/other")
    assert json.loads((out / "scored" / "nag_recipe.json").read_text())["card"]["license"] == "odc-by"
    # Changing it for every config, then exporting again with the new value.
    assert main(["card", str(out), "--license", "mit"]) == 0
    assert all(json.loads(p.read_text())["card"]["license"] == "mit" for p in out.rglob("nag_recipe.json"))
    export_for_hub(scored, out, config_name="scored", overwrite=True, license="mit")
    assert _card(out / "README.md").data.license == "mit"
    # The only config, replaced: a fresh export takes what it is given.
    export_for_hub(selected, tmp_path / "single", license="odc-by")
    export_for_hub(selected, tmp_path / "single", license="cc-by-4.0", overwrite=True)
    assert _card(tmp_path / "single" / "README.md").data.license == "cc-by-4.0"
    # Publishing a config to a repo whose card states them: the card keeps them too.
    published = (out / "README.md").read_text()
    hub = FakeHub([*DEFAULT_FILES], card=published)
    push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=hub, config_name="scored2", folder=tmp_path / "local")
    pushed = DatasetCard(hub.cards[0]).data
    assert (pushed.license, pushed.source_datasets, pushed.pretty_name) == ("mit", ["org/pool"], "Math subset")
    with pytest.raises(ValueError, match="license='odc-by' conflicts with the license 'mit' that the published card "
                                         "of me/ds states"):
        push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=FakeHub([*DEFAULT_FILES], card=published),
                    config_name="scored3", folder=tmp_path / "local3", license="odc-by")


def test_revision_and_create_pr_reach_every_commit(data, tmp_path, online, monkeypatch, capsys):
    import huggingface_hub

    _, _, selected, _ = data
    hub = FakeHub()
    push_to_hub(selected, "me/ds", token=FAKE_TOKEN, api=hub, revision="dev")
    assert hub.names() == ["create_repo", "create_branch", "list_repo_files", "upload_folder", "upload_file"]
    assert hub.call("create_branch")["branch"] == "dev" and hub.call("create_branch")["exist_ok"] is True
    assert hub.call("list_repo_files")["revision"] == "dev"
    assert (hub.call("upload_folder")["revision"], hub.call("upload_folder")["create_pr"]) == ("dev", False)
    assert (hub.call("upload_file")["revision"], hub.call("upload_file")["create_pr"]) == ("dev", False)

    hub = FakeHub()
    url = push_to_hub(selected, "me/ds", token=FAKE_TOKEN, api=hub, create_pr=True)
    assert url == "https://huggingface.co/datasets/me/ds/discussions/7"
    assert "create_branch" not in hub.names()
    assert (hub.call("upload_folder")["revision"], hub.call("upload_folder")["create_pr"]) == (None, True)
    # The card joins the data's pull request instead of opening a second one.
    assert (hub.call("upload_file")["revision"], hub.call("upload_file")["create_pr"]) == ("refs/pr/7", False)

    hub = FakeHub()
    with pytest.raises(ValueError, match="either revision or create_pr"):
        push_to_hub(selected, "me/ds", token=FAKE_TOKEN, api=hub, revision="dev", create_pr=True)
    assert hub.calls == []

    # The command line passes both through (HfApi replaced by the recorder).
    hub = FakeHub()
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: hub)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    selected.save_to_disk(str(tmp_path / "selected"))
    assert (
        main(
            [
                "push",
                str(tmp_path / "selected"),
                "me/ds",
                "--revision",
                "v2",
                "--language",
                "en",
                "--config-name",
                "top30",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["config"] == "top30"
    assert hub.call("upload_folder")["revision"] == "v2" and hub.call("upload_file")["revision"] == "v2"
    assert hub.call("upload_folder")["delete_patterns"] == ["top30/*"]
    assert "language:\n- en" in hub.cards[0]
    hub.calls.clear()
    assert main(["push", str(tmp_path / "selected"), "me/ds", "--create-pr"]) == 0
    assert hub.call("upload_folder")["create_pr"] is True and hub.call("upload_file")["revision"] == "refs/pr/7"
    assert json.loads(capsys.readouterr().out)["pull_request"] == "https://huggingface.co/datasets/me/ds/discussions/7"
    hub.calls.clear()
    assert main(["push", str(tmp_path / "selected"), "me/ds", "--create-pr", "--revision", "v2"]) == 1
    assert main(["push", str(tmp_path / "selected"), "me/ds", "--config-name", "data"]) == 1
    err = capsys.readouterr().err
    assert "either --revision or --create-pr" in err and "config name 'data'" in err and hub.calls == []


def test_large_exports_use_upload_large_folder(data, tmp_path, online):
    _, _, _, scored = data
    stale = "scored/train-00000-of-00009.parquet"
    hub = FakeHub([*DEFAULT_FILES, stale, "scored/nag_recipe.json"], large=True)
    push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=hub, config_name="scored", revision="dev", large_folder_bytes=1)
    assert hub.names() == [
        "create_repo",
        "create_branch",
        "list_repo_files",
        "hf_hub_download",
        "upload_large_folder",
        "list_repo_files",
        "create_commit",
        "upload_file",
    ]
    large = hub.call("upload_large_folder")
    assert large["repo_type"] == "dataset" and large["revision"] == "dev" and large["ignore_patterns"] == ["README.md"]
    commit = hub.call("create_commit")
    assert commit["operations"] == [stale] and commit["revision"] == "dev"  # only this config's stale shard

    # Below the threshold, with a pull request (upload_large_folder cannot open one), or on huggingface_hub 2.x
    # (no upload_large_folder: its upload_folder is resumable and multi-commit itself): upload_folder.
    for hub, kwargs in (
        (FakeHub(large=True), {}),
        (FakeHub(large=True), {"create_pr": True, "large_folder_bytes": 1}),
        (FakeHub(), {"large_folder_bytes": 1}),
    ):
        push_to_hub(scored, "me/ds", token=FAKE_TOKEN, api=hub, **kwargs)
        assert "upload_large_folder" not in hub.names() and "upload_folder" in hub.names()
