"""Cards say which signal ranked: the profile card of a fused profile, a selection's subset card (its contrastive
table and reproduce blocks carry ``--embedding``/``--signal``), a scored pool's card."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.hub import export_for_hub, profile_card
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.selection.budgeted import select_top_fraction
from nag_datasets.selection.scored import score_pool

SPEC = make_spec()
EMB = make_embedding_spec(SPEC)


@pytest.fixture(scope="module")
def pool_and_profiles():
    n = 60
    pool = make_fused_dataset(random_signatures(n, SPEC, 2), random_embeddings(n, seed=2), SPEC, EMB,
                              {"num_tokens": [7] * n, "text": [f"doc {i}" for i in range(n)]})
    target = NAGProfile.from_dataset(make_fused_dataset(random_signatures(8, SPEC, 1),
                                                        random_embeddings(8, shift=1.0, seed=1), SPEC, EMB))
    background = NAGProfile.from_dataset(pool, sample=40, seed=0)
    return pool, {s: target.contrast(background, signal=s) for s in ("nag", "hybrid", "embedding")}


def _card(folder):
    from huggingface_hub import DatasetCard

    return DatasetCard.load(folder / "README.md")


@pytest.mark.parametrize("signal", ["hybrid", "embedding"])
def test_profile_card_names_the_signal_and_the_embedding(pool_and_profiles, tmp_path, signal):
    pool, profiles = pool_and_profiles
    profile = profiles[signal]
    card = _card(profile_card(profile, tmp_path / "p").parent)
    block = card.data.nag_profile
    assert block["signal"] == signal and block["embedding"]["spec_fingerprint"] == EMB.fingerprint()
    assert f"**Signal: {signal}.**" in card.text and "--embedding last" in card.text
    if signal == "hybrid":
        assert block["nag_weight"] == 0.2 and "0.2 z(NAG) + 0.8 z(embedding model)" in card.text
    else:
        assert "largest contrastive weights" not in card.text  # the neuron weights do not rank here
    loaded = NAGProfile.from_pretrained(tmp_path / "p")
    assert np.array_equal(loaded.score(pool), profile.score(pool), equal_nan=True)


@pytest.mark.parametrize("signal", ["nag", "hybrid"])
def test_subset_card_and_reproduce_blocks_carry_the_signal(pool_and_profiles, tmp_path, signal):
    pool, profiles = pool_and_profiles
    selected = select_top_fraction(pool, 0.3, token_column="num_tokens", profile=profiles[signal])
    body = _card(export_for_hub(selected, tmp_path / "out", token_column="num_tokens", license="mit")).text
    code = body.split("```python\n")[2].split("```")[0]
    compile(code, "card", "exec")
    cli = body.split("```bash\n")[1].split("```")[0]
    assert f"--signal {signal}" in cli
    if signal == "hybrid":
        assert "| hybrid: 0.2 z(NAG) + 0.8 z(learned embedding model, layer 2) |" in body
        assert "embedding='last'" in code and cli.count("--embedding last") == 2 and "--nag-weight 0.2" in cli
    else:
        assert "| nag: contrastive NAG |" in body and "embedding=" not in code and "--embedding " not in cli


def test_scored_pool_card_says_how_the_hybrid_scored(pool_and_profiles, tmp_path):
    pool, profiles = pool_and_profiles
    body = _card(export_for_hub(score_pool(pool, profiles["hybrid"]), tmp_path / "scored",
                                token_column="num_tokens", config_name="scored")).text
    assert "with the signal `hybrid: 0.2 z(NAG) + 0.8 z(learned embedding model, layer 2)`" in body
