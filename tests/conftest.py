"""Shared fixtures: the real bundled model, loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def bundled():
    """(model, tokenizer) of the bundled SmolLM2-135M-Instruct, fp32 on CPU."""
    from nag_datasets.featurize.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def featurizer():
    """A default featurizer (fwd_up, K=20, max_length=120) on the bundled model."""
    from nag_datasets.featurize.featurizer import NAGFeaturizer

    return NAGFeaturizer()
