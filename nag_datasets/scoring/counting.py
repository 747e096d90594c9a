"""Neuron counts of a set of signatures, read in blocks: exact integer accumulation over the blocks of a ``Dataset``
or a streamed ``IterableDataset``, and a seeded uniform sample that does not depend on batching (a background).

>>> import numpy as np
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=1,
...                      layers=(0,), max_length=8, add_special_tokens=False, neurons_per_layer=3)
>>> acc = CountAccumulator(spec)
>>> acc.add(np.array([[[0]], [[2]], [[0]]]))
>>> acc.counts().tolist(), acc.num_targets
([[2, 0, 1]], 3)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import WrongTypeError
from ..signatures.arrow import dataset_blocks, stream_blocks
from ..signatures.spec import SignatureSpec
from .kernel import SignatureIndexError
from .profile_files import ProfileError
from .sampling import sample_keys, smallest_keys

__all__ = ["CountAccumulator", "Reservoir", "count_rows"]


class CountAccumulator:
    """Adds blocks of target signatures into per-layer neuron counts (exact integers)."""

    _ROWS = 16_384

    def __init__(self, spec: SignatureSpec) -> None:
        self.spec = spec
        L, N = spec.num_layers, spec.neurons_per_layer
        self.flat = np.zeros(L * N, np.int64)
        self.layer_base = (np.arange(L, dtype=np.int64) * N)[None, :, None]
        self.num_targets = 0
        self.skipped_null = 0

    def add(self, sigs: np.ndarray, valid: np.ndarray | None = None, weight: np.ndarray | None = None) -> None:
        n = len(sigs)
        w = np.ones(n, np.int64) if weight is None else np.asarray(weight, np.int64)
        if valid is not None:
            self.skipped_null += int(w[~valid].sum())
            w = np.where(valid, w, 0)
        N, K = self.spec.neurons_per_layer, self.spec.top_k
        for lo in range(0, n, self._ROWS):
            wi = w[lo : lo + self._ROWS]
            rows = np.flatnonzero(wi)
            if not len(rows):
                continue
            part = np.asarray(sigs[lo : lo + self._ROWS][rows]).astype(np.int64)
            if part.min() < 0 or part.max() >= N:
                raise SignatureIndexError(
                    f"a target signature has neuron index {int(part.min() if part.min() < 0 else part.max())} "
                    f"outside 0..{N - 1} (neurons_per_layer={N})"
                )
            ordered = np.sort(part, axis=2)
            repeats = ordered[:, :, 1:] == ordered[:, :, :-1]
            if repeats.any():
                r, layer, _ = np.argwhere(repeats)[0]
                raise ProfileError(
                    f"target row {lo + int(rows[r])} repeats a neuron in layer {int(layer)}: a NAG is a set of "
                    f"{K} distinct neurons"
                )
            codes = (part + self.layer_base).ravel()
            counts_w = wi[rows]
            if np.all(counts_w == 1):
                self.flat += np.bincount(codes, minlength=len(self.flat))
            else:
                self.flat += np.bincount(codes, weights=np.repeat(counts_w, part.shape[1] * K),
                                         minlength=len(self.flat)).round().astype(np.int64)
            self.num_targets += int(counts_w.sum())

    def counts(self) -> np.ndarray:
        """``(L, N)`` int64 counts; refuses an accumulator that saw no valid signature."""
        if self.num_targets == 0:
            raise ProfileError(
                f"no valid target signatures ({self.skipped_null} null rows skipped): a profile needs at least one"
            )
        return self.flat.reshape(self.spec.num_layers, self.spec.neurons_per_layer)


class Reservoir:
    """A seeded uniform sample of ``size`` rows with a signature, over one pass of any batching (bottom-k keys).

    With ``hidden_size`` it also keeps the sampled rows' embeddings (passed to :meth:`add` with their signatures).
    """

    def __init__(self, size: int, seed: int, spec: SignatureSpec, *, hidden_size: int | None = None) -> None:
        self.size, self.seed, self.spec = size, seed, spec
        self.keys = np.empty(0, np.uint64)
        self.positions = np.empty(0, np.int64)
        self.sigs = np.empty((0, spec.num_layers, spec.top_k), np.dtype(spec.index_dtype))
        self.embeddings = None if hidden_size is None else np.empty((0, int(hidden_size)), np.float16)
        self.rows = 0
        self.null_rows = 0

    def add(self, positions: np.ndarray, sigs: np.ndarray, valid: np.ndarray | None,
            embeddings: np.ndarray | None = None) -> None:
        if (embeddings is None) != (self.embeddings is None):
            raise ProfileError("a reservoir keeps embeddings when made with hidden_size, and only then")
        if valid is not None:
            self.null_rows += int((~valid).sum())
            positions, sigs = positions[valid], sigs[valid]
            if embeddings is not None:
                embeddings = embeddings[valid]
        self.rows += len(positions)
        keys = np.concatenate([self.keys, sample_keys(positions, self.seed)])
        pos = np.concatenate([self.positions, positions])
        keep = smallest_keys(keys, pos, self.size)
        self.keys, self.positions = keys[keep], pos[keep]
        self.sigs = np.concatenate([self.sigs, np.asarray(sigs)])[keep]
        if embeddings is not None and self.embeddings is not None:
            self.embeddings = np.concatenate([self.embeddings, np.asarray(embeddings, np.float16)])[keep]

    def accumulator(self) -> CountAccumulator:
        """The sample's counts (``skipped_null``: the null rows of the whole pass)."""
        acc = CountAccumulator(self.spec)
        acc.add(self.sigs)
        acc.skipped_null = self.null_rows
        return acc

    def info(self) -> dict[str, Any]:
        """How the sample was drawn (recorded in the profile, its files and cards)."""
        return {"size": self.size, "seed": self.seed, "rows_with_signature": self.rows, "sampled": len(self.sigs)}


def count_rows(ds: Any, column: str, spec: SignatureSpec, *, sample: int | None = None, seed: int = 0,
               batch_size: int = 8192) -> tuple[CountAccumulator, dict[str, Any] | None]:
    """Counts of the signatures in ``ds[column]`` (a ``Dataset`` or a streamed ``IterableDataset``; one pass), or of a
    seeded uniform sample of ``sample`` rows with a signature, with how the sample was drawn (None without one)."""
    from datasets import Dataset, IterableDataset

    if isinstance(ds, IterableDataset):
        blocks = stream_blocks(ds, column, spec, batch_size)
    elif isinstance(ds, Dataset):
        blocks = dataset_blocks(ds, column, spec)
    else:
        raise WrongTypeError(f"from_dataset needs a datasets.Dataset or IterableDataset, got {type(ds).__name__}")
    if sample is None:
        acc = CountAccumulator(spec)
        for _, sigs, valid in blocks:
            acc.add(sigs, valid)
        return acc, None
    reservoir = Reservoir(int(sample), int(seed), spec)
    for positions, sigs, valid in blocks:
        reservoir.add(positions, sigs, valid)
    return reservoir.accumulator(), reservoir.info()

