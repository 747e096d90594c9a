"""Fixtures shared by the sharded and streaming featurization tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def pool_dir(tmp_path_factory):
    """Twelve shuffled rows of the demo pool, saved with ``save_to_disk`` (the input of the scale-out tests)."""
    from nag_datasets.demo_data import load_demo

    path = tmp_path_factory.mktemp("pool") / "pool"
    load_demo("pool").shuffle(seed=1).select(range(12)).save_to_disk(str(path))
    return path
