"""The embedding signal: a linear score on centred unit embeddings, fitted from the target rows against the
background rows only.

A row's float16 embedding ``x`` (cast to float64) becomes ``u = x / |x|`` (a zero row stays zero) and then
``f(x) = (u - mu_b) / |u - mu_b|`` (a zero difference is left as it is), ``mu_b`` being the mean of ``u`` over the
background rows. The score is ``s(x) = f(x) . coef + intercept`` with

- ``kind="learned"`` (the default, what the retrieval harness picked): an L2 logistic regression of the target rows
  (positives) against the background rows (negatives), balanced class weights, ``C`` chosen among ``Cs`` by
  stratified ``folds``-fold cross-validation (ROC-AUC, seeded) on those rows, liblinear, refitted on all of them;
  ``s`` is its log-odds;
- ``kind="centred"``: the centred contrastive embedding, ``coef = d / |d|`` with ``d`` the target rows' mean ``u``
  minus ``mu_b``, intercept 0: the cosine of ``u - mu_b`` with the direction from the background to the targets.

Scores are computed row by row in float64 with sums in a fixed order (a compiled loop, not a BLAS product whose
blocking depends on the batch), so a row's score never depends on which rows share its batch. The fit needs
scikit-learn (a dependency of the package); scoring needs only the stored ``mu_b``, ``coef`` and ``intercept``.

>>> import numpy as np
>>> target = np.array([[1.0, 0.1], [0.9, 0.0], [1.0, -0.1]], np.float16)
>>> background = np.array([[0.0, 1.0], [0.1, 1.0], [-0.1, 1.0], [1.0, 1.0]], np.float16)
>>> model = fit_embedding_model(target, background, kind="centred")
>>> model.scores(np.array([[1.0, 0.0], [0.0, 1.0]], np.float16)).round(3).tolist()
[1.0, -0.905]
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..compiled import jit
from ..errors import InvalidArgumentError, MissingDependencyError
from .profile_files import ProfileError

__all__ = ["DEFAULT_CS", "EMBEDDING_MODELS", "EmbeddingModel", "background_mean", "centred_features",
           "centred_features_numpy", "fit_embedding_model"]

#: The embedding models: the learned logistic regression (default) and the plain centred contrastive embedding.
EMBEDDING_MODELS = ("learned", "centred")
#: The regularisation grid of the learned model (the retrieval harness's).
DEFAULT_CS = (0.1, 1.0, 10.0, 100.0)
#: Rows converted to float32 at a time while scoring (bounds the temporary copy).
_BLOCK_ROWS = 4096


@jit(nogil=True)
def _row_norm(row):  # type: ignore[no-untyped-def]
    """The float64 norm of one float32 row, summed in index order (1.0 for a zero row)."""
    ss = 0.0
    for j in range(row.shape[0]):
        v = np.float64(row[j])
        ss += v * v
    norm = np.sqrt(ss)
    return 1.0 if norm == 0.0 else norm


@jit(nogil=True)
def _centre_row(row, mu, out):  # type: ignore[no-untyped-def]
    """``out`` = the unit row minus ``mu``, scaled to unit norm (left as is when that difference is zero)."""
    norm = _row_norm(row)
    ss = 0.0
    for j in range(row.shape[0]):
        d = np.float64(row[j]) / norm - mu[j]
        out[j] = d
        ss += d * d
    dnorm = np.sqrt(ss)
    if dnorm == 0.0:
        dnorm = 1.0
    for j in range(row.shape[0]):
        out[j] = out[j] / dnorm


@jit(nogil=True)
def _unit_rows(emb, out):  # type: ignore[no-untyped-def]
    n, H = emb.shape
    for i in range(n):
        norm = _row_norm(emb[i])
        for j in range(H):
            out[i, j] = np.float64(emb[i, j]) / norm


@jit(nogil=True)
def _centred_rows(emb, mu, out):  # type: ignore[no-untyped-def]
    for i in range(emb.shape[0]):
        _centre_row(emb[i], mu, out[i])


@jit(nogil=True)
def _linear_scores(emb, valid, use_valid, mu, coef, intercept, work, out, out_start):  # type: ignore[no-untyped-def]
    n, H = emb.shape
    for i in range(n):
        if use_valid and not valid[i]:
            out[out_start + i] = np.nan
            continue
        _centre_row(emb[i], mu, work)
        s = 0.0
        for j in range(H):
            s += work[j] * coef[j]
        out[out_start + i] = s + intercept


def _as_float32(emb: Any) -> np.ndarray:
    """Embeddings as a C-contiguous float32 array (float16 values convert exactly)."""
    arr = np.asarray(emb)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"embeddings must be an (n, hidden) array, got shape {arr.shape}")
    if arr.dtype != np.float16:
        arr = arr.astype(np.float32).astype(np.float16)  # what the column stores
    return np.ascontiguousarray(arr, dtype=np.float32)


def unit_rows(emb: Any) -> np.ndarray:
    """``u = x / |x|`` of float16 embeddings, float64 (zero rows stay zero)."""
    x = _as_float32(emb)
    out = np.empty(x.shape, np.float64)
    _unit_rows(x, out)
    return out


def background_mean(background_emb: Any) -> np.ndarray:
    """``mu_b``: the mean of ``u`` over the background rows (float64)."""
    u = unit_rows(background_emb)
    if not len(u):
        raise ProfileError("the embedding signal needs at least one background row with an embedding")
    return u.mean(axis=0)


def centred_features(emb: Any, mu_b: np.ndarray) -> np.ndarray:
    """``f(x) = (u - mu_b) / |u - mu_b|`` per row, float64, computed as the scores are (compiled, fixed order)."""
    x = _as_float32(emb)
    mu = np.ascontiguousarray(mu_b, dtype=np.float64)
    if mu.shape != (x.shape[1],):
        raise InvalidArgumentError(f"mu_b has shape {mu.shape}, the embeddings have {x.shape[1]} values per row")
    out = np.empty(x.shape, np.float64)
    _centred_rows(x, mu, out)
    return out


def centred_features_numpy(emb: Any, mu_b: np.ndarray) -> np.ndarray:
    """The numpy reference of :func:`centred_features` (equal up to rounding; the tests compare them)."""
    x = np.asarray(emb, np.float16).astype(np.float64)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    u = x / np.where(n == 0, 1.0, n)
    d = u - np.asarray(mu_b, np.float64)
    m = np.linalg.norm(d, axis=1, keepdims=True)
    return d / np.where(m == 0, 1.0, m)


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingModel:
    """A linear score on centred unit embeddings (see the module docstring): ``mu_b``, ``coef`` (float64
    ``(hidden,)``), ``intercept``; ``C`` is the learned model's chosen regularisation (None for ``centred``)."""

    kind: str
    mu_b: np.ndarray
    coef: np.ndarray
    intercept: float
    C: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in EMBEDDING_MODELS:
            raise InvalidArgumentError(f"unknown embedding model {self.kind!r}; known: {', '.join(EMBEDDING_MODELS)}")
        mu = np.ascontiguousarray(self.mu_b, dtype=np.float64)
        coef = np.ascontiguousarray(self.coef, dtype=np.float64)
        if mu.ndim != 1 or coef.shape != mu.shape:
            raise ProfileError(f"mu_b {mu.shape} and coef {coef.shape} must be vectors of the same length")
        if not (np.isfinite(mu).all() and np.isfinite(coef).all() and np.isfinite(self.intercept)):
            raise ProfileError("the embedding model holds non-finite values")
        mu.flags.writeable = False
        coef.flags.writeable = False
        object.__setattr__(self, "mu_b", mu)
        object.__setattr__(self, "coef", coef)
        object.__setattr__(self, "intercept", float(self.intercept))
        object.__setattr__(self, "C", None if self.C is None else float(self.C))

    @property
    def hidden_size(self) -> int:
        return len(self.coef)

    def scores(self, emb: Any, valid: np.ndarray | None = None) -> np.ndarray:
        """``s(x)`` of every row (float64; NaN where ``valid`` is False), each row on its own."""
        arr = np.asarray(emb)
        if arr.ndim != 2 or arr.shape[1] != self.hidden_size:
            raise InvalidArgumentError(f"embeddings have shape {arr.shape}, the profile expects (n, "
                                       f"{self.hidden_size})")
        n = len(arr)
        out = np.empty(n, np.float64)
        work = np.empty(self.hidden_size, np.float64)
        use_valid = valid is not None
        v = np.ascontiguousarray(valid if use_valid else np.ones(0, np.bool_), dtype=np.bool_)
        for lo in range(0, n, _BLOCK_ROWS):
            block = _as_float32(arr[lo:lo + _BLOCK_ROWS])
            _linear_scores(block, v[lo:lo + _BLOCK_ROWS] if use_valid else v, use_valid, self.mu_b, self.coef,
                           self.intercept, work, out, lo)
        return out

    def describe(self) -> dict[str, Any]:
        """What a summary records (the vectors are in the saved files)."""
        out: dict[str, Any] = {"model": self.kind, "intercept": self.intercept}
        if self.C is not None:
            out["C"] = self.C
        return out

    def digest(self) -> str:
        h = hashlib.sha256(f"nag_datasets.embedding_model/1\0{self.kind}\0{self.intercept!r}\0{self.C!r}\0".encode())
        h.update(self.mu_b.astype("<f8").tobytes())
        h.update(self.coef.astype("<f8").tobytes())
        return h.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingModel):
            return NotImplemented
        return (self.kind == other.kind and self.intercept == other.intercept and self.C == other.C
                and np.array_equal(self.mu_b, other.mu_b) and np.array_equal(self.coef, other.coef))

    __hash__ = None  # type: ignore[assignment]


