"""Selection on Ray Data equals the in-memory exact selection (local Ray cluster, synthetic signatures)."""

from __future__ import annotations

import json

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.ray_select import select_top_fraction_ray
from nag_datasets.signatures.formats import load_any


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 1024**2, ignore_reinit_error=True)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize("fraction", [0.3, 1.0])
@pytest.mark.parametrize("kind", ["similarity", "contrastive"])
def test_ray_selection_equals_exact_in_memory(local_ray, tmp_path, fraction, kind):
    spec = make_spec(top_k=2, neurons_per_layer=6)  # few neurons: many tied scores, so the position tie-break matters
    n = 600
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 40, n)
    ds = make_signature_dataset(random_signatures(n, spec, seed=1), spec,
                                {"row": np.arange(n), "num_tokens": tokens}, null_rows=[3, 50, 599])
    profile = NAGProfile.from_signatures(random_signatures(20, spec, seed=2), spec, description="t")
    if kind == "contrastive":
        profile = profile.contrast(NAGProfile.from_dataset(ds, "nag_fwd_up", sample=300, seed=0))
    src = tmp_path / "pool"
    src.mkdir()
    for i in range(3):  # three parquet shards, the second written in two row groups
        part = ds.shard(num_shards=3, index=i, contiguous=True)
        part.to_parquet(str(src / f"part-{i:06d}.parquet"), batch_size=120 if i == 1 else 1000)

    report = select_top_fraction_ray(src, tmp_path / "out", profile, fraction, token_column="num_tokens")

    expected, exp_report = select_top_fraction(ds, fraction, token_column="num_tokens", profile=profile,
                                               return_report=True)
    assert report["score_blocks"] >= 4 and report["input_files"] == 3  # several blocks did the scoring
    for key in ("documents_selected", "tokens_selected", "pool_documents", "pool_tokens", "null_rows_skipped",
                "null_tokens_skipped", "threshold"):
        assert report[key] == getattr(exp_report, key), key
    assert json.loads((tmp_path / "out" / "selection.json").read_text()) == report
    assert report["score_kind"] == kind and report["profile"]["fingerprint"] == profile.fingerprint
    if report["documents_selected"]:
        got = load_any(tmp_path / "out")
        assert got["row"][:] == sorted(expected["row"][:])  # same rows, written in their original order
        assert got.features["nag_fwd_up"] == ds.features["nag_fwd_up"]  # the spec travelled
    else:
        assert not list((tmp_path / "out").glob("*.parquet"))


@pytest.mark.slow
def test_ray_selection_accepts_plain_map_parquet_and_refuses_another_spec(local_ray, tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nag_datasets.signatures.registry import register_spec
    from nag_datasets.signatures.spec import SpecMismatchError
    from nag_datasets.signatures.spec_column import spec_value

    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path / "cache"))
    spec = make_spec()
    n = 60
    sigs = random_signatures(n, spec, seed=3)
    ds = make_signature_dataset(sigs, spec, {"row": np.arange(n), "num_tokens": np.full(n, 5)})
    profile = NAGProfile.from_signatures(random_signatures(5, spec, seed=4), spec)

    def plain_parquet(folder, tag_spec):  # what a plain map written by pyarrow leaves: no typed spec, nag_spec strings
        folder.mkdir()
        table = pa.table({"nag_fwd_up": pa.array(sigs.tolist(), pa.list_(pa.list_(pa.uint16()))),
                          "row": np.arange(n), "num_tokens": np.full(n, 5),
                          "nag_spec": [spec_value({"nag_fwd_up": tag_spec})] * n})
        pq.write_table(table, str(folder / "part-000000.parquet"))
        return folder

    report = select_top_fraction_ray(plain_parquet(tmp_path / "plain", spec), tmp_path / "out", profile, 0.5,
                                     token_column="num_tokens")
    expected = select_top_fraction(ds, 0.5, token_column="num_tokens", profile=profile)
    assert report["documents_selected"] == len(expected) > 0
    assert load_any(tmp_path / "out")["row"][:] == sorted(expected["row"][:])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):  # --overwrite replaces only an earlier selection
        select_top_fraction_ray(tmp_path / "plain", mine, profile, 0.5, token_column="num_tokens", overwrite=True)
    assert (mine / "notes.txt").read_text() == "keep me"
    select_top_fraction_ray(tmp_path / "plain", tmp_path / "out", profile, 0.2, token_column="num_tokens",
                            overwrite=True)
    other = spec.replace(max_length=8)
    register_spec(other)
    with pytest.raises(SpecMismatchError, match="max_length"):
        select_top_fraction_ray(plain_parquet(tmp_path / "other", other), tmp_path / "out2", profile, 0.5,
                                token_column="num_tokens")
