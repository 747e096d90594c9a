"""The selection arms of the downstream experiment: each turns the shared features into one score per pool
document (higher = keep first). Features come from ONE forward pass of the bundled model over pool and targets
(:class:`Features`: signatures of ``fwd_up``, ``att_o`` and ``fwd_down`` at all layers, mean-pooled embeddings).

- ``random``: seeded noise (the unit's seed).
- ``nag_paper``: the paper's profile: ``fwd_up`` neurons, all layers, frequency weights (``NAGProfile`` similarity).
- ``nag_contrast``: the harness's current contrastive default (``CONTRAST``: ``fwd_up`` and ``att_o`` profiles of
  the last 10 layers, shrinkage m=20 alpha=0.5 against the pool as background, the two scores averaged).
- ``embedding_contrast``: the centred contrastive embedding (cosine of the background-centred pool vector to
  mean(targets) - mean(pool), last layer, unit vectors).
- ``dsir``: DSIR log importance weights (``data-selection`` 1.0.3, hashed uni+bigrams, length-summed).
- ``nag_distilled``: the library's default distilled scorer trained on ``nag_contrast``'s exact scores of a seeded
  20% sample of the pool, then scoring every document from its text.
- ``hybrid``: the harness's shipped default (issue 23; ``evaluate.fusion.HYBRID_DEFAULT``):
  ``0.2 z(contrastive NAG) + 0.8 z(learned embedding model)``, the NAG component a ``fwd_down`` profile of the last 10
  layers (shrinkage m=50 alpha=0.5), the embedding component an L2 logistic regression of the targets against the
  background on the centred float16 last-layer embedding, both z-scored with the background rows' own scores; the
  pool is the background (as for ``nag_contrast``). Computed by the research implementation
  (``evaluate.fusion.hybrid_scores``); the library's ``contrast(background, signal="hybrid")`` should replace it
  (now in the library; same scores expected).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nag_datasets.errors import NAGError

CONTRAST = {"neuron_types": ("fwd_up", "att_o"), "weighting": "shrinkage", "params": {"m": 20.0, "alpha": 0.5},
            "last_layers": 10}
DISTILL = {"sample": 0.2, "exact_arm": "nag_contrast", "model": "linear"}


class ArmUnavailableError(NAGError, NotImplementedError):
    """The arm cannot be computed from the features at hand (a neuron type it needs was not recorded)."""


@dataclass
class Features:
    """Signatures ``{type: (n, L, K)}``, specs, and embeddings ``(n, hidden)`` of the pool and of one target set."""

    pool_sigs: dict[str, np.ndarray]
    target_sigs: dict[str, np.ndarray]
    specs: dict[str, Any]
    pool_emb: np.ndarray
    target_emb: np.ndarray
    pool_texts: Sequence[str]
    target_texts: Sequence[str]  # all target texts (DSIR reads text; the features may cover a sample)


def _random(f: Features, seed: int) -> np.ndarray:
    from ..evaluate import baselines

    return baselines.random_scores(len(f.pool_texts), seed)


def _nag_paper(f: Features, seed: int) -> np.ndarray:
    from ..evaluate import baselines

    return baselines.nag_scores(f.pool_sigs["fwd_up"], f.target_sigs["fwd_up"], f.specs["fwd_up"])


def _nag_contrast(f: Features, seed: int) -> np.ndarray:
    from ..evaluate import baselines

    per_type = []
    for t in CONTRAST["neuron_types"]:
        spec = f.specs[t]
        last = list(range(len(spec.layers) - CONTRAST["last_layers"], len(spec.layers)))
        p, s = baselines.harness_subset(f.pool_sigs[t], spec, layers=last)
        g, _ = baselines.harness_subset(f.target_sigs[t], spec, layers=last)
        per_type.append(baselines.contrastive_nag_scores(p, g, p, s, CONTRAST["weighting"], **CONTRAST["params"]))
    return np.mean(per_type, axis=0)


def _embedding_contrast(f: Features, seed: int) -> np.ndarray:
    from ..evaluate import baselines

    return baselines.contrastive_embedding_scores(f.pool_emb, f.target_emb, f.pool_emb, centred=True)


def _dsir(f: Features, seed: int) -> np.ndarray:
    from ..evaluate import baselines

    return baselines.dsir_scores(f.pool_texts, f.target_texts)


def _nag_distilled(f: Features, seed: int) -> np.ndarray:
    from nag_datasets.distill import train_model

    exact = ARMS[DISTILL["exact_arm"]](f, seed)
    n = len(exact)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=round(DISTILL["sample"] * n), replace=False))
    model, _ = train_model([f.pool_texts[i] for i in sample], exact[sample], model=DISTILL["model"], seed=seed)
    return np.asarray(model.predict(list(f.pool_texts)), dtype=np.float64)


def _hybrid(f: Features, seed: int) -> np.ndarray:
    from ..evaluate.fusion import HYBRID_DEFAULT, hybrid_scores

    t = HYBRID_DEFAULT["neuron_type"]
    if t not in f.pool_sigs:
        raise ArmUnavailableError(f"the hybrid arm needs {t} signatures; featurize with that neuron type "
                                  f"(downstream.experiment.NEURON_TYPES)")
    return hybrid_scores(f.pool_sigs[t], f.target_sigs[t], f.pool_sigs[t], f.specs[t], f.pool_emb, f.target_emb,
                         f.pool_emb)


ARMS: dict[str, Callable[[Features, int], np.ndarray]] = {
    "random": _random, "nag_paper": _nag_paper, "nag_contrast": _nag_contrast,
    "embedding_contrast": _embedding_contrast, "dsir": _dsir, "nag_distilled": _nag_distilled, "hybrid": _hybrid,
}
#: Arms whose scores do not depend on the seed (computed once per target).
SEED_FREE = ("nag_paper", "nag_contrast", "embedding_contrast", "dsir", "hybrid")


def arm_scores(arm: str, features: Features, seed: int) -> np.ndarray:
    """One float per pool document, higher = more target-like."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; choose from {sorted(ARMS)}")
    scores = np.asarray(ARMS[arm](features, seed), dtype=np.float64)
    if scores.shape != (len(features.pool_texts),) or not np.isfinite(scores).all():
        raise ValueError(f"arm {arm!r} returned {scores.shape} scores (finite: {np.isfinite(scores).all()}); "
                         f"expected {len(features.pool_texts)} finite values")
    return scores


def select_budget(scores: np.ndarray, doc_tokens: np.ndarray, budget: int) -> np.ndarray:
    """Indices of the best-scoring documents, best first, whose tokens sum to at most ``budget`` (a document that
    would overflow is skipped and smaller ones after it may still fit; ties broken by index).

    >>> select_budget(np.array([0.1, 0.9, 0.5, 0.7]), np.array([5, 6, 3, 4]), 10).tolist()
    [1, 3]
    """
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores)))
    keep, used = [], 0
    for i in order:
        if used + int(doc_tokens[i]) <= budget:
            keep.append(int(i))
            used += int(doc_tokens[i])
    return np.array(keep, dtype=np.int64)
