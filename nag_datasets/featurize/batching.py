"""Length-sorted, right-padded batches of token ids: the one batching rule of the featurizer and the analyses.

Documents are sorted by (length, position) so a batch holds documents of similar length (little padding), and
padded on the right, so a document's tokens sit at the same positions whatever its batch holds.

>>> [(chunk, ids.tolist(), mask.tolist()) for chunk, ids, mask in length_sorted_batches([[5, 6], [7], [8, 9]], 2, 0)]
[([1, 0], [[7, 0], [5, 6]], [[1, 0], [1, 1]]), ([2], [[8, 9]], [[1, 1]])]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import InvalidArgumentError

__all__ = ["length_order", "length_sorted_batches", "right_padded"]


def length_order(id_lists: Sequence[Sequence[int]]) -> list[int]:
    """Positions of ``id_lists`` sorted by (length, position)."""
    return sorted(range(len(id_lists)), key=lambda i: (len(id_lists[i]), i))


def right_padded(id_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[Any, Any]:
    """``(input_ids, attention_mask)`` int64 tensors of shape ``(len(id_lists), longest)``, padded on the right."""
    import torch

    width = max(len(x) for x in id_lists)
    ids = torch.full((len(id_lists), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(id_lists), width), dtype=torch.long)
    for j, x in enumerate(id_lists):
        ids[j, : len(x)] = torch.tensor(list(x), dtype=torch.long)
        mask[j, : len(x)] = 1
    return ids, mask


def length_sorted_batches(id_lists: Sequence[Sequence[int]], batch_size: int, pad_id: int, *,
                          sort: bool = True) -> Iterator[tuple[list[int], Any, Any]]:
    """``(positions, input_ids, attention_mask)`` for batches of at most ``batch_size`` documents, in length order
    (input order when ``sort`` is False). Every list must hold at least one id."""
    if batch_size < 1:
        raise InvalidArgumentError(f"batch_size must be at least 1, got {batch_size}")
    order = length_order(id_lists) if sort else list(range(len(id_lists)))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        ids, mask = right_padded([id_lists[i] for i in chunk], pad_id)
        yield chunk, ids, mask
