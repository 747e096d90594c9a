"""Regression tests of the hardening passes (issues 17 and 26): the natural call is safe, nothing a user owns is lost,
and every refusal says what to change in the words of the caller (a flag on the command line, an argument in Python).
"""

from __future__ import annotations

import hashlib

import pytest


@pytest.mark.slow
def test_tokenizer_padding_and_truncation_state_do_not_change_the_spec(featurizer):
    before = featurizer.spec()
    tokenizer = featurizer.tokenizer
    tokenizer(["a short text", "and a somewhat longer one"], padding=True, truncation=True, max_length=4)
    assert tokenizer.backend_tokenizer.truncation is not None  # the runtime state really changed
    assert featurizer.spec() == before


@pytest.mark.slow
def test_tokenizer_fingerprint_of_an_untouched_tokenizer_keeps_its_old_value():
    from transformers import AutoTokenizer

    from nag_datasets.featurize.models import converted_bundled_dir, tokenizer_fingerprint

    fresh = AutoTokenizer.from_pretrained(str(converted_bundled_dir()[0]))
    old = "tok-sha256:" + hashlib.sha256(fresh.backend_tokenizer.to_str().encode()).hexdigest()[:32]
    assert tokenizer_fingerprint(fresh) == old  # profiles and datasets written before still match


# -- fast: synthetic signatures ------------------------------------------------------------------------------------


def _pool_and_profile(tmp_path, n=20):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.scoring.target_profile import NAGProfile

    spec = make_spec()
    make_signature_dataset(random_signatures(n, spec), spec, {"num_tokens": list(range(1, n + 1)),
                                                              "text": [f"doc {i}" for i in range(n)]},
                           path=tmp_path / "pool")
    NAGProfile.from_signatures(random_signatures(3, spec, seed=1), spec).save(tmp_path / "profile")
    return spec


@pytest.mark.fast
def test_short_forms_check_the_spec_of_every_batch(tmp_path, monkeypatch):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.signatures.registry import register_spec
    from nag_datasets.signatures.spec import SpecError, SpecMismatchError
    from nag_datasets.signatures.spec_column import spec_value

    monkeypatch.setenv("NAG_DATASETS_CACHE", str(tmp_path / "cache"))
    spec, other = make_spec(), make_spec(max_length=8)
    profile = NAGProfile.from_signatures(random_signatures(5, spec), spec)
    typed = make_signature_dataset(random_signatures(10, other), other)  # typed column, no nag_spec column
    with pytest.raises(SpecError, match="no nag_spec column.*dataset="):
        typed.filter(profile.filter(0.0), batched=True)
    with pytest.raises(SpecError, match="no nag_spec column"):
        typed.map(profile.scorer(), batched=True)
    with pytest.raises(SpecMismatchError, match="max_length: profile=16 vs column 'nag_fwd_up'=8"):
        profile.filter(0.0, dataset=typed)
    assert len(typed.filter(profile.filter(0.0, check_spec=False), batched=True)) == 10  # the named opt-out
    register_spec(other)
    tagged = typed.add_column("nag_spec", [spec_value({"nag_fwd_up": other})] * 10)
    with pytest.raises(SpecMismatchError, match="max_length: profile=16 vs column 'nag_fwd_up'=8"):
        tagged.filter(profile.filter(0.0, check_spec=True), batched=True)
    same = make_signature_dataset(random_signatures(10, spec), spec)
    assert len(same.filter(profile.filter(0.0, dataset=same), batched=True)) == 10


@pytest.mark.fast
def test_overwrite_never_replaces_a_folder_we_did_not_write(tmp_path, capsys):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.cli import main
    from nag_datasets.signatures.formats import load_any, save_any

    _pool_and_profile(tmp_path)
    spec = make_spec()
    ds = make_signature_dataset(random_signatures(4, spec), spec)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"thesis\.tex"):
        save_any(ds, mine, overwrite=True)
    capsys.readouterr()
    assert main(["select", str(tmp_path / "pool"), str(mine), "--profile", str(tmp_path / "profile"),
                 "--fraction", "0.5", "--overwrite"]) == 1
    assert "thesis.tex" in capsys.readouterr().err
    assert (mine / "thesis.tex").read_text() == "keep me" and sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    ds.save_to_disk(str(tmp_path / "theirs"))  # a dataset folder, but not one we wrote
    with pytest.raises(FileExistsError, match="no nag_datasets.json"):
        save_any(ds, tmp_path / "theirs", overwrite=True)
    save_any(ds, tmp_path / "ours")
    save_any(ds.select(range(3)), tmp_path / "ours", overwrite=True)  # ours: replaced
    assert len(load_any(tmp_path / "ours")) == 3


