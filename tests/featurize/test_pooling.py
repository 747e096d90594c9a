"""The embedding column from the featurizer's forward pass: it equals a direct mean-pool of the same layer after the
final norm (computed here without the library's hooks), the early stop moves to the embedding's layer, the column
carries its spec through a plain map, and a tiny random model shows the wiring."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from datasets import Dataset

from nag_datasets.featurize import pooling
from nag_datasets.featurize.featurizer import NAGFeaturizer
from nag_datasets.featurize.impact import HookError, ImpactRecorder
from nag_datasets.featurize.pooling import LayerPooler, check_embedding_choice
from nag_datasets.signatures.embedding_column import EMBEDDING_COLUMN, embedding_spec_from_feature
from nag_datasets.signatures.spec_column import parse_spec_value

TEXTS = ["Water boils at 100 degrees Celsius at sea level, and less on mountains.", "def add(a, b):\n    return a + b",
         "   ", "A cat sat on the mat."]


def _tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                                        num_attention_heads=4, num_key_value_heads=2, vocab_size=50))


@pytest.mark.fast
def test_doctests():
    result = doctest.testmod(pooling)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.fast
def test_pooler_on_a_tiny_model_equals_a_masked_mean_and_moves_the_stop():
    model = _tiny()
    ids = torch.randint(0, 50, (2, 6))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    rec = ImpactRecorder(model, ["fwd_up"], layers=[0], stop_after=2)
    pooler = LayerPooler(model, 2)
    assert rec.stop_layer == 2
    with pooler.recording(mask):
        rec.signatures(ids, mask, 3)
    got = pooler.result()
    with torch.no_grad():
        hs = model.model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        normed = model.model.norm(hs[3])
    for row, n in enumerate((6, 3)):
        torch.testing.assert_close(got[row], normed[row, :n].mean(0), rtol=1e-5, atol=1e-6)
    # without the moved stop the layer never runs, and the pooler says so
    rec.close()
    early = ImpactRecorder(model, ["fwd_up"], layers=[0])
    with pooler.recording(mask):
        early.signatures(ids, mask, 3)
    with pytest.raises(HookError, match="did not run"):
        pooler.result()
    early.close()
    pooler.close()


@pytest.mark.fast
@pytest.mark.parametrize("bad", ["first", 1.5, True, "x1"])
def test_embedding_choice_is_checked_at_construction(bad):
    with pytest.raises(Exception, match="embedding must be None, 'last', 'mid' or a layer index"):
        NAGFeaturizer(embedding=bad)
    assert check_embedding_choice("-2") == -2 and check_embedding_choice("mid") == "mid"


@pytest.fixture(scope="module")
def featurized():
    featurizer = NAGFeaturizer(max_length=16, layers=[0, 1], embedding="mid", torch_threads=1)
    return featurizer, featurizer.apply(Dataset.from_dict({"text": TEXTS}))


@pytest.mark.slow
def test_embedding_equals_a_direct_mean_pool_after_the_final_norm(featurized):
    featurizer, out = featurized
    model, tokenizer = featurizer._loaded["model"], featurizer._loaded["tokenizer"]
    spec = featurizer.embedding_spec()
    assert spec.layer == 15 and spec.layer_name == "mid" and spec.hidden_size == 576 and spec.max_length == 16
    assert out["nag_status"][2] == "whitespace" and out[EMBEDDING_COLUMN][2] is None
    for i, text in enumerate(TEXTS):
        if i == 2:
            continue
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=16)["input_ids"]
        with torch.no_grad():  # one document, no padding, no hooks of ours: layer 15's output, then the final norm
            hidden = model.model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states[16]
            ref = model.model.norm(hidden)[0].float().mean(0).numpy()
        got = np.asarray(out[EMBEDDING_COLUMN][i], np.float32)
        np.testing.assert_allclose(got, ref, rtol=2**-10, atol=1e-4)  # float16 storage: within its rounding
    # the signatures still stop at layer 1 and are what the featurizer computes without an embedding
    plain = NAGFeaturizer(max_length=16, layers=[0, 1], torch_threads=1).apply(Dataset.from_dict({"text": TEXTS}))
    assert plain["nag_fwd_up"] == out["nag_fwd_up"]


@pytest.mark.slow
def test_last_layer_embedding_is_the_models_final_hidden_state(featurizer):
    last = NAGFeaturizer(featurizer._ensure_loaded()["model"], tokenizer=featurizer.tokenizer, max_length=16,
                         layers="last", embedding="last")
    out = last({"text": TEXTS[:2]})
    model, tokenizer = featurizer._loaded["model"], featurizer.tokenizer
    for i, text in enumerate(TEXTS[:2]):
        ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=16)["input_ids"]
        with torch.no_grad():
            ref = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0].float().mean(0).numpy()
        np.testing.assert_allclose(np.asarray(out[EMBEDDING_COLUMN][i], np.float32), ref, rtol=2**-10, atol=1e-4)
    last._loaded["pooler"].close()
    last._loaded["recorder"].close()


@pytest.mark.slow
def test_the_column_names_its_spec_through_a_plain_map(featurized):
    featurizer, out = featurized
    spec = featurizer.embedding_spec()
    assert embedding_spec_from_feature(out.features[EMBEDDING_COLUMN]) == spec
    assert parse_spec_value(out["nag_spec"][0])[EMBEDDING_COLUMN] == spec.fingerprint()
    plain = Dataset.from_dict({"text": TEXTS}).map(featurizer, batched=True)
    assert embedding_spec_from_feature(plain.features[EMBEDDING_COLUMN]) is None
    from nag_datasets.scoring.target_profile import NAGProfile

    typed, untyped = NAGProfile.from_dataset(out), NAGProfile.from_dataset(plain)
    assert typed == untyped and typed.embedding_stats.num_rows == 3 and typed.embedding_stats.spec == spec


@pytest.mark.slow
def test_streaming_and_sharded_runners_write_the_embedding_with_its_spec(featurized, tmp_path):
    import json

    from nag_datasets.featurize.sharded import featurize_sharded
    from nag_datasets.featurize.streaming import featurize_streaming
    from nag_datasets.signatures.formats import SIDECAR, load_any

    featurizer, out = featurized
    source = tmp_path / "pool"
    Dataset.from_dict({"text": TEXTS}).save_to_disk(str(source))
    small = NAGFeaturizer(max_length=16, layers=[0, 1], embedding="mid", torch_threads=1)  # runners copy it
    featurize_streaming(str(source), tmp_path / "streamed", small, shard_rows=2)
    featurize_sharded(load_any(source), tmp_path / "sharded", small, shard_rows=2)
    spec = featurizer.embedding_spec()
    sidecar = json.loads((tmp_path / "streamed" / SIDECAR).read_text())
    assert sidecar[EMBEDDING_COLUMN] == spec.to_dict()
    for name in ("streamed", "sharded"):
        got = load_any(tmp_path / name)
        assert embedding_spec_from_feature(got.features[EMBEDDING_COLUMN]) == spec, name
        for a, b in zip(got[EMBEDDING_COLUMN], out[EMBEDDING_COLUMN]):
            assert (a is None) == (b is None)
            if a is not None:
                np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=2**-10)
