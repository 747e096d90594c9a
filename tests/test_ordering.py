"""The one seeded ordering: reproducible, independent of arrival order and of unrelated items."""

from __future__ import annotations

import hashlib

import pytest

from nag_datasets.ordering import seeded_key, seeded_order

pytestmark = pytest.mark.fast


def test_key_is_the_sha256_of_seed_and_key():
    assert seeded_key(7, "doc-1") == hashlib.sha256(b"7:doc-1").hexdigest()


def test_order_follows_the_keys_not_the_input_order():
    keys = [f"id{i}" for i in range(50)]
    ordered = [keys[i] for i in seeded_order(keys, 3)]
    shuffled = keys[::-1]
    assert [shuffled[i] for i in seeded_order(shuffled, 3)] == ordered
    assert ordered == sorted(keys, key=lambda k: hashlib.sha256(f"3:{k}".encode()).hexdigest())


def test_adding_items_keeps_the_relative_order_of_the_others():
    keys = [f"id{i}" for i in range(30)]
    before = [keys[i] for i in seeded_order(keys, 0)]
    more = keys + [f"new{i}" for i in range(10)]
    after = [more[i] for i in seeded_order(more, 0) if more[i] in set(keys)]
    assert after == before


def test_seeds_give_different_orders_and_equal_keys_keep_input_order():
    keys = [f"id{i}" for i in range(20)]
    assert seeded_order(keys, 0) != seeded_order(keys, 1)
    assert seeded_order(["a", "a", "a"], 5) == [0, 1, 2]
