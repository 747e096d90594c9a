"""The first ``max_length`` token ids of a text with bounded work, however long or odd the text is.

A megabyte document is cut to a character budget before tokenization; the budget is grown until two cuts agree
on the first ``max_length`` ids, so the ids are those of the uncut document. Lone surrogates (which no UTF-8
tokenizer accepts) are replaced by U+FFFD.

>>> from transformers import AutoTokenizer
>>> from nag_datasets.featurize.models import converted_bundled_dir
>>> tok = AutoTokenizer.from_pretrained(converted_bundled_dir()[0])
>>> ids, truncated = first_token_ids("word " * 200_000, tok, 120)
>>> len(ids), truncated
(120, True)
"""

from __future__ import annotations

from typing import Any

#: Spare tokens beyond max_length that a cut must yield before it is trusted.
MARGIN = 16


def clean_text(text: str) -> str:
    """``text`` unchanged, unless it holds surrogates: a high+low pair becomes its character, a lone one U+FFFD.

    >>> ascii(clean_text("a\\ud800b")), ascii(clean_text("\\ud83d\\ude00"))
    ("'a\\\\ufffdb'", "'\\\\U0001f600'")
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def first_token_ids(text: str, tokenizer: Any, max_length: int, add_special_tokens: bool = False,
                    char_budget: int | None = None) -> tuple[list[int], bool]:
    """Return (the first ``max_length`` ids of ``text``, whether the full text has more tokens)."""
    text = clean_text(text)

    def enc(s: str) -> list[int]:
        return list(tokenizer(s, add_special_tokens=add_special_tokens)["input_ids"])

    cut = char_budget or max(4096, 32 * max_length)
    while True:
        if cut >= len(text):
            ids = enc(text)
            return ids[:max_length], len(ids) > max_length
        head = enc(text[:cut])
        if len(head) > max_length + MARGIN:
            longer = enc(text[: 2 * cut]) if 2 * cut < len(text) else enc(text)
            if longer[:max_length] == head[:max_length]:
                return head[:max_length], True
        cut *= 2
