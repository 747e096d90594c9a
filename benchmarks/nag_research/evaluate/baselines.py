"""Scoring functions: how target-like each pool document is, by NAG and by the peers it is compared with.

Every scorer returns one float per pool document, higher = more like the targets.

- :func:`nag_scores`: the library's :class:`~nag_datasets.scoring.target_profile.NAGProfile` similarity (mean Dice overlap).
- :func:`contrastive_nag_scores`: the library's contrastive profile (``NAGProfile.contrast``): mean per-neuron
  weight (target vs background neuron frequencies; :func:`contrastive_weights` restates the formulas in numpy) over
  a document's signature; not a Dice similarity, can be negative.
- :func:`embedding_scores`: BETR-style cosine of mean-pooled hidden states of the same model, to the target
  centroid (``"centroid"``) or to the nearest target (``"max"``).
- :func:`contrastive_embedding_scores`: cosine to the target centroid minus the background's mean embedding (the
  embedding counterpart of the contrastive profile).
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

from nag_datasets.signatures.spec import SignatureSpec

__all__ = [
    "WEIGHTINGS",
    "contrastive_embedding_scores",
    "contrastive_nag_scores",
    "contrastive_profile",
    "contrastive_weights",
    "dsir_scores",
    "embedding_scores",
    "harness_subset",
    "nag_scores",
    "neuron_counts",
    "random_scores",
    "tfidf_scores",
]

#: Contrastive weightings and the parameters each takes (the names the library's ``NAGProfile.contrast`` uses).
WEIGHTINGS: dict[str, tuple[str, ...]] = {
    "frequency": (),
    "log_odds": ("alpha",),
    "shrinkage": ("m", "alpha"),
    "difference": (),
    "lift": ("eps",),
    "tfidf": (),
}


def random_scores(n: int, seed: int) -> np.ndarray:
    """``n`` uniform scores from ``numpy.random.default_rng(seed)``: the same seed gives the same ranking."""
    return np.random.default_rng(seed).random(n)


def harness_subset(sigs: np.ndarray, spec: SignatureSpec, *, layers: str | Sequence[int] = "all",
                   top_k: int | None = None) -> tuple[np.ndarray, SignatureSpec]:
    """The harness's layer/K options applied with the library's own slicing: ``layers`` are *positions* in
    ``spec.layers`` (or ``"all"``/``"last"``), ``top_k`` a prefix of every row (rows are sorted by impact)."""
    from nag_research.analysis.subsets import prefix_signatures, slice_signatures

    if layers != "all":
        chosen = "last" if layers == "last" else [spec.layers[int(p)] for p in layers]
        sigs, spec = slice_signatures(sigs, spec, chosen)
    if top_k is not None and int(top_k) != spec.top_k:
        sigs, spec = prefix_signatures(sigs, spec, int(top_k))
    return sigs, spec


def nag_scores(pool_sigs: np.ndarray, target_sigs: np.ndarray, spec: SignatureSpec) -> np.ndarray:
    """Similarity of every pool signature to the profile of the target signatures (both computed with ``spec``)."""
    from nag_datasets.scoring.target_profile import NAGProfile

    profile = NAGProfile.from_signatures(target_sigs, spec)
    return np.asarray(profile.score(pool_sigs, num_threads=1), dtype=np.float64)


def neuron_counts(sigs: np.ndarray, neurons_per_layer: int) -> np.ndarray:
    """``c[l, n]``: how many of the signatures ``(n_docs, L, K)`` hold neuron ``n`` in layer ``l`` (int64)."""
    sigs = np.asarray(sigs, dtype=np.int64)
    L = sigs.shape[1]
    codes = (sigs + (np.arange(L, dtype=np.int64) * neurons_per_layer)[None, :, None]).ravel()
    return np.bincount(codes, minlength=L * neurons_per_layer).reshape(L, neurons_per_layer)


def contrastive_weights(c_t: np.ndarray, n_t: int, c_b: np.ndarray, n_b: int, weighting: str = "log_odds",
                        **params: float) -> np.ndarray:
    """Per-neuron weights ``(L, N)`` from target counts ``c_t`` of ``n_t`` documents and background counts ``c_b`` of
    ``n_b`` documents (float64; finite for every neuron, seen in the background or not).

    - ``frequency``: ``c_t/n_t`` (the paper's profile; the background is ignored)
    - ``log_odds`` (alpha): ``log((c_t+a)/(n_t+2a)) - log((c_b+a)/(n_b+2a))``
    - ``shrinkage`` (m, alpha): ``p_b = (c_b+a)/(n_b+2a)``; ``log((c_t + m p_b)/(n_t + m)) - log(p_b)``
    - ``difference``: ``c_t/n_t - c_b/n_b``
    - ``lift`` (eps): ``log((c_t/n_t + eps)/(c_b/n_b + eps))``
    - ``tfidf``: ``c_t/n_t * log((n_b+1)/(c_b+1))``

    Neurons: one every document holds, one nobody holds, one only the targets hold (2 targets, 10 background):

    >>> c_t, c_b = np.array([[2, 0, 2]]), np.array([[10, 0, 1]])
    >>> np.round(contrastive_weights(c_t, 2, c_b, 10, "log_odds", alpha=0.5), 3).tolist()
    [[-0.136, 1.299, 1.81]]

    (Every signature holds exactly K neurons per layer, so adding a constant to all weights shifts every score
    equally and changes no ranking.)

    >>> contrastive_weights(c_t, 2, c_b, 10, "difference").tolist()
    [[0.0, 0.0, 0.9]]
    """
    expected = WEIGHTINGS.get(weighting)
    if expected is None:
        raise ValueError(f"unknown weighting {weighting!r}; choose from {sorted(WEIGHTINGS)}")
    if set(params) != set(expected):
        raise ValueError(f"weighting {weighting!r} takes parameters {expected}, got {tuple(sorted(params))}")
    ct, cb = np.asarray(c_t, np.float64), np.asarray(c_b, np.float64)
    ft = ct / n_t
    if weighting == "frequency":
        return ft
    if n_b < 1:
        raise ValueError("a contrastive weighting needs a background of at least one document")
    fb = cb / n_b
    if weighting == "log_odds":
        a = float(params["alpha"])
        return np.log((ct + a) / (n_t + 2 * a)) - np.log((cb + a) / (n_b + 2 * a))
    if weighting == "shrinkage":
        a, m = float(params["alpha"]), float(params["m"])
        pb = (cb + a) / (n_b + 2 * a)
        return np.log((ct + m * pb) / (n_t + m)) - np.log(pb)
    if weighting == "difference":
        return ft - fb
    if weighting == "lift":
        eps = float(params["eps"])
        return np.log((ft + eps) / (fb + eps))
    return ft * np.log((n_b + 1) / (cb + 1))  # tfidf


def contrastive_profile(target_sigs: np.ndarray, background_sigs: np.ndarray, spec: SignatureSpec,
                        weighting: str = "log_odds", **params: float) -> Any:
    """The library's profile of the targets contrasted with the background (``"frequency"``: the paper's profile)."""
    from nag_datasets.scoring.target_profile import NAGProfile

    target = NAGProfile.from_signatures(target_sigs, spec)
    return target.contrast(NAGProfile.from_signatures(background_sigs, spec), weighting, signal="nag", **params)


def contrastive_nag_scores(pool_sigs: np.ndarray, target_sigs: np.ndarray, background_sigs: np.ndarray,
                           spec: SignatureSpec, weighting: str = "log_odds", **params: float) -> np.ndarray:
    """The library's contrastive score of every pool signature: mean over layers and the K slots of the float32
    weights (:func:`contrastive_weights` gives the same weights in float64); ``weighting="frequency"`` gives the
    paper's similarity. Higher = more target-like."""
    profile = contrastive_profile(target_sigs, background_sigs, spec, weighting, **params)
    return np.asarray(profile.score(np.asarray(pool_sigs), num_threads=1), dtype=np.float64)


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


def contrastive_embedding_scores(pool_emb: np.ndarray, target_emb: np.ndarray, background_emb: np.ndarray,
                                 *, centred: bool = False) -> np.ndarray:
    """Cosine of every pool vector to ``d = mean(unit targets) - mean(unit background)``: the direction in which the
    targets differ from the background (the embedding centroid's contrastive counterpart). ``centred=True`` also
    subtracts the background mean from each unit pool vector before the cosine (a centred cosine)."""
    p, t, b = _unit_rows(pool_emb), _unit_rows(target_emb), _unit_rows(background_emb)
    mean_b = b.mean(axis=0)
    d = t.mean(axis=0) - mean_b
    if centred:
        p = _unit_rows(p - mean_b)
    return p @ (d / (np.linalg.norm(d) or 1.0))


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
