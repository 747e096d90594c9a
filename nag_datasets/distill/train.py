"""Training a distilled scorer from a scored sample: labels, a held-out split, agreement figures, the folder.

>>> import numpy as np
>>> precision_at_cut(np.array([3.0, 2.0, 1.0, 0.0]), np.array([3.0, 1.0, 2.0, 0.0]), 0.5)
0.5
>>> round(spearman(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])), 3)
0.5
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .labels import DistillError, LabelRule, make_examples
from .models import DistilledModel, default_rule_mode, model_class
from .scorer import BUNDLED_TOKENIZER, DistilledScorer, save_scorer

__all__ = ["AGREEMENT_FRACTIONS", "agreement", "distill", "distill_dataset", "precision_at_cut", "spearman",
           "train_model"]

#: The r_f cuts at which agreement with the exact ranking is reported.
AGREEMENT_FRACTIONS = (0.05, 0.2)


def precision_at_cut(predicted: np.ndarray, exact: np.ndarray, fraction: float) -> float:
    """Share of the predicted top ``fraction`` of rows that is also in the exact top ``fraction`` (ties by row)."""
    k = max(1, round(fraction * len(exact)))
    rows = np.arange(len(exact))
    top_p = np.lexsort((rows, -np.asarray(predicted, np.float64)))[:k]
    top_e = np.lexsort((rows, -np.asarray(exact, np.float64)))[:k]
    return float(len(np.intersect1d(top_p, top_e)) / k)


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]  # average rank of ties


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra, rb = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(predicted: np.ndarray, exact: np.ndarray) -> dict[str, float]:
    """Precision at each ``AGREEMENT_FRACTIONS`` cut and Spearman of ``predicted`` against ``exact`` scores."""
    out = {f"precision@{f:g}": precision_at_cut(predicted, exact, f) for f in AGREEMENT_FRACTIONS}
    out["spearman"] = spearman(predicted, exact)
    out["rows"] = len(exact)
    return out


def train_model(texts: Sequence[str], scores: np.ndarray, *, rule: LabelRule | None = None,
                model: str = "linear", seed: int = 0, params: dict[str, Any] | None = None,
                min_rows: int | None = None) -> tuple[DistilledModel, dict[str, Any]]:
    """Label ``scores`` by ``rule`` and fit a ``model`` (``"linear"``, the default, or ``"fasttext"``) on ``texts``;
    returns the model and what was used (rows, positives). No held-out split: see :func:`distill`."""
    rule = rule or LabelRule(mode=default_rule_mode(model))
    if len(texts) != len(scores):
        raise DistillError(f"{len(texts)} texts but {len(scores)} scores")
    cls = model_class(model)
    if rule.mode == "regress" and cls.kind == "fasttext":
        raise DistillError("fastText learns labels only: use mode='top_share', or model='linear' to regress")
    kw = {} if min_rows is None else {"min_rows": min_rows}
    rows, targets = make_examples(np.asarray(scores, dtype=np.float64), rule, seed=seed, **kw)
    bad = [int(i) for i in rows if not isinstance(texts[int(i)], str)]
    if bad:
        raise DistillError(f"row {bad[0]} has a score but its text is not a string ({type(texts[bad[0]]).__name__})")
    fitted = cls(**(params or {})).fit([texts[int(i)] for i in rows], targets, seed)
    used = {"training_rows": len(rows), "positives": int((targets == 1.0).sum()) if rule.mode == "top_share" else None}
    return fitted, used


def distill(texts: Sequence[str], scores: np.ndarray, out_dir: str | os.PathLike[str], *,
            rule: LabelRule | None = None, model: str = "linear", seed: int = 0,
            params: dict[str, Any] | None = None, holdout: float = 0.1, source: dict[str, Any] | None = None,
            tokenizer: str | None = None, tokenizer_fingerprint: str | None = None, overwrite: bool = False,
            min_rows: int | None = None) -> DistilledScorer:
    """Train a distilled scorer on a scored sample and save it (model, ``distilled.json``, card) to ``out_dir``.

    A seeded ``holdout`` share of the scored rows is kept out of training; the saved JSON and card report agreement
    with the exact scores on it (precision at the r_f cut for r_f 0.05 and 0.2, Spearman). ``source`` describes
    where the scores came from (profile fingerprint, description, score kind, the sample); ``tokenizer`` (a name,
    a path or ``"bundled"``) is what ``count_tokens`` will use. Same inputs and seed: the same model bytes for the
    linear model (not for fastText, see `nag_datasets.distill.models`).
    """
    rule = rule or LabelRule(mode=default_rule_mode(model))
    scores = np.asarray(scores, dtype=np.float64)
    if len(texts) != len(scores):
        raise DistillError(f"{len(texts)} texts but {len(scores)} scores")
    if not 0.0 <= holdout < 1.0:
        raise DistillError(f"holdout must be in [0, 1), got {holdout}")
    scored = np.flatnonzero(~np.isnan(scores))
    perm = np.random.default_rng(seed).permutation(scored)
    n_hold = round(holdout * len(scored))
    hold, train_rows = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
    train_texts = [texts[int(i)] for i in train_rows]
    fitted, used = train_model(train_texts, scores[train_rows], rule=rule, model=model, seed=seed, params=params,
                               min_rows=min_rows)
    info: dict[str, Any] = {
        "rule": rule.to_dict(), "rule_text": rule.describe(), "seed": int(seed),
        "sample": {"rows": len(scores), "scored_rows": len(scored), "holdout_rows": len(hold), **used},
        "source": dict(source or {}),
        "tokenizer": {"name": tokenizer, "fingerprint": tokenizer_fingerprint} if tokenizer else None,
    }
    if len(hold) >= 2:
        info["agreement"] = agreement(fitted.predict([texts[int(i)] for i in hold]), scores[hold])
    folder = save_scorer(fitted, out_dir, info, overwrite=overwrite)
    from .card import write_card

    write_card(folder)
    return DistilledScorer.load(folder)


def _column_source(ds: Any, score_column: str, profile: Any) -> dict[str, Any]:
    from ..selection.recipe import get_score_info

    source: dict[str, Any] = {"score_column": score_column}
    info = get_score_info(ds, score_column)
    if info:
        source["score_info"] = info
        if info.get("profile_fingerprint"):
            source["profile_fingerprint"] = info["profile_fingerprint"]
    if profile is not None:
        summary = profile.summary()
        source.update({"profile_fingerprint": profile.fingerprint(), "description": profile.description,
                       "score_kind": summary.get("score_kind"), "weighting": summary.get("weighting"),
                       "signal": summary.get("signal"),
                       "neuron_type": profile.spec.neuron_type, "spec_fingerprint": profile.spec.fingerprint(),
                       "model_name": profile.spec.model_name})
    return source


def distill_dataset(ds: Any, out_dir: str | os.PathLike[str], *, score_column: str, text_column: str = "text",
                    profile: Any = None, tokenizer: str | None = None, **kwargs: Any) -> DistilledScorer:
    """:func:`distill` on a scored dataset (``text_column`` and ``score_column``; null scores are skipped).

    ``profile`` (the ``NAGProfile`` that made the scores) is recorded in the card; without ``tokenizer``, a profile
    of the bundled model records the bundled tokenizer, so ``count_tokens`` counts the featurizer's tokens.
    """
    from ..signatures.arrow import numeric_column

    for col in (text_column, score_column):
        if col not in ds.column_names:
            raise DistillError(f"column {col!r} not in dataset; columns: {ds.column_names}")
    scores = numeric_column(ds, score_column)
    texts = list(ds[text_column])
    tok_fp = None
    if tokenizer is None and profile is not None:
        from ..featurize.models import BUNDLED_NAME

        if profile.spec.model_name == BUNDLED_NAME:
            tokenizer, tok_fp = BUNDLED_TOKENIZER, profile.spec.tokenizer_fingerprint
    source = _column_source(ds, score_column, profile)
    source["text_column"] = text_column
    return distill(texts, scores, out_dir, source=source, tokenizer=tokenizer, tokenizer_fingerprint=tok_fp,
                   **kwargs)

