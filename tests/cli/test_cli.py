"""The CLI end to end on real data in a temporary folder, and the demo."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nag_datasets.cli.app import main
from nag_datasets.demo_data import load_demo
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.signatures.formats import load_any


@pytest.mark.slow
def test_featurize_profile_select_round_trip(tmp_path, capsys):
    target = load_demo("target").select(range(6))
    pool = load_demo("pool").shuffle(seed=0).select(range(24))
    target.to_json(str(tmp_path / "target.jsonl"))
    pool.save_to_disk(str(tmp_path / "pool"))

    assert main(["featurize", str(tmp_path / "target.jsonl"), str(tmp_path / "target_feat.parquet")]) == 0
    assert main(["featurize", str(tmp_path / "pool"), str(tmp_path / "pool_feat"), "--batch-size", "8"]) == 0
    assert main(["profile", str(tmp_path / "target_feat.parquet"), str(tmp_path / "profile")]) == 0
    capsys.readouterr()
    assert main(["select", str(tmp_path / "pool_feat"), str(tmp_path / "selected"), "--profile",
                 str(tmp_path / "profile"), "--fraction", "0.3", "--report", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    selected = load_any(tmp_path / "selected")
    profile = NAGProfile.load(tmp_path / "profile")
    assert profile.num_targets == 6
    assert report["documents_selected"] == len(selected) > 0
    assert report["tokens_selected"] == sum(selected["num_tokens"]) <= 0.3 * report["pool_tokens"]
    scores = profile.score(selected)
    assert list(scores) == sorted(scores, reverse=True)
    # Same numbers from the library directly.
    pool_feat = load_any(tmp_path / "pool_feat")
    assert sorted(profile.score(pool_feat), reverse=True)[: len(selected)] == list(scores)
    # Refuses to overwrite an existing output, with a message rather than a traceback.
    capsys.readouterr()
    assert main(["select", str(tmp_path / "pool_feat"), str(tmp_path / "selected"), "--profile",
                 str(tmp_path / "profile"), "--fraction", "0.3"]) == 1
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert len(load_any(tmp_path / "selected")) == len(selected)


@pytest.mark.slow
def test_demo_command_runs(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nag_datasets.cli", "demo", "--output", str(tmp_path / "sel")],
                          check=False, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "r_f=0.20" in out and "mean paper similarity (fwd_up, target frequencies) by source:" in out
    assert "profile: hybrid (FusedProfile(signal='hybrid', nag_weight=0.2" in out
    lead = out.split("mean hybrid score (0.2 z(fwd_down NAG) + 0.8 z(embedding model); pool as background) by "
                     "source:\n")[1]
    assert lead.split()[0] == "gsm8k"  # the target's own held-out documents score highest on the hybrid lead
    selected = load_any(tmp_path / "sel")
    assert len(selected) > 0 and set(selected["source"]) <= {"gsm8k", "humaneval", "mmlu"}


@pytest.mark.fast
def test_select_into_a_folder_being_written_is_refused_cleanly(tmp_path, capsys):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.storage.atomic import lock_dir

    spec = make_spec()
    make_signature_dataset(random_signatures(20, spec), spec, {"num_tokens": list(range(1, 21))},
                           path=tmp_path / "pool")
    NAGProfile.from_signatures(random_signatures(3, spec, seed=1), spec).save(tmp_path / "profile")
    argv = ["select", str(tmp_path / "pool"), str(tmp_path / "out"), "--profile", str(tmp_path / "profile"),
            "--fraction", "0.5"]
    capsys.readouterr()
    with lock_dir(tmp_path / "out"):
        assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another run is writing" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(argv) == 0  # the lock is gone with its holder
    assert len(load_any(tmp_path / "out")) > 0


@pytest.mark.fast
def test_contrastive_profile_command_equals_the_python_api(tmp_path, capsys):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.scoring.contrastive import ContrastiveProfile

    spec = make_spec()
    target = make_signature_dataset(random_signatures(30, spec, seed=1), spec, path=tmp_path / "target")
    pool = make_signature_dataset(random_signatures(200, spec, seed=2), spec, {"num_tokens": [9] * 200},
                                  null_rows=[4], path=tmp_path / "pool")
    pool.to_parquet(str(tmp_path / "pool.parquet"))
    (tmp_path / "pool.parquet.spec.json").write_text(json.dumps({"nag_fwd_up": spec.to_dict()}))
    argv = ["profile", str(tmp_path / "target"), str(tmp_path / "profile"), "--background", str(tmp_path / "pool"),
            "--background-sample", "120", "--background-seed", "3"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    loaded = NAGProfile.load(tmp_path / "profile")
    expected = NAGProfile.from_dataset(target, "nag_fwd_up").contrast(
        NAGProfile.from_dataset(pool, "nag_fwd_up", sample=120, seed=3))
    assert isinstance(loaded, ContrastiveProfile) and loaded.fingerprint() == expected.fingerprint()
    assert printed["kind"] == "contrastive" and printed["weighting"] == {"name": "shrinkage", "m": 50.0, "alpha": 0.5}
    assert printed["background"]["documents"] == 120
    # A streamed parquet background gives the same profile as the saved folder.
    assert main(["profile", str(tmp_path / "target"), str(tmp_path / "profile2"), "--background",
                 str(tmp_path / "pool.parquet"), "--background-sample", "120", "--background-seed", "3"]) == 0
    assert NAGProfile.load(tmp_path / "profile2").fingerprint() == expected.fingerprint()
    assert main(["profile", str(tmp_path / "target"), str(tmp_path / "p3"), "--background", str(tmp_path / "pool"),
                 "--weighting", "log_odds", "--alpha", "0.25"]) == 0
    assert NAGProfile.load(tmp_path / "p3").weighting.to_dict() == {"name": "log_odds", "alpha": 0.25}
    capsys.readouterr()
    assert main(["select", str(tmp_path / "pool"), str(tmp_path / "selected"), "--profile", str(tmp_path / "profile"),
                 "--fraction", "0.2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["score_kind"] == "contrastive" and report["profile"]["fingerprint"] == expected.fingerprint()
    from nag_datasets.selection.budgeted import select_top_fraction

    kept = load_any(tmp_path / "selected")
    in_python = select_top_fraction(pool, 0.2, token_column="num_tokens", profile=expected)
    assert len(kept) == report["documents_selected"] > 0
    assert kept["nag_fwd_up"][:] == in_python["nag_fwd_up"][:]


@pytest.mark.fast
def test_profile_command_refuses_bad_contrastive_arguments_before_reading(tmp_path, capsys):
    missing = str(tmp_path / "nothing-here")
    assert main(["profile", missing, str(tmp_path / "p"), "--alpha", "0.5"]) == 1
    assert "--alpha need --background" in capsys.readouterr().err
    assert main(["profile", missing, str(tmp_path / "p"), "--background", missing]) == 1
    assert "no background dataset" in capsys.readouterr().err
    (tmp_path / "bg").mkdir()
    assert main(["profile", missing, str(tmp_path / "p"), "--background", str(tmp_path / "bg"),
                 "--weighting", "difference", "--alpha", "1"]) == 1
    assert "weighting 'difference' takes" in capsys.readouterr().err
