"""A scored pool (``nag-datasets score``, :func:`score_pool`): every row kept, the profile's own scores bit for bit,
full-document token counts; cut at any r_f afterwards; ``select --keep-score``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import make_signature_dataset, make_spec, random_signatures

from nag_datasets.cli.app import main
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.recipe import get_recipe, get_score_info
from nag_datasets.selection.scored import SCORED_KIND, score_pool
from nag_datasets.selection.tokens import count_tokens
from nag_datasets.signatures.formats import load_any

pytestmark = pytest.mark.fast

N = 120
NULL_ROWS = (3, 50)


def _texts(n: int) -> list[str]:
    return [f"document {i} " + "word " * (i % 7) for i in range(n)]


def _pool(spec, path=None, tokens=False):
    extra = {"text": _texts(N), "source": [("web", "code")[i % 2] for i in range(N)]}
    if tokens:
        extra["num_tokens"] = [2 + i % 7 for i in range(N)]
    return make_signature_dataset(random_signatures(N, spec, seed=4), spec, extra, null_rows=NULL_ROWS, path=path)


def _profiles(spec, pool):
    paper = NAGProfile.from_signatures(random_signatures(25, spec, seed=9), spec, description="target")
    background = NAGProfile.from_dataset(pool, "nag_fwd_up", sample=80, seed=1)
    return {"paper": paper, "contrastive": paper.contrast(background)}


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A whitespace word-level tokenizer saved as a `transformers` tokenizer folder (no model, no network)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = sorted({w for t in _texts(N) for w in t.split()})
    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    folder = tmp_path_factory.mktemp("tok")
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(str(folder))
    return folder


def _float32_bits(ds, column):
    """The column's stored float32 values as bits (nulls as NaN bits) and its null mask."""
    col = ds.data.column(column).combine_chunks()
    values = col.fill_null(float("nan")).to_numpy(zero_copy_only=False)
    return values.view(np.uint32), np.asarray(col.is_null())


