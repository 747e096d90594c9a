"""Arrow access to `datasets` tables: the null check of validity bitmaps, signature blocks, row order."""

from __future__ import annotations

import numpy as np
import pytest

from nag_datasets.signatures.arrow import first_row_with_unset_bits

pytestmark = pytest.mark.fast


def test_first_row_with_unset_bits_matches_brute_force():
    rng = np.random.default_rng(3)
    for width in (1, 3, 8, 20, 600):
        for offset in (0, 5, 13):
            n = 40
            bits = rng.random(offset + n * width + 7) > 0.002
            valid = rng.random(n) > 0.3
            packed = np.packbits(bits, bitorder="little")
            rows = bits[offset : offset + n * width].reshape(n, width)
            bad = np.flatnonzero(valid & ~rows.all(axis=1))
            assert first_row_with_unset_bits(packed, offset, width, valid) == (int(bad[0]) if len(bad) else -1)
