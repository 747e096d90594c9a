"""HellaSwag preprocessing for the local lm-eval task: the same cleaning as the corpus builder, no imports of ours
(lm-eval loads this file by path from the task folder)."""

from __future__ import annotations

import re
from typing import Any


def _clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[[^\]]*\]", "", text)
    return text.replace("  ", " ")


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {"query": _clean(row["activity_label"] + ": " + context),
            "choices": [_clean(e) for e in row["endings"]], "gold": int(row["label"])}


def process_docs(dataset: Any) -> Any:
    """Adds ``query``, ``choices`` and ``gold`` to every row (``datasets.Dataset.map``)."""
    return dataset.map(_doc)
