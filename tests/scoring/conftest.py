"""Fixtures the scoring tests share: a small signature spec and a 400-row on-disk pool of random signatures."""

from __future__ import annotations

import pytest
from helpers import make_signature_dataset, make_spec, random_signatures


@pytest.fixture
def spec():
    return make_spec()


@pytest.fixture
def pool(spec, tmp_path):
    """``(signatures, dataset)``: 400 random rows with a column ``n``, rows 3, 77 and 399 null."""
    sigs = random_signatures(400, spec, seed=1)
    ds = make_signature_dataset(sigs, spec, {"n": list(range(400))}, null_rows=[3, 77, 399], path=tmp_path / "pool")
    return sigs, ds
