"""Card data as dataclasses: every template variable has a field, and the YAML blocks hold the recipe's values."""

from __future__ import annotations

import dataclasses

import jinja2
import jinja2.meta
import pytest
from helpers import make_spec, random_signatures

from nag_datasets import NAGProfile
from nag_datasets.distill.card import DISTILLED_TEMPLATE, DistilledCardContext
from nag_datasets.hub.card_data import (
    ProfileCardContext,
    ProfileCardData,
    ScoredCardData,
    SelectionCardData,
    SubsetCardContext,
)
from nag_datasets.hub.templates import PROFILE_TEMPLATE, SUBSET_TEMPLATE, template_path

pytestmark = pytest.mark.fast

# Set by huggingface_hub's DatasetCard.from_template itself (the YAML header).
_RENDERER_VARIABLES = {"card_data"}


@pytest.mark.parametrize(("template", "context"), [(SUBSET_TEMPLATE, SubsetCardContext),
                                                    (PROFILE_TEMPLATE, ProfileCardContext),
                                                    (DISTILLED_TEMPLATE, DistilledCardContext)])
def test_every_template_variable_is_a_field(template, context):
    source = template_path(template).read_text(encoding="utf-8")
    used = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(source)) - _RENDERER_VARIABLES
    fields = {f.name for f in dataclasses.fields(context)}
    assert used - fields == set()
    assert fields - used == set()  # nothing computed that no card shows


def test_profile_block_holds_the_profile_and_leaves_out_what_a_paper_profile_lacks():
    spec = make_spec(model_name="tiny")
    target = NAGProfile.from_signatures(random_signatures(12, spec, 1), spec, description="t")
    block = ProfileCardData.from_profile(target).to_dict()
    assert block["fingerprint"] == target.fingerprint and block["spec_fingerprint"] == spec.fingerprint
    assert block["num_targets"] == 12 and block["neuron_type"] == spec.neuron_type and block["top_k"] == spec.top_k
    assert block["score_kind"] == "similarity" and "weighting" not in block and "background" not in block

    background = NAGProfile.from_signatures(random_signatures(30, spec, 2), spec, description="bg")
    contrastive = ProfileCardData.from_profile(target.contrast(background, "log_odds", alpha=0.5)).to_dict()
    assert contrastive["score_kind"] == "contrastive"
    assert contrastive["weighting"] == {"name": "log_odds", "alpha": 0.5}
    assert contrastive["background"]["fingerprint"] == background.fingerprint


def test_selection_and_scored_blocks_from_their_sources():
    from helpers import make_signature_dataset

    from nag_datasets import select_top_fraction
    from nag_datasets.selection.recipe import get_recipe

    spec = make_spec(model_name="tiny")
    pool = make_signature_dataset(random_signatures(50, spec, 3), spec, {"num_tokens": [10] * 50})
    profile = NAGProfile.from_signatures(random_signatures(8, spec, 4), spec)
    recipe = get_recipe(select_top_fraction(pool, 0.2, token_column="num_tokens", profile=profile))
    block = SelectionCardData.from_recipe(recipe).to_dict()
    assert list(block) == [f.name for f in dataclasses.fields(SelectionCardData)]
    assert block["fraction"] == 0.2 and block["kind"] == recipe.kind and block["method"] == "exact"
    assert block["profile_fingerprints"] == [profile.fingerprint] and block["quality_weight"] is None
    assert block["spec_fingerprint"] == spec.fingerprint and block["model_name"] == "tiny"

    scored = ScoredCardData.from_meta({"column": "nag_similarity", "score_kind": "similarity",
                                       "profile": {"fingerprint": "f00"}}, "scored")
    assert scored.to_dict() == {"score_column": "nag_similarity", "score_kind": "similarity",
                                "profile_fingerprint": "f00", "config_name": "scored"}
