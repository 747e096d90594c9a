"""Distillation study (issue 16): train fast text classifiers on NAG scores and compare them with exact NAG.

For each retrieval task of the harness (MMLU domains, GCIDE fields) a *training pool* of the same source is drawn
outside every document the harness uses (targets, pool and extra targets), cut to the harness's ``max_length`` and
featurized once (cached in resumable chunks, `features.featurize_texts`). Per class:

1. the exact profile of the harness (the class's targets contrasted with the harness pool as background, one
   neuron type) scores the training pool;
2. a distilled scorer (`nag_datasets.distill`) is trained on part of the training pool (labels: the top share);
3. agreement with the exact scores is measured on the held-out rest (precision at the r_f cut, Spearman), and the
   distilled scorer ranks the harness pool (mean AP next to exact NAG, the embedding and random).

>>> round(precision_at_cut(np.arange(10.0), np.arange(10.0), 0.2), 2)
1.0
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from .tasks import GCIDE_FIELDS, RetrievalTask, cut_to_tokens, strip_gcide_label

__all__ = ["precision_at_cut", "spearman", "training_pool"]


def _order_key(seed: int, rid: str) -> str:
    return hashlib.sha256(f"distill:{seed}:{rid}".encode()).hexdigest()


def _mmlu_rows() -> list[tuple[str, str, str]]:
    from nag_datasets.demo_data import load_source

    ds = load_source("mmlu")
    return list(zip(ds["id"], ds["subject"], ds["text"]))


def _gcide_rows() -> list[tuple[str, str, str]]:
    from ..corpora import gcide_entries

    rows = []
    for i, entry in enumerate(gcide_entries()):
        if entry.field_label in GCIDE_FIELDS:
            rows.append((f"gcide/{i:06d}/{entry.headword}", entry.field_label,
                         strip_gcide_label(entry.text, entry.field_label).strip()))
    return rows


def training_pool(task: RetrievalTask, tokenizer: Any, max_length: int, n: int, *, seed: int = 0,
                  min_chars: int = 40) -> tuple[list[str], list[str]]:
    """``n`` documents of the task's source that the harness task does not use (no shared id and no shared text),
    cut to ``max_length`` tokens, in a seeded hash order; returns ``(texts, source labels)``.

    MMLU: questions of all 57 subjects; GCIDE: entries carrying one of ``GCIDE_FIELDS`` (label removed).
    """
    rows = _mmlu_rows() if task.name == "mmlu_domains" else _gcide_rows()
    used_ids, used_texts = set(task.ids), set(task.texts)
    seen: set[str] = set()
    out_texts: list[str] = []
    out_labels: list[str] = []
    for rid, label, text in sorted(rows, key=lambda r: _order_key(seed, r[0])):
        if rid in used_ids or len(text) < min_chars or text in seen:
            continue
        seen.add(text)
        cut = cut_to_tokens(text, tokenizer, max_length)
        if cut in used_texts:
            continue
        out_texts.append(cut)
        out_labels.append(label)
        if len(out_texts) == n:
            break
    return out_texts, out_labels


def precision_at_cut(predicted: np.ndarray, exact: np.ndarray, fraction: float) -> float:
    """Share of the predicted top ``fraction`` (by row count) that is also in the exact top ``fraction``."""
    k = max(1, round(fraction * len(exact)))
    top_p = set(np.argsort(-np.asarray(predicted), kind="stable")[:k].tolist())
    top_e = set(np.argsort(-np.asarray(exact), kind="stable")[:k].tolist())
    return len(top_p & top_e) / k


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties).

    >>> spearman([1, 2, 3], [10, 20, 30])
    1.0
    """
    from scipy.stats import spearmanr

    return float(spearmanr(np.asarray(a), np.asarray(b)).statistic)
