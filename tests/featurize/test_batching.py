"""The one batching rule: length-sorted, right-padded batches of token ids."""

from __future__ import annotations

import pytest

from nag_datasets.featurize.batching import length_order, length_sorted_batches, right_padded

pytestmark = pytest.mark.fast


def test_length_order_sorts_by_length_then_position():
    assert length_order([[1, 2, 3], [4], [5, 6], [7]]) == [1, 3, 2, 0]


def test_right_padded_puts_tokens_first_and_masks_the_padding():
    ids, mask = right_padded([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert str(ids.dtype) == "torch.int64" and str(mask.dtype) == "torch.int64"


def test_batches_cover_every_document_once_in_length_order():
    lists = [[1] * n for n in (5, 2, 9, 2, 1, 7, 3)]
    batches = list(length_sorted_batches(lists, batch_size=3, pad_id=-1))
    positions = [p for chunk, _, _ in batches for p in chunk]
    assert positions == [4, 1, 3, 6, 0, 5, 2]
    assert [len(chunk) for chunk, _, _ in batches] == [3, 3, 1]
    for chunk, ids, mask in batches:
        assert ids.shape[1] == max(len(lists[p]) for p in chunk)
        assert mask.sum(dim=1).tolist() == [len(lists[p]) for p in chunk]


def test_unsorted_batches_keep_input_order():
    chunks = [chunk for chunk, _, _ in length_sorted_batches([[1, 2], [3], [4, 5, 6]], 2, 0, sort=False)]
    assert chunks == [[0, 1], [2]]


def test_batch_size_below_one_is_refused():
    with pytest.raises(ValueError, match="batch_size"):
        list(length_sorted_batches([[1]], 0, 0))
