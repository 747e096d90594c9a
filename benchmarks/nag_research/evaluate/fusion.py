"""Two signals from one forward pass, fused: a contrastive NAG profile and the centred contrastive embedding.

Every scorer here is computable one row at a time from statistics fixed when the profile is made, from the target
rows and the *background sample* rows only (never from the pool being scored), so a library can reproduce it in
any entry point (batched ``map``, streaming, selection):

- :func:`centred_embedding_scores`: the embedding signal on float16-rounded vectors (what the library stores).
- :func:`zsum_scores`: ``w * z(nag) + (1 - w) * z(emb)``, each signal z-scored with the mean and the population
  standard deviation of the background rows' own scores (:func:`background_stats`).
- :func:`rrf_scores`: reciprocal-rank fusion in which a row's rank in each signal is its *rank fraction among the
  background rows* (:func:`rank_fraction`): ``w / (kappa + p_nag) + (1 - w) / (kappa + p_emb)``.
- :class:`LearnedScorer`: an L2 logistic regression, target rows (positives) against background rows (negatives),
  its regularisation chosen by cross-validation on those rows only (scikit-learn ``LogisticRegressionCV``), on
  neuron-indicator features of one signature column (:func:`multi_hot`), on the centred embedding
  (:func:`embedding_block`), or on both.
- :func:`hybrid_scores` (and :func:`hybrid_components`): the harness's shipped default (:data:`HYBRID_DEFAULT`,
  ``0.2 z(contrastive NAG) + 0.8 z(learned embedding model)``) on plain arrays, for the experiments and notebooks
  that need it outside the harness. It is the research implementation; the library's ``contrast(background,
  signal="hybrid")`` (``nag_weight`` 0.2) is the same method for profiles that keep their rows' embeddings, and the
  experiments should move to it (equal scores are the check).

>>> nag, nag_bg = np.array([3.0, 1.0]), np.array([0.0, 1.0, 2.0])
>>> emb, emb_bg = np.array([0.1, 0.9]), np.array([0.2, 0.4, 0.6])
>>> zsum_scores(nag, nag_bg, emb, emb_bg, 0.5).round(3).tolist()
[0.306, 1.531]
>>> rank_fraction(np.array([3.0, 1.0, -1.0]), nag_bg).tolist()   # above all, tied with the middle, below all
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "HYBRID_DEFAULT",
    "LearnedScorer",
    "as_float16",
    "background_stats",
    "centred_embedding_scores",
    "embedding_block",
    "fit_learned",
    "hybrid_components",
    "hybrid_scores",
    "multi_hot",
    "rank_fraction",
    "rrf_scores",
    "zscore",
    "zsum_scores",
]


def as_float16(emb: Any) -> np.ndarray:
    """Embeddings as the library stores them: rounded to float16 (then computed with in float64)."""
    return np.asarray(emb, dtype=np.float32).astype(np.float16).astype(np.float64)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def centred_embedding_scores(pool_emb: Any, target_emb: Any, background_emb: Any) -> np.ndarray:
    """Centred contrastive embedding on float16-rounded vectors, in float64.

    ``u(x) = x / |x|`` (zero rows stay zero); ``mu_b`` = mean of ``u`` over the background rows;
    ``d = mean of u over the target rows - mu_b``; score = ``u(u(x) - mu_b) . d / |d|`` (``|d| = 0``: ``d``).

    >>> centred_embedding_scores([[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0]], [[0.0, 1.0], [1.0, 1.0]]).round(3).tolist()
    [1.0, -0.863]
    """
    p, t, b = (_unit_rows(as_float16(x)) for x in (pool_emb, target_emb, background_emb))
    mu_b = b.mean(axis=0)
    d = t.mean(axis=0) - mu_b
    norm = np.linalg.norm(d)
    return _unit_rows(p - mu_b) @ (d / (norm if norm > 0 else 1.0))


def background_stats(background_scores: Any) -> tuple[float, float]:
    """``(mean, std)`` of the background rows' own scores: float64, population std (``ddof=0``); a std that is
    zero or not finite (one row, or all equal) is replaced by 1.0, so z-scoring only shifts."""
    s = np.asarray(background_scores, dtype=np.float64)
    if s.size == 0 or not np.isfinite(s).all():
        raise ValueError("background scores must be a non-empty array of finite values")
    mean, std = float(s.mean()), float(s.std())
    return mean, (std if np.isfinite(std) and std > 0 else 1.0)


def zscore(scores: Any, background_scores: Any) -> np.ndarray:
    """``(scores - mean) / std`` with :func:`background_stats` of the background rows' scores."""
    mean, std = background_stats(background_scores)
    return (np.asarray(scores, dtype=np.float64) - mean) / std


