"""Remote storage: every reader and writer takes fsspec URLs (``memory://`` here, ``file://`` as local paths).

Remote folders are written in place, data first and the completion marker last; a reader refuses a folder one of our
writers left without its marker."""

from __future__ import annotations

import dataclasses
import json
import uuid

import fsspec
import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets import get_recipe
from nag_datasets.cli.app import main
from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.signatures.columns import get_spec
from nag_datasets.signatures.formats import OUTPUT_MARKER, check_output, load_any, save_any
from nag_datasets.storage import location
from nag_datasets.storage.atomic import PENDING, IncompleteOutputError, check_complete, write_pending


@pytest.fixture
def mem():
    """A fresh ``memory://`` root (the memory filesystem is global to the process), removed afterwards."""
    root = f"memory://t-{uuid.uuid4().hex[:12]}"
    yield root
    location.remove(root, recursive=True)


@pytest.fixture
def pool():
    spec = make_spec()
    return make_signature_dataset(random_signatures(40, spec, seed=3), spec,
                                  {"text": [f"doc {i}" for i in range(40)], "num_tokens": [5 + i % 7 for i in range(40)]})


@pytest.fixture
def profile():
    spec = make_spec()
    return NAGProfile.from_signatures(random_signatures(6, spec, seed=4), spec, description="target")


def _same_rows(a, b) -> None:
    assert a.features == b.features
    assert a.to_dict() == b.to_dict()


@pytest.mark.fast
def test_location_tells_remote_from_local(tmp_path):
    assert location.is_remote("s3://bucket/x") and location.is_remote("hf://datasets/org/name")
    assert location.is_remote("memory://x") and not location.is_remote("file:///tmp/x")
    assert not location.is_remote(tmp_path) and not location.is_remote("relative/path")
    assert location.local_path(f"file://{tmp_path}/out") == tmp_path / "out"
    with pytest.raises(ValueError, match="remote URL"):
        location.local_path("s3://bucket/x")


@pytest.mark.fast
@pytest.mark.parametrize("name", ["ds", "ds.parquet", "ds.jsonl"])
def test_save_any_load_any_memory_round_trip(mem, pool, name):
    url = f"{mem}/{name}"
    data = pool.remove_columns(["nag_fwd_up"]) if name.endswith(".jsonl") else pool
    save_any(data, url)
    back = load_any(url)
    assert back.to_dict() == data.to_dict()
    if not name.endswith(".jsonl"):
        assert get_spec(back, "nag_fwd_up") == get_spec(pool, "nag_fwd_up")
        assert back.features == pool.features
    assert [r["text"] for r in load_any(url, streaming=True)] == data["text"][:]
    if name == "ds":
        names = location.list_names(url)
        assert OUTPUT_MARKER in names and "state.json" in names and PENDING not in names
    with pytest.raises(FileExistsError, match="overwrite"):
        save_any(data, url)
    with pytest.raises(FileExistsError, match="overwrite"):
        check_output(url)
    save_any(data.select(range(3)), url, overwrite=True)
    assert len(load_any(url)) == 3


@pytest.mark.fast
def test_remote_write_killed_midway_is_refused_by_readers_and_replaced_by_overwrite(mem, pool, monkeypatch):
    url = f"{mem}/out"
    save_any(pool, url)

    def dies_after_writing(self, path, **kwargs):
        original(self, path, **kwargs)
        raise RuntimeError("killed")

    original = Dataset.save_to_disk
    monkeypatch.setattr(Dataset, "save_to_disk", dies_after_writing)
    with pytest.raises(RuntimeError, match="killed"):
        save_any(pool.select(range(5)), url, overwrite=True)
    monkeypatch.undo()
    names = location.list_names(url)
    # The data of the interrupted write is there, its marker is not (the previous marker was deleted first).
    assert PENDING in names and "state.json" in names and OUTPUT_MARKER not in names
    with pytest.raises(IncompleteOutputError, match="has not written its completion marker nag_datasets.json"):
        load_any(url)
    with pytest.raises(FileExistsError):
        save_any(pool, url)  # without overwrite
    save_any(pool.select(range(5)), url, overwrite=True)  # an interrupted output of ours is replaceable
    assert PENDING not in location.list_names(url)
    assert load_any(url)["text"][:] == pool["text"][:5]


