"""The command line with the embedding column and the hybrid signal: ``featurize --embedding``, ``profile --signal``
(the default: hybrid when both sides carry embeddings), ``score`` and ``select`` with a fused profile, and the
one-line refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.cli.app import main
from nag_datasets.scoring.fusion import FusedProfile
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.signatures.formats import load_any

SPEC = make_spec()
EMB = make_embedding_spec(SPEC)


@pytest.fixture()
def saved(tmp_path):
    make_fused_dataset(random_signatures(12, SPEC, 1), random_embeddings(12, shift=0.8, seed=1), SPEC, EMB,
                       path=tmp_path / "target")
    pool = make_fused_dataset(random_signatures(80, SPEC, 2), random_embeddings(80, seed=2), SPEC, EMB,
                              {"num_tokens": list(range(1, 81))}, null_rows=[5], path=tmp_path / "pool")
    pool.to_parquet(str(tmp_path / "pool.parquet"))
    return tmp_path


@pytest.mark.fast
def test_profile_default_is_the_hybrid_and_equals_the_python_api(saved, capsys):
    tmp = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning: both sides carry embeddings
        assert main(["profile", str(tmp / "target"), str(tmp / "p"), "--background", str(tmp / "pool.parquet"),
                     "--background-sample", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    pool = load_any(tmp / "pool")
    expected = NAGProfile.from_dataset(load_any(tmp / "target")).contrast(
        NAGProfile.from_dataset(pool, sample=50))
    loaded = NAGProfile.load(tmp / "p")
    assert isinstance(loaded, FusedProfile) and printed["signal"] == "hybrid"
    assert loaded.fingerprint == expected.fingerprint == printed["fingerprint"]
    assert main(["profile", str(tmp / "target"), str(tmp / "e"), "--background", str(tmp / "pool"),
                 "--signal", "embedding", "--embedding-model", "centred"]) == 0
    capsys.readouterr()
    emb = NAGProfile.load(tmp / "e")
    assert emb.signal == "embedding" and emb.model.kind == "centred"
    assert main(["profile", str(tmp / "target"), str(tmp / "w"), "--background", str(tmp / "pool"),
                 "--nag-weight", "0.6"]) == 0
    assert NAGProfile.load(tmp / "w").nag_weight == 0.6
    capsys.readouterr()
    # score and select use the fused profile's scores
    assert main(["score", str(tmp / "pool"), str(tmp / "scored"), "--profile", str(tmp / "p")]) == 0
    scored = load_any(tmp / "scored")
    got = np.array([np.nan if s is None else s for s in scored["nag_contrast_score"]], np.float32)
    assert np.array_equal(got, expected.score(pool), equal_nan=True)
    capsys.readouterr()
    assert main(["select", str(tmp / "pool"), str(tmp / "sel"), "--profile", str(tmp / "p"), "--fraction",
                 "0.3", "--report", str(tmp / "report.json")]) == 0
    summary = json.loads(capsys.readouterr().out)  # the short summary names the score kind and the profile
    assert summary["ranked_by"] == f"contrastive score of profile {expected.fingerprint}"
    report = json.loads((tmp / "report.json").read_text())
    assert report["profile"]["signal"] == "hybrid"
    want = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=expected)
    assert load_any(tmp / "sel")["num_tokens"][:] == want["num_tokens"][:]


@pytest.mark.fast
def test_refusals_are_one_line_and_name_the_fix(saved, capsys):
    tmp = saved
    load_any(tmp / "pool").remove_columns(["nag_embedding", "nag_spec"]).save_to_disk(str(tmp / "bare"))
    assert main(["profile", str(tmp / "target"), str(tmp / "p"), "--background", str(tmp / "bare"),
                 "--signal", "hybrid"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "background profile has none" in err and "--embedding last" in err
    assert main(["profile", str(tmp / "target"), str(tmp / "p"), "--signal", "hybrid"]) == 1
    assert "--signal need --background" in capsys.readouterr().err
    assert main(["profile", str(tmp / "target"), str(tmp / "p"), "--background", str(tmp / "pool"),
                 "--nag-weight", "2"]) == 1
    assert "--nag-weight must lie in [0, 1]" in capsys.readouterr().err
    assert main(["profile", str(tmp / "target"), str(tmp / "p"), "--background", str(tmp / "pool")]) == 0
    capsys.readouterr()
    assert main(["select", str(tmp / "bare"), str(tmp / "sel"), "--profile", str(tmp / "p"), "--fraction",
                 "0.3"]) == 1
    err = capsys.readouterr().err
    assert "nag_embedding" in err and "--embedding last" in err and len(err.strip().splitlines()) == 1
    # without embeddings on either side, the default falls back to the NAG signal with a warning
    with pytest.warns(UserWarning, match="the background profile keeps no embeddings"):
        assert main(["profile", str(tmp / "target"), str(tmp / "n"), "--background", str(tmp / "bare")]) == 0
    assert json.loads(capsys.readouterr().out)["signal"] == "nag"


@pytest.mark.slow
def test_featurize_with_embedding_then_the_default_profile_selects(tmp_path, capsys):
    from nag_datasets import get_recipe
    from nag_datasets.demo_data import load_demo

    load_demo("target").select(range(4)).to_json(str(tmp_path / "target.jsonl"))
    load_demo("pool").select([0, 40, 80, 120, 160, 200, 210, 213]).save_to_disk(str(tmp_path / "pool"))
    common = ["--max-length", "16", "--layers", "last2", "--embedding", "last"]
    assert main(["featurize", str(tmp_path / "target.jsonl"), str(tmp_path / "t.parquet"), *common]) == 0
    assert main(["featurize", str(tmp_path / "pool"), str(tmp_path / "pool_nag"), *common]) == 0
    target, pool = load_any(tmp_path / "t.parquet"), load_any(tmp_path / "pool_nag")
    for ds in (target, pool):
        assert ds.features["nag_embedding"].length == 576 and "nag_embedding=" in ds["nag_spec"][0]
    assert main(["profile", str(tmp_path / "t.parquet"), str(tmp_path / "p"), "--background",
                 str(tmp_path / "pool_nag")]) == 0
    capsys.readouterr()
    profile = NAGProfile.load(tmp_path / "p")
    assert profile.signal == "hybrid" and profile.embedding_spec.layer == 29
    assert main(["select", str(tmp_path / "pool_nag"), str(tmp_path / "sel"), "--profile", str(tmp_path / "p"),
                 "--fraction", "0.4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    selected = load_any(tmp_path / "sel")
    assert summary["documents_selected"] == len(selected) > 0
    assert get_recipe(selected).profiles[0]["signal"] == "hybrid"  # the full report rides with the selection
    scores = profile.score(selected)  # best first, the pool's top scores
    assert list(scores) == sorted(profile.score(pool), reverse=True)[: len(selected)]