@pytest.mark.parametrize("kind", ["paper", "contrastive"])
def test_score_command_keeps_every_row_with_the_profiles_scores_and_token_counts(kind, tmp_path, tokenizer_dir, capsys):
    from transformers import AutoTokenizer

    spec = make_spec()
    pool = _pool(spec, path=tmp_path / "pool")
    profile = _profiles(spec, pool)[kind]
    profile.save(tmp_path / "profile")
    column = profile.score_column
    assert column == {"paper": "nag_similarity", "contrastive": "nag_contrast_score"}[kind]

    argv = [
        "score",
        str(tmp_path / "pool"),
        str(tmp_path / "scored"),
        "--profile",
        str(tmp_path / "profile"),
        "--tokenizer",
        str(tokenizer_dir),
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"] == N and printed["score_column"] == column and printed["token_column"] == "num_tokens"
    scored = load_any(tmp_path / "scored")

    # Every row, every column, in order.
    assert len(scored) == N
    assert scored.remove_columns([column, "num_tokens"]).to_list() == pool.to_list()
    # float32 scores equal to profile.score on the same rows, bit for bit; null where it gives NaN.
    assert scored.features[column].dtype == "float32"
    expected = profile.score(pool)
    bits, null = _float32_bits(scored, column)
    assert null.tolist() == np.isnan(expected).tolist() and sorted(np.flatnonzero(null)) == list(NULL_ROWS)
    assert np.array_equal(bits[~null], expected[~null].view(np.uint32))
    # Token counts are count_tokens' with the same tokenizer.
    reference = count_tokens(pool, AutoTokenizer.from_pretrained(str(tokenizer_dir)))
    assert scored["num_tokens"][:] == reference["num_tokens"][:]
    assert scored["num_tokens"][:5] == [2, 3, 4, 5, 6]
    # The column names the profile that made it.
    info = get_score_info(scored, column)
    assert info["kind"] == SCORED_KIND and info["profile_fingerprint"] == profile.fingerprint
    assert info["score_kind"] == profile.score_kind and info["signature_column"] == "nag_fwd_up"


def test_score_refuses_an_existing_output_and_needs_one_scorer_source(tmp_path, capsys):
    spec = make_spec()
    pool = _pool(spec, path=tmp_path / "pool", tokens=True)
    _profiles(spec, pool)["paper"].save(tmp_path / "profile")
    argv = ["score", str(tmp_path / "pool"), str(tmp_path / "scored"), "--profile", str(tmp_path / "profile")]
    assert main(argv) == 0
    first = load_any(tmp_path / "scored")
    assert first["num_tokens"][:] == pool["num_tokens"][:]  # an existing token column is kept as it is
    capsys.readouterr()
    assert main(argv) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert (
        main(
            [
                "score",
                str(tmp_path / "pool"),
                str(tmp_path / "mine"),
                "--profile",
                str(tmp_path / "profile"),
                "--overwrite",
            ]
        )
        == 1
    )
    assert "notes.txt" in capsys.readouterr().err and (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    with pytest.raises(SystemExit):  # no scorer source: argparse refuses (exit status 2)
        main(["score", str(tmp_path / "pool"), str(tmp_path / "x")])


def test_a_scored_pool_cut_at_r_f_equals_selection_with_the_profile(tmp_path, capsys):
    spec = make_spec()
    pool = _pool(spec, tokens=True)
    for profile in _profiles(spec, pool).values():
        scored = score_pool(pool, profile)
        for fraction in (0.1, 0.35):
            cut, cut_report = select_top_fraction(
                scored, fraction, token_column="num_tokens", score_column=profile.score_column, return_report=True
            )
            direct, report = select_top_fraction(
                pool, fraction, token_column="num_tokens", profile=profile, return_report=True
            )
            assert cut.remove_columns([profile.score_column]).to_list() == direct.to_list()
            assert len(cut) == len(direct) and cut_report.tokens_selected == report.tokens_selected
            recipe = get_recipe(cut)
            assert recipe.profiles[0]["fingerprint"] == profile.fingerprint
            assert recipe.spec == spec.to_dict()
    with pytest.raises(ValueError, match="would replace the signature column"):
        score_pool(pool, profile, out_column="nag_fwd_up")

    # The same cut on the command line.
    profile = _profiles(spec, pool)["contrastive"]
    score_pool(pool, profile).save_to_disk(str(tmp_path / "scored"))
    assert (
        main(
            [
                "select",
                str(tmp_path / "scored"),
                str(tmp_path / "cut"),
                "--score-column",
                "nag_contrast_score",
                "--fraction",
                "0.2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    expected = select_top_fraction(pool, 0.2, token_column="num_tokens", profile=profile)
    assert load_any(tmp_path / "cut")["text"][:] == expected["text"][:]


def test_select_keep_score_keeps_the_selected_rows_scores(tmp_path, capsys):
    spec = make_spec()
    pool = _pool(spec, path=tmp_path / "pool", tokens=True)
    for kind, profile in _profiles(spec, pool).items():
        profile.save(tmp_path / kind)
        base = ["select", str(tmp_path / "pool"), "--profile", str(tmp_path / kind), "--fraction", "0.3"]
        assert main([base[0], base[1], str(tmp_path / f"{kind}-plain"), *base[2:]]) == 0
        assert main([base[0], base[1], str(tmp_path / f"{kind}-kept"), *base[2:], "--keep-score"]) == 0
        capsys.readouterr()
        plain, kept = load_any(tmp_path / f"{kind}-plain"), load_any(tmp_path / f"{kind}-kept")
        column = profile.score_column
        assert column not in plain.column_names and kept.features[column].dtype == "float32"
        assert kept.remove_columns([column]).to_list() == plain.to_list()
        bits, null = _float32_bits(kept, column)
        assert not null.any()
        assert np.array_equal(bits, profile.score(plain).view(np.uint32))
        assert get_recipe(kept) == get_recipe(plain).__class__.from_dict(
            {**get_recipe(plain).to_dict(), "created": get_recipe(kept).created}
        )
    assert (
        main(
            [
                "select",
                str(tmp_path / "pool"),
                str(tmp_path / "x"),
                "--score-column",
                "s",
                "--fraction",
                "0.3",
                "--keep-score",
            ]
        )
        == 1
    )
    assert "--keep-score needs --profile" in capsys.readouterr().err