@pytest.mark.fast
def test_failed_first_remote_write_leaves_nothing(mem, pool, monkeypatch):
    monkeypatch.setattr(Dataset, "save_to_disk", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        save_any(pool, f"{mem}/new")
    assert not location.exists(f"{mem}/new")


@pytest.mark.fast
def test_remote_overwrite_refuses_foreign_folders(mem, pool):
    location.write_text(f"{mem}/theirs/notes.txt", "keep me")
    with pytest.raises(FileExistsError, match="not a nag_datasets dataset folder.*notes.txt"):
        save_any(pool, f"{mem}/theirs", overwrite=True)
    assert location.read_text(f"{mem}/theirs/notes.txt") == "keep me"
    # Other tools' folders without a pending file are read as they are.
    pool.save_to_disk(f"{mem}/plain")
    check_complete(f"{mem}/plain")
    _same_rows(load_any(f"{mem}/plain"), pool)


@pytest.mark.fast
def test_file_urls_are_local_paths_with_atomic_writes(tmp_path, pool):
    url = f"file://{tmp_path}/out"
    save_any(pool, url)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # renamed into place, no lock or temp left
    assert (tmp_path / "out" / OUTPUT_MARKER).is_file()
    _same_rows(load_any(url), load_from_disk(str(tmp_path / "out")))
    with pytest.raises(FileExistsError):
        check_output(url)


@pytest.mark.fast
def test_profile_save_load_memory_round_trip(mem, profile, pool):
    url = f"{mem}/profile"
    assert profile.save(url) == url
    assert location.list_names(url) == ["profile.json", "profile.safetensors"]
    back = NAGProfile.load(url)
    assert back.fingerprint == profile.fingerprint
    np.testing.assert_array_equal(back.score(pool), profile.score(pool))
    assert NAGProfile.from_pretrained(url).fingerprint == profile.fingerprint
    contrastive = profile.contrast(NAGProfile.from_dataset(pool, column="nag_fwd_up"))
    contrastive.save(url)  # replaces the previous profile
    assert NAGProfile.load(url).fingerprint == contrastive.fingerprint
    # A write killed before profile.json (its marker) is refused.
    location.remove(url, recursive=True)
    write_pending(url, marker="profile.json", what="profile")
    location.write_bytes(f"{url}/profile.safetensors", b"partial")
    with pytest.raises(ProfileError, match="incomplete"):
        NAGProfile.load(url)


@pytest.mark.fast
def test_cli_profile_and_select_on_memory_urls(mem, pool, profile, capsys):
    save_any(pool, f"{mem}/pool")
    save_any(pool.select(range(6)), f"{mem}/target.parquet")
    assert main(["profile", f"{mem}/target.parquet", f"{mem}/prof", "--background", f"{mem}/pool",
                 "--background-sample", "20"]) == 0
    made = NAGProfile.load(f"{mem}/prof")
    expected = NAGProfile.from_dataset(pool.select(range(6)), column="nag_fwd_up").contrast(
        NAGProfile.from_dataset(pool, column="nag_fwd_up", sample=20, seed=0))
    assert made.fingerprint == expected.fingerprint
    assert main(["profile", f"{mem}/target.parquet", f"{mem}/prof"]) == 1  # exists, no --overwrite
    assert "exists" in capsys.readouterr().err

    profile.save(f"{mem}/p")
    assert main(["select", f"{mem}/pool", f"{mem}/sel", "--profile", f"{mem}/p", "--fraction", "0.5",
                 "--report", f"{mem}/report.json"]) == 0
    reference, report = select_top_fraction(pool, 0.5, token_column="num_tokens", profile=profile, return_report=True)
    got = load_any(f"{mem}/sel")
    # The recipe (in nag_rank's metadata) carries its creation time, to the second: compare everything else.
    assert dataclasses.replace(get_recipe(got), created="") == dataclasses.replace(get_recipe(reference), created="")
    _same_rows(got.select_columns(pool.column_names), reference.select_columns(pool.column_names))
    assert json.loads(location.read_text(f"{mem}/report.json")) == json.loads(json.dumps(report.to_dict()))


@pytest.mark.fast
def test_cli_score_on_memory_urls(mem, pool, profile):
    from nag_datasets.selection.scored import score_pool

    save_any(pool, f"{mem}/pool.parquet")
    profile.save(f"{mem}/p")
    assert main(["score", f"{mem}/pool.parquet", f"{mem}/scored", "--profile", f"{mem}/p"]) == 0
    got = load_any(f"{mem}/scored")
    reference = score_pool(pool, profile, None)
    assert got.column_names == reference.column_names and len(got) == len(pool)
    np.testing.assert_array_equal(np.asarray(got[profile.score_column]), np.asarray(reference[profile.score_column]))
    assert OUTPUT_MARKER in location.list_names(f"{mem}/scored")
    assert main(["score", f"{mem}/pool.parquet", f"{mem}/scored", "--profile", f"{mem}/p"]) == 1  # exists


@pytest.mark.fast
def test_export_to_memory_writes_the_card_last_and_reloads(mem, pool, profile, monkeypatch):
    pytest.importorskip("matplotlib")
    from nag_datasets.hub.export import export_for_hub

    selected = select_top_fraction(pool, 0.5, token_column="num_tokens", profile=profile)
    fs = fsspec.filesystem("memory")
    order: list[str] = []
    original = type(fs).put_file

    def recording(self, lpath, rpath, *args, **kwargs):
        order.append(rpath.rsplit("/", 1)[-1])
        return original(self, lpath, rpath, *args, **kwargs)

    monkeypatch.setattr(type(fs), "put_file", recording)
    url = export_for_hub(selected, f"{mem}/export", license="cc-by-4.0", profile=profile)
    monkeypatch.undo()
    assert order[-1] == "README.md" and len(order) == 4  # the card (completion marker) last
    assert location.list_names(url) == ["README.md", "data", "nag_recipe.json", "score_distribution.png"]
    _same_rows(load_any(url), selected)  # rows, order, features (spec and recipe included)
    # The CLI: export from a memory:// selection to a memory:// folder; a second run needs --overwrite.
    save_any(selected, f"{mem}/selected")
    assert main(["export", f"{mem}/selected", f"{mem}/export2", "--license", "cc-by-4.0"]) == 0
    _same_rows(load_any(f"{mem}/export2"), selected)
    assert main(["export", f"{mem}/selected", f"{mem}/export2"]) == 1
    assert main(["export", f"{mem}/selected", f"{mem}/export2", "--overwrite"]) == 0


# -- featurize (the real model, two layers, 32 tokens) ---------------------------------------------------------

SMALL = {"layers": [0, 1], "max_length": 32, "batch_size": 4}
SMALL_ARGS = ["--layers", "0,1", "--max-length", "32", "--batch-size", "4"]


@pytest.fixture(scope="module")
def demo_pool():
    from nag_datasets.demo_data import load_demo

    return load_demo("pool").shuffle(seed=1).select(range(8)).flatten_indices()


@pytest.mark.slow
def test_featurize_memory_round_trips_in_every_mode(mem, demo_pool, tmp_path):
    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.featurize.sharded import featurize_sharded, shards_dir
    from nag_datasets.featurize.streaming import featurize_streaming

    small = NAGFeaturizer(**SMALL)
    reference = small.apply(demo_pool, batch_size=4)
    save_any(demo_pool, f"{mem}/pool")
    assert main(["featurize", f"{mem}/pool", f"{mem}/feat", *SMALL_ARGS]) == 0
    _same_rows(load_any(f"{mem}/feat"), reference)

    summary = featurize_streaming(f"{mem}/pool", f"{mem}/stream", small, shard_rows=4, map_batch_size=4)
    assert (summary["parts"], summary["report"]["rows"]) == (2, 8)
    assert location.list_names(f"{mem}/stream") == ["_SUCCESS.json", "nag_spec.json", "part-000000.parquet",
                                                    "part-000001.parquet"]
    _same_rows(load_any(f"{mem}/stream"), reference)

    summary = featurize_sharded(f"{mem}/pool", f"{mem}/sharded", small, rank=0, world_size=1, shard_rows=4,
                                batch_size=4)
    assert (summary["shards_done"], summary["output"]) == (2, f"{mem}/sharded")
    _same_rows(load_any(f"{mem}/sharded"), reference)
    assert not shards_dir(f"{mem}/sharded").exists()  # local shards, removed once the remote output is written


@pytest.mark.slow
def test_ray_selection_reads_and_writes_fsspec_urls(tmp_path, pool, profile):
    """``local://`` is fsspec's local filesystem taken through the remote code path (no renames, marker last): Ray
    workers are separate processes, which ``memory://`` does not reach."""
    ray = pytest.importorskip("ray")
    from nag_datasets.selection.ray_select import select_top_fraction_ray

    src = tmp_path / "pool"
    src.mkdir()
    for i in range(2):
        pool.shard(num_shards=2, index=i, contiguous=True).to_parquet(str(src / f"part-{i:06d}.parquet"))
    ray.init(num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 1024**2, ignore_reinit_error=True)
    try:
        report = select_top_fraction_ray(f"local://{src}", f"local://{tmp_path}/out", profile, 0.5,
                                         token_column="num_tokens")
        with pytest.raises(FileExistsError, match="overwrite"):
            select_top_fraction_ray(f"local://{src}", f"local://{tmp_path}/out", profile, 0.5,
                                    token_column="num_tokens")
    finally:
        ray.shutdown()
    expected, exp_report = select_top_fraction(pool, 0.5, token_column="num_tokens", profile=profile,
                                               return_report=True)
    assert (report["documents_selected"], report["tokens_selected"]) == (exp_report.documents_selected,
                                                                        exp_report.tokens_selected)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["nag_spec.json", "part-000000.parquet",
                                                                    "part-000001.parquet", "selection.json"]
    got = load_any(f"local://{tmp_path}/out")
    kept = set(expected["text"][:])
    assert got["text"][:] == [t for t in pool["text"][:] if t in kept]  # the selected rows in their original order
    assert get_spec(got, "nag_fwd_up") == profile.spec


@pytest.mark.fast
def test_local_only_folders_refuse_urls_instead_of_mangling_them(mem, profile, tmp_path, monkeypatch):
    from nag_datasets.hub.export import regenerate_card
    from nag_datasets.hub.profiles import profile_card

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="regenerating a card needs a local folder, not the remote URL memory://"):
        regenerate_card(f"{mem}/export")
    with pytest.raises(ValueError, match="a profile card needs a local folder"):
        profile_card(profile, f"{mem}/profile")
    assert list(tmp_path.iterdir()) == []  # no local "memory:" folder was created
