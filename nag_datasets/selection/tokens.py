"""Token counts of whole documents: the unit a selection budget is measured in.

A budget is a share of the pool's tokens, so every document's full count is needed (not the featurizer's truncated
``nag_tokens``). :class:`TokenCounter` is the picklable ``map`` callable, :func:`count_tokens` the one-line form.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["TokenCounter", "count_tokens"]


class TokenCounter:
    """Picklable ``ds.map(fn, batched=True)`` callable: full token count of each text (no truncation or specials)."""

    def __init__(self, tokenizer: Any, column: str = "text", out_column: str = "num_tokens") -> None:
        self.tokenizer = tokenizer
        self.column = column
        self.out_column = out_column

    def __call__(self, batch: dict[str, Any]) -> dict[str, np.ndarray]:
        texts = ["" if t is None else t for t in list(batch[self.column])]
        enc = self.tokenizer(texts, add_special_tokens=False, truncation=False, return_attention_mask=False,
                             verbose=False)
        return {self.out_column: np.array([len(ids) for ids in enc["input_ids"]], dtype=np.int64)}


def count_tokens(
    ds: Any,
    tokenizer: Any,
    column: str = "text",
    *,
    out_column: str = "num_tokens",
    batch_size: int = 1000,
    num_proc: int | None = None,
) -> Any:
    """``ds`` with an int64 column of each document's full token count in ``tokenizer`` (null text counts 0).

    >>> from datasets import Dataset
    >>> class Words:  # any callable with the `transformers` tokenizer interface works
    ...     def __call__(self, texts, **kwargs):
    ...         return {"input_ids": [t.split() for t in texts]}
    >>> count_tokens(Dataset.from_dict({"text": ["a b c", "d"]}), Words())["num_tokens"][:]
    [3, 1]
    """
    return ds.map(
        TokenCounter(tokenizer, column, out_column),
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        desc="Counting tokens",
    )
