"""Embedding and clustering of documents from a precomputed distance matrix, and agreement with true labels.

Two clusterings per distance: K-means on the 2-D t-SNE embedding (as the paper reports purity and NMI) and
average-linkage agglomerative clustering on the distances themselves (no embedding in between). Baselines build
their distance matrices from TF-IDF vectors or from model embeddings (cosine distance).

>>> import numpy as np
>>> labels = np.array([0, 0, 1, 1])
>>> round(purity(labels, np.array([1, 1, 0, 0])), 3), round(purity(labels, np.array([0, 1, 0, 1])), 3)
(1.0, 0.5)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "agglomerative_labels",
    "cluster_scores",
    "cosine_distance_matrix",
    "evaluate_distance",
    "kmeans_labels",
    "purity",
    "tfidf_distance_matrix",
    "tsne_embedding",
]


def purity(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> float:
    """Share of documents whose cluster's majority true label is their own label."""
    from sklearn.metrics.cluster import contingency_matrix

    table = contingency_matrix(np.asarray(labels_true), np.asarray(labels_pred))
    return float(table.max(axis=0).sum() / table.sum())


def cluster_scores(labels_true: Sequence[Any], labels_pred: Sequence[Any]) -> dict[str, float]:
    """Purity, normalised mutual information and adjusted Rand index of a clustering."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "purity": purity(labels_true, labels_pred),
        "nmi": float(normalized_mutual_info_score(labels_true, labels_pred)),
        "ari": float(adjusted_rand_score(labels_true, labels_pred)),
    }


def _check_square(dist: np.ndarray) -> np.ndarray:
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        raise ValueError(f"a distance matrix must be square, got shape {dist.shape}")
    return dist


def tsne_embedding(dist: np.ndarray, *, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """2-D t-SNE of a precomputed distance matrix (``init="random"``, which precomputed distances require)."""
    from sklearn.manifold import TSNE

    dist = _check_square(dist)
    perplexity = min(float(perplexity), max(2.0, (len(dist) - 1) / 3.0))
    tsne = TSNE(n_components=2, metric="precomputed", init="random", perplexity=perplexity, random_state=seed)
    return tsne.fit_transform(np.clip(dist, 0.0, None))


def kmeans_labels(points: Any, n_clusters: int, *, seed: int = 0) -> np.ndarray:
    """K-means labels of points (dense or sparse rows, e.g. a t-SNE embedding or multi-hot signatures)."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(points)


def agglomerative_labels(dist: np.ndarray, n_clusters: int) -> np.ndarray:
    """Average-linkage agglomerative clustering on a precomputed distance matrix."""
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(n_clusters=n_clusters, metric="precomputed", linkage="average")
    return model.fit_predict(_check_square(dist))


def evaluate_distance(dist: np.ndarray, labels: Sequence[Any], *, seed: int = 0,
                      perplexity: float = 30.0) -> dict[str, Any]:
    """t-SNE + K-means and agglomerative clustering of ``dist`` with as many clusters as labels; scores of both.

    Returns ``{"tsne": (n, 2) embedding, "tsne_kmeans": scores, "agglomerative": scores}``.
    """
    labels = np.asarray(labels)
    k = len(np.unique(labels))
    emb = tsne_embedding(dist, seed=seed, perplexity=perplexity)
    return {
        "tsne": emb,
        "tsne_kmeans": cluster_scores(labels, kmeans_labels(emb, k, seed=seed)),
        "agglomerative": cluster_scores(labels, agglomerative_labels(dist, k)),
    }


def cosine_distance_matrix(vectors: Any) -> np.ndarray:
    """1 - cosine similarity between all rows (dense or sparse)."""
    from sklearn.metrics.pairwise import cosine_distances

    dist = cosine_distances(vectors)
    np.fill_diagonal(dist, 0.0)
    return np.clip(dist, 0.0, None)


def tfidf_distance_matrix(texts: Sequence[str], **tfidf_kwargs: Any) -> np.ndarray:
    """Cosine distances between TF-IDF vectors (scikit-learn defaults plus ``sublinear_tf``) of the texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf_kwargs.setdefault("sublinear_tf", True)
    return cosine_distance_matrix(TfidfVectorizer(**tfidf_kwargs).fit_transform(list(texts)))
