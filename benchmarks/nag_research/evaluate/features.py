"""One forward pass per document for everything the comparison needs, cached on disk in resumable chunks.

For each document: NAG signatures of several neuron types (all layers, the largest K; smaller K are prefixes and
layer subsets are slices), mean-pooled hidden states of the same model for the embedding baseline (the outputs of
the middle and the last decoder layer, each passed through the model's final norm, averaged over valid tokens), and
the number of tokens the model saw.

Chunks of ``CHUNK`` documents are stored as ``.npz`` under ``<cache>/evaluate/features/<settings>/``; a chunk's
file name hashes the settings and its texts, so an interrupted run resumes where it stopped and a changed
document only recomputes its own chunk.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nag_datasets.signatures.spec import IMPACT_VERSION, SignatureSpec
from nag_datasets.storage.atomic import atomic_write_text

__all__ = ["CHUNK", "FeatureSet", "featurize_texts"]

CHUNK = 64
EMBEDDING_LAYERS = ("mid", "last")
_FORMAT = "nag_datasets.evaluate.features/1"  # a stored format id: kept when the code moved


@dataclasses.dataclass
class FeatureSet:
    """Per-document features in the order of the input texts."""

    signatures: dict[str, np.ndarray]  # neuron type -> (n, L, K) uint16
    embeddings: dict[str, np.ndarray]  # "mid" / "last" -> (n, hidden) float32
    tokens: np.ndarray  # (n,) int64, tokens the model saw
    specs: dict[str, SignatureSpec]
    seconds: float  # forward-pass time spent in this call (0 when everything came from the cache)
    cached_chunks: int
    computed_chunks: int

    def subset(self, idx: np.ndarray) -> FeatureSet:
        return FeatureSet({k: v[idx] for k, v in self.signatures.items()},
                          {k: v[idx] for k, v in self.embeddings.items()}, self.tokens[idx], self.specs,
                          self.seconds, self.cached_chunks, self.computed_chunks)


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path:
    from nag_datasets.storage.cache import cache_root

    return Path(cache_dir) if cache_dir is not None else cache_root() / "evaluate" / "features"


def _embed_hooks(model: Any, store: dict[str, Any]) -> tuple[list[Any], dict[str, int]]:
    """Hooks (run before the recorder's stop hook) storing the mid and last decoder layers' normed outputs."""
    from nag_datasets.featurize.impact import base_model
    from nag_datasets.featurize.sites import decoder_layers

    _, layers = decoder_layers(model)
    norm = getattr(base_model(model), "norm", None)
    where = {"mid": len(layers) // 2, "last": len(layers) - 1}
    handles = []
    for name, idx in where.items():
        def hook(module: Any, inputs: Any, output: Any, name: str = name) -> None:
            hidden = output[0] if isinstance(output, tuple) else output
            store[name] = norm(hidden) if norm is not None else hidden
        handles.append(layers[idx].register_forward_hook(hook, prepend=True))
    return handles, where


def featurize_texts(
    texts: Sequence[str],
    *,
    neuron_types: Sequence[str] = ("fwd_up",),
    top_k: int = 20,
    max_length: int = 120,
    batch_size: int = 16,
    torch_threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureSet:
    """Signatures, embeddings and token counts of ``texts`` on the bundled model (see the module docstring)."""
    import torch

    from nag_datasets.featurize.batching import length_sorted_batches
    from nag_datasets.featurize.featurizer import NAGFeaturizer
    from nag_datasets.featurize.textcut import first_token_ids

    featurizer = NAGFeaturizer(neuron_types=tuple(neuron_types), top_k=top_k, max_length=max_length,
                               torch_threads=torch_threads)
    st = featurizer._ensure_loaded()
    if torch_threads:
        torch.set_num_threads(torch_threads)
    specs = {t: featurizer.spec(t) for t in featurizer.neuron_types}
    settings = json.dumps({"format": _FORMAT, "impact": IMPACT_VERSION, "specs": {t: s.fingerprint for t, s in
                                                                                  specs.items()}}, sort_keys=True)
    folder = _cache_root(cache_dir) / hashlib.sha256(settings.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "settings.json", settings)

    model, tokenizer, recorder = st["model"], st["tokenizer"], st["recorder"]
    store: dict[str, Any] = {}
    handles, _ = _embed_hooks(model, store)
    parts: list[dict[str, np.ndarray]] = []
    seconds, cached, computed = 0.0, 0, 0
    n_chunks = (len(texts) + CHUNK - 1) // CHUNK
    try:
        for c in range(n_chunks):
            chunk = list(texts[c * CHUNK:(c + 1) * CHUNK])
            key = hashlib.sha256((settings + "\0" + "\0".join(chunk)).encode()).hexdigest()[:24]
            path = folder / f"{key}.npz"
            if path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    parts.append({k: z[k] for k in z.files})
                cached += 1
                continue
            t0 = time.perf_counter()
            ids = [first_token_ids(t, tokenizer, max_length, False)[0] for t in chunk]
            if any(len(x) == 0 for x in ids):
                bad = next(i for i, x in enumerate(ids) if not x)
                raise ValueError(f"document {c * CHUNK + bad} has no tokens: {chunk[bad][:60]!r}")
            out: dict[str, np.ndarray] = {f"sig_{t}": np.zeros((len(chunk), len(recorder.layers), top_k), np.uint16)
                                          for t in featurizer.neuron_types}
            hidden = model.config.hidden_size
            for name in EMBEDDING_LAYERS:
                out[f"emb_{name}"] = np.zeros((len(chunk), hidden), np.float32)
            out["tokens"] = np.array([len(x) for x in ids], np.int64)
            for rows, input_ids, mask in length_sorted_batches(ids, batch_size, tokenizer.pad_token_id):
                store.clear()
                sigs = recorder.signatures(input_ids, mask, top_k)
                for t, s in sigs.items():
                    out[f"sig_{t}"][rows] = s.numpy().astype(np.uint16)
                m = mask.to(torch.float32)[:, :, None]
                for name in EMBEDDING_LAYERS:
                    pooled = (store[name].float() * m).sum(1) / m.sum(1)
                    out[f"emb_{name}"][rows] = pooled.numpy()
            tmp = folder / f".{key}.{os.getpid()}.tmp.npz"
            np.savez(tmp, **out)
            os.replace(tmp, path)
            parts.append(out)
            computed += 1
            seconds += time.perf_counter() - t0
            if progress:
                progress(f"  features: chunk {c + 1}/{n_chunks} ({int(out['tokens'].sum())} tokens, "
                         f"{time.perf_counter() - t0:.1f} s)")
    finally:
        for h in handles:
            h.remove()
    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.zeros((0,))
    return FeatureSet(
        signatures={t: cat(f"sig_{t}") for t in featurizer.neuron_types},
        embeddings={name: cat(f"emb_{name}") for name in EMBEDDING_LAYERS},
        tokens=cat("tokens").astype(np.int64),
        specs=specs, seconds=seconds, cached_chunks=cached, computed_chunks=computed,
    )