def zsum_scores(nag: Any, nag_background: Any, emb: Any, emb_background: Any, w: float) -> np.ndarray:
    """``w * z(nag) + (1 - w) * z(emb)`` (:func:`zscore` of each signal against its background scores)."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"the weight on NAG must lie in [0, 1], got {w}")
    return w * zscore(nag, nag_background) + (1.0 - w) * zscore(emb, emb_background)


def rank_fraction(scores: Any, background_scores: Any) -> np.ndarray:
    """Per row: ``(#background rows scoring higher + #equal / 2) / #background rows``, in [0, 1]; 0 = above every
    background row (the top), 1 = below every one."""
    b = np.sort(np.asarray(background_scores, dtype=np.float64))
    if b.size == 0:
        raise ValueError("rank fractions need at least one background score")
    s = np.asarray(scores, dtype=np.float64)
    right = np.searchsorted(b, s, side="right")
    left = np.searchsorted(b, s, side="left")
    return ((b.size - right) + 0.5 * (right - left)) / b.size


def rrf_scores(nag: Any, nag_background: Any, emb: Any, emb_background: Any, kappa: float,
               w: float = 0.5) -> np.ndarray:
    """Reciprocal-rank fusion on background rank fractions: ``w / (kappa + p_nag) + (1 - w) / (kappa + p_emb)``
    (``kappa > 0``; ``kappa = 60 / n`` is the usual RRF constant 60 for lists of ``n`` rows)."""
    if kappa <= 0:
        raise ValueError(f"kappa must be positive, got {kappa}")
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"the weight on NAG must lie in [0, 1], got {w}")
    return w / (kappa + rank_fraction(nag, nag_background)) + (1.0 - w) / (kappa + rank_fraction(emb, emb_background))


# -- learned ------------------------------------------------------------------------------------------------------


def multi_hot(sigs: Any, neurons_per_layer: int) -> Any:
    """Neuron indicators of signatures ``(n, L, K)``: a sparse ``(n, L * N)`` CSR matrix with ``1 / sqrt(L * K)`` at
    every (layer, neuron) a row's NAG holds (so every row has unit norm).

    >>> multi_hot(np.array([[[0, 2], [1, 0]]]), 3).toarray().round(2).tolist()
    [[0.5, 0.0, 0.5, 0.5, 0.5, 0.0]]
    """
    from scipy import sparse

    s = np.asarray(sigs, dtype=np.int64)
    n, L, K = s.shape
    cols = (s + (np.arange(L, dtype=np.int64) * neurons_per_layer)[None, :, None]).reshape(n, L * K)
    rows = np.repeat(np.arange(n), L * K)
    data = np.full(n * L * K, 1.0 / np.sqrt(L * K))
    return sparse.csr_matrix((data, (rows, cols.ravel())), shape=(n, L * neurons_per_layer))


def embedding_block(emb: Any, background_emb: Any) -> np.ndarray:
    """Centred unit embeddings ``u(u(x) - mu_b)`` (float16-rounded inputs, float64; ``mu_b`` from the background)."""
    mu_b = _unit_rows(as_float16(background_emb)).mean(axis=0)
    return _unit_rows(_unit_rows(as_float16(emb)) - mu_b)


@dataclasses.dataclass
class LearnedScorer:
    """A fitted target-vs-background logistic regression; :meth:`score` is its decision function (log-odds)."""

    coef: np.ndarray  # (features,)
    intercept: float
    C: float

    def score(self, X: Any) -> np.ndarray:
        return np.asarray(X @ self.coef, dtype=np.float64).ravel() + self.intercept


def fit_learned(positives: Any, negatives: Any, *, Cs: Sequence[float] = (0.1, 1.0, 10.0, 100.0), folds: int = 3,
                seed: int = 0) -> LearnedScorer:
    """L2 logistic regression of ``positives`` (target rows) against ``negatives`` (background rows): balanced class
    weights, C chosen among ``Cs`` by ``folds``-fold stratified cross-validation (ROC-AUC) on these rows only,
    liblinear solver (``random_state=0``, so a refit is bit-identical), then refitted on all of them. Rows are
    feature matrices (dense or scipy sparse)."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    stack = sparse.vstack if sparse.issparse(positives) else np.vstack
    X = stack([positives, negatives])
    if sparse.issparse(X):
        X = X.tocsr()
    n_pos = positives.shape[0]
    y = np.r_[np.ones(n_pos, dtype=np.int64), np.zeros(negatives.shape[0], dtype=np.int64)]
    if min(n_pos, negatives.shape[0]) < folds:
        raise ValueError(f"{folds}-fold cross-validation needs at least {folds} target and {folds} background rows")
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    kwargs: dict[str, Any] = {}
    params = inspect.signature(LogisticRegressionCV).parameters
    if "l1_ratios" in params:  # scikit-learn >= 1.8: a pure L2 penalty is l1_ratio 0 (``penalty`` is deprecated)
        kwargs["l1_ratios"] = (0.0,)
    if "use_legacy_attributes" in params:
        kwargs["use_legacy_attributes"] = False
    model = LogisticRegressionCV(Cs=list(Cs), cv=splits, scoring="roc_auc", solver="liblinear",
                                 class_weight="balanced", max_iter=1000, refit=True, random_state=0, **kwargs)
    model.fit(X, y)
    return LearnedScorer(coef=np.asarray(model.coef_[0], np.float64), intercept=float(model.intercept_[0]),
                         C=float(np.ravel(model.C_)[0]))


# -- the shipped default (hybrid) -----------------------------------------------------------------------------------

#: The harness's shipped default (``benchmarks/results/evaluate/report.md``, "Z-sum w=0.2: fwd_down shrinkage m=50
#: a=0.5 last10 + learned emb last"): NAG component = contrastive ``fwd_down`` profile of the last 10 layers,
#: shrinkage m=50 alpha=0.5; embedding component = the learned model on the centred last-layer embedding (C among
#: ``Cs`` by ``folds``-fold cross-validation); ``w`` = weight on the NAG z-score.
HYBRID_DEFAULT: dict[str, Any] = {"neuron_type": "fwd_down", "last_layers": 10, "weighting": "shrinkage",
                                  "params": {"m": 50.0, "alpha": 0.5}, "w": 0.2, "Cs": (0.1, 1.0, 10.0, 100.0),
                                  "folds": 3}


def hybrid_components(pool_sigs: Any, target_sigs: Any, background_sigs: Any, spec: Any, pool_emb: Any,
                      target_emb: Any, background_emb: Any,
                      config: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The two signals of :func:`hybrid_scores` on the pool rows and on the background rows.

    Signatures are ``(n, L, K)`` of ``spec``'s layers (all layers: the last ``config["last_layers"]`` are sliced out);
    embeddings ``(n, hidden)`` (any float dtype: they are rounded to float16 as the library stores them). Returns
    ``nag``, ``nag_background`` (contrastive NAG scores), ``learned``, ``learned_background`` (the learned
    embedding model's log-odds) and ``C`` (the regularisation cross-validation chose).
    """
    from .baselines import contrastive_nag_scores, harness_subset

    cfg = {**HYBRID_DEFAULT, **(config or {})}
    n_layers = len(spec.layers)
    last = list(range(n_layers - int(cfg["last_layers"]), n_layers))
    sliced = [harness_subset(np.asarray(x), spec, layers=last) for x in (pool_sigs, target_sigs, background_sigs)]
    sub_spec = sliced[0][1]
    pool_s, target_s, bg_s = (x[0] for x in sliced)
    both = np.concatenate([pool_s, bg_s])
    nag = contrastive_nag_scores(both, target_s, bg_s, sub_spec, cfg["weighting"], **cfg["params"])
    model = fit_learned(embedding_block(target_emb, background_emb), embedding_block(background_emb, background_emb),
                        Cs=tuple(cfg["Cs"]), folds=int(cfg["folds"]))
    learned = model.score(embedding_block(np.concatenate([np.asarray(pool_emb), np.asarray(background_emb)]),
                                          background_emb))
    n = len(pool_s)
    return {"nag": nag[:n], "nag_background": nag[n:], "learned": learned[:n], "learned_background": learned[n:],
            "C": np.float64(model.C)}


def hybrid_scores(pool_sigs: Any, target_sigs: Any, background_sigs: Any, spec: Any, pool_emb: Any, target_emb: Any,
                  background_emb: Any, config: dict[str, Any] | None = None) -> np.ndarray:
    """The shipped default's score of every pool row: ``w * z(nag) + (1 - w) * z(learned)``, each signal z-scored
    with the mean and std of the background rows' own scores (:func:`zsum_scores`); higher = more target-like.
    Equal to the harness's ``_score`` of the same method (``tests/research/test_fusion.py``)."""
    cfg = {**HYBRID_DEFAULT, **(config or {})}
    c = hybrid_components(pool_sigs, target_sigs, background_sigs, spec, pool_emb, target_emb, background_emb, cfg)
    return zsum_scores(c["nag"], c["nag_background"], c["learned"], c["learned_background"], float(cfg["w"]))