def fit_embedding_model(target_emb: Any, background_emb: Any, *, kind: str = "learned",
                        Cs: Sequence[float] = DEFAULT_CS, folds: int = 3, seed: int = 0) -> EmbeddingModel:
    """Fit the embedding signal from the targets' and the background's float16 embeddings (see the module
    docstring). The learned model needs at least ``folds`` rows of each."""
    if kind not in EMBEDDING_MODELS:
        raise InvalidArgumentError(f"unknown embedding model {kind!r}; known: {', '.join(EMBEDDING_MODELS)}")
    target = np.asarray(target_emb)
    if not len(target):
        raise ProfileError("the embedding signal needs at least one target row with an embedding")
    mu_b = background_mean(background_emb)
    if kind == "centred":
        d = unit_rows(target).mean(axis=0) - mu_b
        norm = float(np.linalg.norm(d))
        return EmbeddingModel("centred", mu_b, d / (norm if norm > 0 else 1.0), 0.0)
    n_t, n_b = len(target), len(np.asarray(background_emb))
    if min(n_t, n_b) < folds:
        raise ProfileError(f"the learned embedding model is chosen by {folds}-fold cross-validation and needs at least "
                           f"{folds} target and {folds} background rows with embeddings (got {n_t} and {n_b}); use "
                           "embedding_model='centred' or signal='nag' for fewer")
    X = np.vstack([centred_features(target, mu_b), centred_features(background_emb, mu_b)])
    coef, intercept, C = _logistic_regression(X, n_t, Cs, folds, seed)
    return EmbeddingModel("learned", mu_b, coef, intercept, C)