@pytest.mark.fast
def test_empty_selection_reloads_as_an_empty_dataset_and_export_refuses_it(tmp_path, capsys):
    from nag_datasets.cli import main
    from nag_datasets.signatures.columns import get_spec
    from nag_datasets.signatures.formats import load_any

    spec = _pool_and_profile(tmp_path)
    for out in ("selected", "selected.parquet"):
        assert main(["select", str(tmp_path / "pool"), str(tmp_path / out), "--profile", str(tmp_path / "profile"),
                     "--fraction", "0"]) == 0
        back = load_any(tmp_path / out)
        assert len(back) == 0 and get_spec(back, "nag_fwd_up") == spec
        assert {"nag_fwd_up", "num_tokens", "text", "nag_rank"} <= set(back.column_names)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "selected"), str(tmp_path / "export")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "empty" in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "export").exists()


@pytest.mark.fast
def test_cli_errors_are_one_line_and_checked_before_loading(tmp_path, capsys, monkeypatch):
    from helpers import make_spec, random_signatures

    import nag_datasets.signatures.formats
    from nag_datasets.cli import main
    from nag_datasets.scoring.target_profile import NAGProfile

    _pool_and_profile(tmp_path)
    other = make_spec(top_k=3)
    NAGProfile.from_signatures(random_signatures(3, other), other).save(tmp_path / "other_profile")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "something.txt").write_text("not empty")  # an empty folder is a valid output
    pool, profile = str(tmp_path / "pool"), str(tmp_path / "profile")

    def no_loading(*a, **k):
        raise AssertionError("data was loaded before the arguments were checked")

    cases = [
        (["select", pool, str(tmp_path / "o1"), "--profile", profile, "--fraction", "1.5"], "fraction"),
        (["select", pool, str(tmp_path / "o2"), "--profile", str(tmp_path / "nope"), "--fraction", "0.2"], "nope"),
        (["select", pool, str(tmp_path / "done"), "--profile", profile, "--fraction", "0.2"], "exists"),
        (["featurize", pool, str(tmp_path / "done")], "exists"),
        (["featurize", pool, str(tmp_path / "o3"), "--top-k", "0"], "--top-k must be >= 1"),
        (["profile", pool, profile], "exists"),
    ]
    with monkeypatch.context() as m:
        m.setattr(nag_datasets.signatures.formats, "load_any", no_loading)
        for argv, needle in cases:
            capsys.readouterr()
            assert main(argv) == 1, argv
            err = capsys.readouterr().err
            assert err.startswith("error: ") and needle in err and err.count("\n") == 1, (argv, err)
    # Errors found in the data: a missing column, a spec mismatch.
    for argv, needle in [
        (["select", pool, str(tmp_path / "o4"), "--profile", profile, "--fraction", "0.2", "--column", "sig"],
         "'sig' not in dataset"),
        (["select", pool, str(tmp_path / "o5"), "--profile", profile, "--fraction", "0.2", "--token-column",
          "text"], "must be numeric"),
        (["select", pool, str(tmp_path / "o6"), "--profile", str(tmp_path / "other_profile"), "--fraction", "0.2"],
         "signature specs differ in top_k"),
        (["featurize", pool, str(tmp_path / "o7"), "--model", str(tmp_path / "no-such-model")], "no-such-model"),
    ]:
        capsys.readouterr()
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1, err


@pytest.mark.fast
def test_neuron_types_as_a_string_is_one_type():
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    assert NAGFeaturizer(neuron_types="att_o").neuron_types == ("att_o",)


@pytest.mark.fast
def test_dataset_dict_is_refused_naming_the_splits_and_a_stream_is_profiled(tmp_path):
    from datasets import DatasetDict
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.selection.budgeted import select_top_fraction

    spec = make_spec()
    ds = make_signature_dataset(random_signatures(6, spec), spec, {"num_tokens": [1] * 6, "text": ["x"] * 6})
    dd = DatasetDict({"train": ds, "test": ds})
    profile = NAGProfile.from_signatures(random_signatures(3, spec), spec)
    for call in (lambda: NAGProfile.from_dataset(dd), lambda: profile.score(dd), lambda: NAGFeaturizer().apply(dd),
                 lambda: select_top_fraction(dd, 0.5, token_column="num_tokens", profile=profile)):
        with pytest.raises(TypeError, match=r"DatasetDict with splits \['train', 'test'\].*ds\['train'\]"):
            call()
    # A stream is profiled in one bounded pass (batches), equal to the in-memory profile.
    assert NAGProfile.from_dataset(ds.to_iterable_dataset(), batch_size=4) == NAGProfile.from_dataset(ds)


