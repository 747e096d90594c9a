"""Scoring functions: how target-like each pool document is, by NAG and by the peers it is compared with.

Every scorer returns one float per pool document, higher = more like the targets.

- :func:`nag_scores`: the library's :class:`~nag_datasets.profile.NAGProfile` similarity (mean Dice overlap).
- :func:`embedding_scores`: BETR-style cosine of mean-pooled hidden states of the same model, to the target
  centroid (``"centroid"``) or to the nearest target (``"max"``).
- :func:`tfidf_scores`: cosine of TF-IDF vectors (scikit-learn), to the centroid or to the nearest target.
- :func:`dsir_scores`: DSIR's per-document log importance weight, computed by the ``data-selection`` package
  (hashed unigram+bigram counts, target vs raw-pool bucket distributions).
- :func:`random_scores`: seeded uniform noise.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..spec import SignatureSpec

__all__ = ["dsir_scores", "embedding_scores", "nag_scores", "random_scores", "slice_signatures", "tfidf_scores"]


def random_scores(n: int, seed: int) -> np.ndarray:
    """``n`` uniform scores from ``numpy.random.default_rng(seed)``: the same seed gives the same ranking."""
    return np.random.default_rng(seed).random(n)


def slice_signatures(sigs: np.ndarray, spec: SignatureSpec, *, layers: str | Sequence[int] = "all",
                     top_k: int | None = None) -> tuple[np.ndarray, SignatureSpec]:
    """Signatures restricted to some layers (positions in ``spec.layers``, or ``"all"``/``"last"``) and/or to
    their top-``top_k`` prefix (rows are sorted by impact), with the matching spec."""
    if layers == "all":
        pos = list(range(spec.num_layers))
    elif layers == "last":
        pos = [spec.num_layers - 1]
    else:
        pos = [int(p) for p in layers]
    k = spec.top_k if top_k is None else int(top_k)
    if not 1 <= k <= spec.top_k:
        raise ValueError(f"top_k={k} must be within 1..{spec.top_k} (prefixes only)")
    out = np.ascontiguousarray(sigs[:, pos, :k])
    return out, spec.replace(layers=tuple(spec.layers[p] for p in pos), top_k=k)


def nag_scores(pool_sigs: np.ndarray, target_sigs: np.ndarray, spec: SignatureSpec) -> np.ndarray:
    """Similarity of every pool signature to the profile of the target signatures (both computed with ``spec``)."""
    from ..profile import NAGProfile

    profile = NAGProfile.from_signatures(target_sigs, spec)
    return np.asarray(profile.score(pool_sigs, num_threads=1), dtype=np.float64)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def embedding_scores(pool_emb: np.ndarray, target_emb: np.ndarray, mode: str = "centroid") -> np.ndarray:
    """Cosine similarity to the mean of the unit-normalised target vectors (``centroid``), to that mean minus the
    pool's mean (``contrast``: the embedding's counterpart of a contrastive profile), or to the most similar target.

    >>> pool = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> embedding_scores(pool, np.array([[1.0, 0.0]]), mode="contrast").round(3)
    array([ 0.604, -0.797, -0.137])
    """
    p, t = _unit_rows(pool_emb), _unit_rows(target_emb)
    if mode in ("centroid", "contrast"):
        c = t.mean(axis=0)
        if mode == "contrast":
            c = c - p.mean(axis=0)
        return p @ (c / (np.linalg.norm(c) or 1.0))
    if mode == "max":
        return (p @ t.T).max(axis=1)
    raise ValueError(f"mode must be 'centroid', 'contrast' or 'max', got {mode!r}")


def tfidf_scores(pool_texts: Sequence[str], target_texts: Sequence[str], mode: str = "centroid") -> np.ndarray:
    """TF-IDF cosine (word unigrams+bigrams, sublinear tf, idf fitted on pool and targets together)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    matrix = vec.fit_transform(list(pool_texts) + list(target_texts))
    p, t = matrix[: len(pool_texts)], matrix[len(pool_texts):]
    if mode == "centroid":
        c = np.asarray(t.mean(axis=0)).ravel()
        norm = np.linalg.norm(c)
        return np.asarray(p @ (c / (norm or 1.0))).ravel()
    if mode == "max":
        return np.asarray((p @ t.T).max(axis=1).todense()).ravel()
    raise ValueError(f"mode must be 'centroid', 'contrast' or 'max', got {mode!r}")


def dsir_scores(pool_texts: Sequence[str], target_texts: Sequence[str], *, ngrams: int = 2,
                num_buckets: int = 10000, per_ngram: bool = False) -> np.ndarray:
    """DSIR log importance weights of the pool documents from the ``data-selection`` package (1.0.3).

    ``HashedNgramDSIR`` fits bucket distributions of hashed word n-grams on the pool (its "raw" data, all tokens)
    and on the targets; a document's log importance weight is ``counts . (log p_target - log p_raw)``, exactly the
    value the package writes to its ``log_importance_weights`` files before resampling. Resampling itself (Gumbel
    top-k, the minimum-length filter) is not used: the weights are the ranking score.

    The weight is a sum over the document's n-grams, so it scales with length (most terms are negative: longer
    documents score lower). ``per_ngram=True`` divides it by the document's n-gram count (our variant, not the
    package's), which ranks documents of unequal length by how target-like their n-grams are on average.
    """
    try:
        from data_selection import HashedNgramDSIR
    except ImportError as e:
        raise ImportError("the DSIR baseline needs `pip install --no-deps data-selection==1.0.3 nltk` "
                          "(its other dependencies numpy, tqdm, joblib are already required)") from e
    data = {"pool": list(pool_texts), "target": list(target_texts)}

    def load(path: str) -> Any:
        return iter(data[path])

    def identity(ex: str) -> str:
        return ex

    with tempfile.TemporaryDirectory(prefix="nag-dsir-") as tmp:
        dsir = HashedNgramDSIR(["pool"], ["target"], cache_dir=tmp, raw_load_dataset_fn=load,
                               raw_parse_example_fn=identity, target_load_dataset_fn=load,
                               target_parse_example_fn=identity, num_proc=1, ngrams=ngrams,
                               num_buckets=num_buckets)
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):  # the package's tqdm bars
            dsir.fit_importance_estimator(num_tokens_to_fit="all")
        out = np.empty(len(data["pool"]))
        for i, text in enumerate(data["pool"]):
            counts = dsir.featurizer(text)
            out[i] = float(dsir.importance_estimator(counts))
            if per_ngram:
                out[i] /= max(int(counts.sum()), 1)
        return out
