"""The NAG text scorer with a profile of the embedding signal: it refuses a featurizer that computes no embedding,
naming the fix, and its scores are ``profile.score``'s on the same documents, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import make_embedding_spec, make_fused_dataset, make_spec, random_embeddings, random_signatures

from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.pipelines.text_scorer import ProfileTextScorer
from nag_datasets.scoring.target_profile import NAGProfile
from nag_datasets.signatures.spec import SpecError, SpecMismatchError


@pytest.mark.fast
def test_a_featurizer_without_the_embedding_is_refused_before_any_model_loads():
    spec = make_spec(top_k=20, max_length=120)
    emb = make_embedding_spec(spec)
    target = NAGProfile.from_dataset(make_fused_dataset(random_signatures(5, spec), random_embeddings(5, shift=1),
                                                        spec, emb, spec_column=False))
    background = NAGProfile.from_dataset(make_fused_dataset(random_signatures(9, spec, 1), random_embeddings(9, seed=1),
                                                            spec, emb, spec_column=False))
    hybrid = target.contrast(background)
    featurizer = NAGFeaturizer()
    with pytest.raises(SpecError, match=r"hybrid signal, which needs the nag_embedding column.*embedding='last'"):
        ProfileTextScorer(hybrid, featurizer)
    assert featurizer._loaded is None


@pytest.mark.slow
def test_hybrid_scores_of_texts_equal_the_profiles_scores_of_the_featurized_rows(featurizer):
    from datasets import Dataset

    from nag_datasets.demo_data import load_demo

    model, tokenizer = featurizer._ensure_loaded()["model"], featurizer.tokenizer
    feat = NAGFeaturizer(model, tokenizer=tokenizer, max_length=16, layers="last2", embedding="last")
    pool_texts = load_demo("pool").select([0, 30, 60, 90, 120, 150, 180, 210])["text"]
    target = feat.apply(load_demo("target").select(range(4)))
    pool = feat.apply(Dataset.from_dict({"text": pool_texts}), batch_size=len(pool_texts))
    hybrid = NAGProfile.from_dataset(target).contrast(NAGProfile.from_dataset(pool))
    scorer = ProfileTextScorer(hybrid, feat)
    scores = scorer.score_texts(list(pool_texts))  # one batch, featurized as the map batch above
    assert scores.dtype == np.float32 and np.array_equal(scores, hybrid.score(pool))
    other = NAGFeaturizer(model, tokenizer=tokenizer, max_length=16, layers="last2", embedding="mid")
    with pytest.raises(SpecMismatchError, match="layer: profile=29 vs column 'nag_embedding'=15"):
        ProfileTextScorer(hybrid, other).score_texts(list(pool_texts[:2]))
    for f in (feat, other):
        f._loaded["pooler"].close()
        f._loaded["recorder"].close()
