"""Shared fixtures (the real bundled model, loaded once per session) and the default test tiers.

Every test is ``fast`` or ``slow`` (``--strict-markers``): an explicit mark wins; otherwise a test is ``slow`` when it
uses the ``bundled`` or ``featurizer`` fixture or lives in a module of :data:`SLOW_MODULES`, and ``fast`` otherwise.
``make test-fast`` runs ``pytest -m fast`` (no model), ``make test`` everything.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: Fixtures that load the real model.
MODEL_FIXTURES = frozenset({"bundled", "featurizer"})
#: Modules whose tests load the model or run long subprocesses without saying so through a fixture.
SLOW_MODULES = frozenset({"test_behaviour", "test_gpu_bench", "test_notebooks", "test_textcut"})
TIERS = ("fast", "slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        module = item.module.__name__.rsplit(".", 1)[-1] if item.module else ""
        slow = module in SLOW_MODULES or bool(MODEL_FIXTURES & set(getattr(item, "fixturenames", ())))
        item.add_marker(pytest.mark.slow if slow else pytest.mark.fast)


@pytest.fixture(autouse=True, scope="session")
def _quiet_datasets():
    """No `datasets` progress bars in test output."""
    import datasets

    datasets.disable_progress_bars()


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