def _logistic_regression(X: np.ndarray, n_pos: int, Cs: Sequence[float], folds: int,
                         seed: int) -> tuple[np.ndarray, float, float]:
    """``(coef, intercept, C)`` of the cross-validated L2 logistic regression of the first ``n_pos`` rows of ``X``
    (positives) against the others."""
    try:
        from sklearn.linear_model import LogisticRegressionCV
        from sklearn.model_selection import StratifiedKFold
    except ImportError as e:  # a core dependency; only a broken install lacks it
        raise MissingDependencyError(f"the learned embedding model needs scikit-learn: pip install 'scikit-learn>=1.4' "
                                     f"({e})") from None
    y = np.r_[np.ones(n_pos, np.int64), np.zeros(len(X) - n_pos, np.int64)]
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
    extra: dict[str, Any] = {}
    params = inspect.signature(LogisticRegressionCV).parameters
    if "l1_ratios" in params:  # scikit-learn >= 1.8: pure L2 is l1_ratio 0 (``penalty`` is deprecated there)
        extra["l1_ratios"] = (0.0,)
    if "use_legacy_attributes" in params:
        extra["use_legacy_attributes"] = False
    model = LogisticRegressionCV(Cs=[float(c) for c in Cs], cv=splits, scoring="roc_auc", solver="liblinear",
                                 class_weight="balanced", max_iter=1000, refit=True, random_state=0, **extra)
    model.fit(X, y)
    return (np.asarray(model.coef_[0], np.float64), float(model.intercept_[0]), float(np.ravel(model.C_)[0]))