@pytest.mark.fast
def test_token_counts_that_overflow_int64_are_refused():
    import numpy as np

    from nag_datasets.selection.budgeted import select_indices

    tokens = np.array([2**62, 2**62, 2**62], np.int64)
    with pytest.raises(ValueError, match="overflow"):
        select_indices(np.array([0.1, 0.2, 0.3], np.float32), tokens, 0.5)


@pytest.mark.fast
def test_truncated_token_column_warns_and_duplicates_are_counted(tmp_path):
    from datasets import concatenate_datasets
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.selection.budgeted import select_top_fraction

    spec = make_spec()
    ds = make_signature_dataset(random_signatures(6, spec), spec,
                                {"nag_tokens": [5] * 6, "text": [f"doc {i}" for i in range(6)]})
    pool = concatenate_datasets([ds, ds.select([0, 1])])  # two documents twice
    profile = NAGProfile.from_signatures(random_signatures(3, spec, seed=4), spec)
    with pytest.warns(UserWarning, match="nag_tokens.*truncated"):
        _, report = select_top_fraction(pool, 1.0, token_column="nag_tokens", profile=profile, return_report=True)
    assert report.duplicate_rows == 2 and report.duplicate_rows_selected == 2


@pytest.mark.fast
def test_no_lock_file_is_left_after_a_finished_or_refused_run(tmp_path):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.signatures.formats import save_any

    spec = make_spec()
    ds = make_signature_dataset(random_signatures(4, spec), spec)
    save_any(ds, tmp_path / "out")
    with pytest.raises(FileExistsError):
        save_any(ds, tmp_path / "out")
    save_any(ds, tmp_path / "out.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "out.parquet", "out.parquet.spec.json"]


# -- slow: the real model -------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_apply_on_zero_rows_returns_the_typed_output_columns(featurizer):
    from datasets import Dataset, Features, Value

    from nag_datasets.signatures.columns import get_spec

    empty = Dataset.from_dict({"text": []}, features=Features({"text": Value("string")}))
    out = featurizer.apply(empty)
    assert len(out) == 0 and out.column_names == ["text", "nag_fwd_up", "nag_tokens", "nag_status", "nag_spec"]
    assert get_spec(out, "nag_fwd_up") == featurizer.spec()


@pytest.mark.slow
def test_invalid_text_error_names_the_dataset_row(featurizer):
    from datasets import Dataset

    from nag_datasets.featurize.featurizer import InvalidTextError

    texts = ["fine text"] * 70
    texts[67] = None
    with pytest.raises(InvalidTextError, match="at row 67 is None"):
        featurizer.apply(Dataset.from_dict({"text": texts}), batch_size=64)


@pytest.mark.slow
def test_featurizer_tokenizer_is_public_and_counts_tokens(featurizer):
    from datasets import Dataset

    from nag_datasets.selection.tokens import count_tokens

    counted = count_tokens(Dataset.from_dict({"text": ["Water boils at 100 degrees."]}), featurizer.tokenizer)
    assert counted["num_tokens"][0] == len(featurizer.tokenizer("Water boils at 100 degrees.",
                                                                add_special_tokens=False)["input_ids"]) > 0


@pytest.mark.fast
def test_card_of_data_never_selected_is_not_titled_a_selection(tmp_path):
    from datasets import Dataset

    from nag_datasets.hub import export_for_hub

    export_for_hub(Dataset.from_dict({"text": ["a", "b"], "n": [1, 2]}), tmp_path / "export")
    card = (tmp_path / "export" / "README.md").read_text()
    title = next(line for line in card.splitlines() if line.startswith("# "))
    assert "selected" not in title.lower() and "chosen from a larger pool" not in card
    assert "recipe is unknown" in card


@pytest.mark.slow
def test_card_reproduce_block_runs_as_printed_for_the_bundled_model(featurizer, tmp_path):
    import os
    import re
    import subprocess
    import sys

    from nag_datasets.demo_data import load_demo
    from nag_datasets.hub import export_for_hub
    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.selection.budgeted import select_top_fraction

    target = featurizer.apply(load_demo("target").select(range(4)))
    pool = load_demo("pool").shuffle(seed=2).select(range(8))
    pool = featurizer.apply(pool.add_column("num_tokens", [len(t.split()) for t in pool["text"]]))
    profile = NAGProfile.from_dataset(target)
    profile.save(tmp_path / "profile")
    # 0.9: the selection's own top 90% is a real cut (at 0.6 the best row alone overflows it: an empty answer)
    selected = select_top_fraction(pool, 0.9, token_column="num_tokens", profile=profile)
    export_for_hub(selected, tmp_path / "export", token_column="num_tokens")
    card = (tmp_path / "export" / "README.md").read_text()
    assert "whole pool sorted" not in card and "bisection" in card
    code = re.search(r"To select again.*?```python\n(.*?)```", card, re.DOTALL).group(1)
    assert "NAGFeaturizer(neuron_types=" in code and "NAGFeaturizer('SmolLM2" not in code
    assert "--model" not in card  # the CLI block runs on the bundled model as printed too
    # The reader fills in the two placeholders: the pool (here the exported folder itself) and the profile.
    code = code.replace('"POOL"', repr(str(tmp_path / "export"))).replace('"PROFILE_DIR"',
                                                                          repr(str(tmp_path / "profile")))
    code += "\nprint(list(selected['id']))"
    # The user's own datasets cache, on purpose: load_dataset keys a local folder whose README lists `configs:` by
    # the folder's name, the config patterns and the card's dataset_info only, and before the card wrote
    # dataset_info an earlier folder named `export` (another test, an earlier run) answered with its stale rows.
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=900,
                          env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = select_top_fraction(selected, 0.9, token_column="num_tokens", profile=profile)["id"]
    assert 0 < len(expected) < len(selected)
    assert proc.stdout.strip().splitlines()[-1] == repr(list(expected))


@pytest.mark.slow
def test_invalid_text_error_in_a_sharded_run_names_the_row_of_the_whole_input(featurizer, tmp_path):
    from datasets import Dataset

    from nag_datasets.featurize.featurizer import InvalidTextError
    from nag_datasets.featurize.sharded import featurize_sharded

    texts = ["fine text"] * 12
    texts[9] = None
    with pytest.raises(InvalidTextError, match="at row 9 is None") as info:
        featurize_sharded(Dataset.from_dict({"text": texts}), tmp_path / "out", featurizer, shard_rows=4)
    assert info.value.row == 9


# -- issue 26: outputs that overlap inputs, empty folders, flags in command-line refusals ---------------------------


def _listing(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.fast
def test_every_command_refuses_an_output_that_is_or_overlaps_its_input_before_loading(tmp_path, capsys, monkeypatch):
    import nag_datasets.signatures.formats
    from nag_datasets.cli import main
    from nag_datasets.signatures.formats import load_any
    from nag_datasets.storage.location import join

    _pool_and_profile(tmp_path)
    pool, profile = str(tmp_path / "pool"), str(tmp_path / "profile")
    assert main(["select", pool, str(tmp_path / "sel"), "--profile", profile, "--fraction", "0.5"]) == 0
    sel = str(tmp_path / "sel")
    before = {p: _listing(tmp_path / p) for p in ("pool", "profile", "sel")}
    cases = [
        (["featurize", pool, pool, "--overwrite"], "is also the input"),
        (["featurize", pool, f"{pool}/sub"], "lies inside the input"),
        (["featurize", pool, f"{pool}/sub", "--streaming"], "lies inside the input"),
        (["profile", pool, pool, "--overwrite"], "is also the input"),
        (["profile", pool, str(tmp_path / "p2"), "--background", str(tmp_path / "p2" / "bg")], "holds the background"),
        (["score", pool, pool, "--profile", profile, "--overwrite"], "is also the input"),
        (["score", pool, f"{profile}/x", "--profile", profile], "lies inside the --profile folder"),
        (["select", pool, pool, "--profile", profile, "--fraction", "0.2", "--overwrite"], "is also the input"),
        (["select", pool, f"{pool}/sub", "--profile", profile, "--fraction", "0.2"], "lies inside the input"),
        (["select", pool, str(tmp_path / "s2"), "--profile", profile, "--fraction", "0.2", "--report",
          f"{pool}/report.json"], "the --report file"),
        (["select", sel, sel, "--score-column", "x", "--fraction", "0.2", "--overwrite"], "is also the input"),
        (["export", sel, sel, "--overwrite"], "is also the input"),
        (["export", sel, str(tmp_path), "--overwrite"], "holds the input"),
        (["push", sel, "org/repo", "--folder", f"{sel}/export"], "--folder"),
        (["distill", sel, sel, "--score-column", "x", "--overwrite"], "is also the scored sample"),
    ]

    def no_loading(*a, **k):
        raise AssertionError("data was loaded before the paths were checked")

    with monkeypatch.context() as m:
        m.setattr(nag_datasets.signatures.formats, "load_any", no_loading)
        for argv, needle in cases:
            capsys.readouterr()
            assert main(argv) == 1, argv
            err = capsys.readouterr().err
            assert err.startswith("error: ") and needle in err and err.count("\n") == 1, (argv, err)
            assert "writing it would replace or change data that is being read" in err
    assert {p: _listing(tmp_path / p) for p in ("pool", "profile", "sel")} == before
    assert len(load_any(pool)) == 20  # the pool is whole
    # The same on a remote filesystem: one memory:// pool, its selection written into it, refused.
    remote = "memory://issue26/pool"
    nag_datasets.signatures.formats.save_any(load_any(pool), remote)
    capsys.readouterr()
    assert main(["select", remote, join(remote, "sub"), "--profile", profile, "--fraction", "0.2"]) == 1
    assert "lies inside the input memory://issue26/pool" in capsys.readouterr().err


@pytest.mark.fast
def test_an_empty_existing_folder_is_accepted_as_output_without_overwrite(tmp_path, capsys):
    from nag_datasets.cli import main
    from nag_datasets.scoring.target_profile import NAGProfile
    from nag_datasets.signatures.formats import load_any

    _pool_and_profile(tmp_path)
    pool, profile = str(tmp_path / "pool"), str(tmp_path / "profile")
    for name in ("sel", "prof", "scored", "export"):
        (tmp_path / name).mkdir()
    assert main(["select", pool, str(tmp_path / "sel"), "--profile", profile, "--fraction", "0.5"]) == 0
    assert main(["profile", pool, str(tmp_path / "prof")]) == 0
    assert main(["score", pool, str(tmp_path / "scored"), "--profile", profile]) == 0
    assert main(["export", str(tmp_path / "sel"), str(tmp_path / "export")]) == 0
    assert len(load_any(tmp_path / "sel")) > 0 and len(load_any(tmp_path / "scored")) == 20
    assert NAGProfile.load(tmp_path / "prof").num_targets == 20
    assert (tmp_path / "export" / "nag_recipe.json").is_file()
    capsys.readouterr()
    # A folder holding anything at all still needs --overwrite.
    assert main(["select", pool, str(tmp_path / "sel"), "--profile", profile, "--fraction", "0.5"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.fast
def test_refusals_name_the_flag_on_the_command_line_and_the_argument_in_python(tmp_path, capsys):
    from helpers import make_signature_dataset, make_spec, random_signatures

    from nag_datasets.cli import main
    from nag_datasets.errors import OutputExistsError
    from nag_datasets.hub import export_for_hub
    from nag_datasets.signatures.formats import load_any, save_any

    _pool_and_profile(tmp_path)
    pool, profile = str(tmp_path / "pool"), str(tmp_path / "profile")
    argv = ["select", pool, str(tmp_path / "sel"), "--profile", profile, "--fraction", "0.5"]
    assert main(argv) == 0
    assert main(["export", str(tmp_path / "sel"), str(tmp_path / "export")]) == 0
    for again in (argv, ["export", str(tmp_path / "sel"), str(tmp_path / "export")],
                  ["featurize", pool, str(tmp_path / "sel")]):
        capsys.readouterr()
        assert main(again) == 1
        err = capsys.readouterr().err
        assert "pass --overwrite" in err and "overwrite=True" not in err, err
    spec = make_spec()
    ds = make_signature_dataset(random_signatures(4, spec), spec)
    for call in (lambda: save_any(ds, tmp_path / "sel"),
                 lambda: export_for_hub(load_any(tmp_path / "sel"), tmp_path / "export")):
        with pytest.raises(OutputExistsError) as info:
            call()
        assert "pass overwrite=True" in str(info.value) and "--overwrite" not in str(info.value)
