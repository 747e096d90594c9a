"""The package's one seeded ordering: a reproducible shuffle of keyed items that does not depend on Python's hash
seed, the platform or the order the items arrive in.

An item with key ``k`` sorts by ``sha256(f"{seed}:{k}")`` (hex). The demo data, the evaluation harness's tasks, the
pretraining corpus and the analysis sets all draw their samples this way, so a sample is stable when unrelated
items are added to or removed from a source.

>>> seeded_order(["a", "b", "c", "d"], seed=0)
[3, 0, 2, 1]
>>> seeded_key(0, "a") == seeded_key("0", "a")
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["seeded_key", "seeded_order"]


def seeded_key(seed: int | str, key: str) -> str:
    """The sort key of the item ``key`` under ``seed``: the hex sha256 of ``f"{seed}:{key}"``."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def seeded_order(keys: Sequence[str], seed: int | str) -> list[int]:
    """Positions of ``keys`` in their seeded order (equal keys keep their input order)."""
    return sorted(range(len(keys)), key=lambda i: seeded_key(seed, keys[i]))
