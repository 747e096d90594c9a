"""Selection arms: each maps (pool, selection targets) to one score per pool document, higher = keep first.

- ``random``: seeded noise (the seed is the unit's seed, so random selections differ across seeds).
- ``nag_all`` / ``nag_last``: NAG similarity to the target profile, all layers / the final layer only; the pool is
  featurized ONCE with all layers (bundled SmolLM2, fwd_up, K=20) and the last layer is sliced out with
  `evaluate.baselines.slice_signatures` (spec.replace(layers=...)).
- ``embedding``: BETR-style cosine of mean-pooled final hidden states of the same model to the target centroid.
- ``dsir``: DSIR log importance weight (``data-selection``, hashed uni+bigrams), the package's own length-summed
  weight.

Model features are cached as ``.npy`` under ``<out>/features`` so that a resumed run does not featurize again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ARMS = ("random", "nag_all", "nag_last", "embedding", "dsir")
MODEL_ARMS = ("nag_all", "nag_last", "embedding")


class ArmContext:
    """Lazily computed, disk-cached features shared by the arms of one run."""

    def __init__(self, pool: Sequence[str], targets: Sequence[str], cache: Path, *, max_length: int,
                 batch_size: int = 16) -> None:
        self.pool, self.targets = list(pool), list(targets)
        self.cache = Path(cache)
        self.max_length = max_length
        self.batch_size = batch_size
        self._model: tuple[Any, Any] | None = None
        self._spec: Any = None

    def _bundled(self) -> tuple[Any, Any]:
        if self._model is None:
            from nag_datasets.featurize.models import load_model

            self._model = load_model()
        return self._model

    def _cached(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        path = self.cache / f"{name}.npy"
        if path.exists():
            return np.load(path, allow_pickle=False)
        arr = compute()
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, arr)
        tmp.replace(path)
        return arr

    def signatures(self, which: str) -> tuple[np.ndarray, Any]:
        """``(signatures (n, L, K), spec)`` of ``pool`` or ``targets``, all layers."""
        def compute(texts: list[str]) -> Callable[[], np.ndarray]:
            def run() -> np.ndarray:
                from datasets import Dataset

                feat = self._featurizer()
                ds = feat.apply(Dataset.from_dict({"text": texts}), fresh=True)
                col = ds["nag_fwd_up"]
                return np.stack([np.asarray(col[i], dtype=np.int32) for i in range(len(texts))])
            return run
        texts = self.pool if which == "pool" else self.targets
        sigs = self._cached(f"nag_{which}_ml{self.max_length}", compute(texts))
        if self._spec is None:
            self._spec = self._featurizer().spec()
        return sigs, self._spec

    def _featurizer(self) -> Any:
        from nag_datasets.featurize.featurizer import NAGFeaturizer

        model, tok = self._bundled()
        return NAGFeaturizer(model, tokenizer=tok, max_length=self.max_length, batch_size=self.batch_size)

    def embeddings(self, which: str) -> np.ndarray:
        from nag_datasets.analysis.measure import mean_pooled_embeddings

        texts = self.pool if which == "pool" else self.targets

        def run() -> np.ndarray:
            model, tok = self._bundled()
            return mean_pooled_embeddings(model, tok, texts, max_length=self.max_length, batch_size=self.batch_size)
        return self._cached(f"emb_{which}_ml{self.max_length}", run)


def arm_scores(arm: str, ctx: ArmContext, seed: int) -> np.ndarray:
    """One float per pool document, higher = more target-like (``random``: seeded noise)."""
    from ..evaluate import baselines

    if arm == "random":
        return baselines.random_scores(len(ctx.pool), seed)
    if arm in ("nag_all", "nag_last"):
        pool, spec = ctx.signatures("pool")
        tgt, _ = ctx.signatures("targets")
        layers = "all" if arm == "nag_all" else "last"
        p, s = baselines.slice_signatures(pool, spec, layers=layers)
        t, _ = baselines.slice_signatures(tgt, spec, layers=layers)
        return baselines.nag_scores(p, t, s)
    if arm == "embedding":
        return baselines.embedding_scores(ctx.embeddings("pool"), ctx.embeddings("targets"))
    if arm == "dsir":
        return ctx._cached("dsir", lambda: baselines.dsir_scores(ctx.pool, ctx.targets))
    raise ValueError(f"unknown arm {arm!r}; choose from {ARMS}")
