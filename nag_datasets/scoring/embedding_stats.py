"""The rows behind a profile, kept when its data carries an embedding column: each row's float16 embedding and its
signature. The embedding and hybrid signals are fitted from them (the targets' embeddings; the background sample's
embeddings, and its signatures, which the contrastive NAG profile scores for the z-statistics).

:func:`count_rows_with_embeddings` reads a ``Dataset`` or a streamed ``IterableDataset`` in one pass, in row order:
the neuron counts as :func:`~nag_datasets.scoring.counting.count_rows` gives them, and the rows, all of them or the
seeded uniform sample of ``sample`` rows (the same bottom-k keys, so a stream and the same pool in memory keep the same
rows; kept in row order).

>>> import numpy as np
>>> from nag_datasets.signatures.embedding_spec import EmbeddingSpec
>>> spec = EmbeddingSpec(model_fingerprint="m", tokenizer_fingerprint="t", layer=1, max_length=8,
...                      add_special_tokens=False, hidden_size=2)
>>> rows = EmbeddingStats(spec, np.array([[1, 0]], np.float16), np.array([[[3]]], np.uint16))
>>> rows.num_rows, rows.embeddings.dtype
(1, dtype('float16'))
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np

from ..errors import WrongTypeError
from ..signatures.arrow import signature_blocks
from ..signatures.columns import signature_feature
from ..signatures.embedding_column import embedding_blocks, embedding_feature
from ..signatures.embedding_spec import EmbeddingSpec
from ..signatures.spec import SignatureSpec
from .counting import CountAccumulator, Reservoir
from .profile_files import ProfileError

__all__ = ["EmbeddingStats", "count_rows_with_embeddings"]


@dataclasses.dataclass(frozen=True, eq=False)
class EmbeddingStats:
    """A profile's rows: ``embeddings`` float16 ``(n, hidden)`` and ``signatures`` ``(n, L, K)`` of the same rows,
    with the embedding column's ``spec`` and the column it came from."""

    spec: EmbeddingSpec
    embeddings: np.ndarray
    signatures: np.ndarray
    column: str = "nag_embedding"

    def __post_init__(self) -> None:
        emb = np.ascontiguousarray(self.embeddings, dtype=np.float16)
        sigs = np.ascontiguousarray(self.signatures)
        if emb.ndim != 2 or emb.shape[1] != self.spec.hidden_size:
            raise ProfileError(f"embeddings have shape {emb.shape}, the spec says (n, {self.spec.hidden_size})")
        if sigs.ndim != 3 or len(sigs) != len(emb):
            raise ProfileError(f"{len(emb)} embeddings need as many (L, K) signatures, got shape {sigs.shape}")
        if not np.isfinite(emb).all():
            raise ProfileError("an embedding holds a value that is not finite")
        emb.flags.writeable = False
        sigs.flags.writeable = False
        object.__setattr__(self, "embeddings", emb)
        object.__setattr__(self, "signatures", sigs)

    @property
    def num_rows(self) -> int:
        return len(self.embeddings)

    def digest(self) -> str:
        """Hash of the spec and both arrays (part of a profile's fingerprint)."""
        h = hashlib.sha256(f"nag_datasets.embedding_stats/1\0{self.spec.fingerprint()}\0{self.column}\0".encode())
        h.update(f"{self.embeddings.shape}\0{self.signatures.shape}\0".encode())
        h.update(self.embeddings.astype("<f2").tobytes())
        h.update(self.signatures.astype("<u4").tobytes())
        return h.hexdigest()[:16]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingStats):
            return NotImplemented
        return (self.spec == other.spec and self.column == other.column
                and np.array_equal(self.embeddings, other.embeddings)
                and np.array_equal(self.signatures, other.signatures))

    __hash__ = None  # type: ignore[assignment]


def _table_batches(ds: Any, column: str, spec: SignatureSpec, emb_column: str, emb_spec: EmbeddingSpec,
                   batch_size: int) -> Any:
    """Arrow tables of both columns, in row order, ``batch_size`` rows at a time."""
    from datasets import Dataset, IterableDataset

    if isinstance(ds, IterableDataset):
        stream = (ds.select_columns([column, emb_column]).cast_column(column, signature_feature(spec))
                  .cast_column(emb_column, embedding_feature(emb_spec)))
        return stream.with_format("arrow").iter(batch_size=batch_size)
    if isinstance(ds, Dataset):
        return ds.select_columns([column, emb_column]).with_format("arrow").iter(batch_size=batch_size)
    raise WrongTypeError(f"from_dataset needs a datasets.Dataset or IterableDataset, got {type(ds).__name__}")


def _blocks(ds: Any, column: str, spec: SignatureSpec, emb_column: str, emb_spec: EmbeddingSpec,
            batch_size: int) -> Any:
    """``(positions, signatures, valid, embeddings)`` per batch; a row with a signature but no embedding is refused."""
    start = 0
    for table in _table_batches(ds, column, spec, emb_column, emb_spec, batch_size):
        table = table.combine_chunks()
        sig_parts = list(signature_blocks(table.column(column), spec))
        emb_parts = list(embedding_blocks(table.column(emb_column), emb_spec))
        if not sig_parts:
            continue
        (sigs, valid), (emb, emb_valid) = sig_parts[0], emb_parts[0]
        if emb_valid is not None:
            has_sig = np.ones(len(sigs), np.bool_) if valid is None else valid
            orphan = has_sig & ~emb_valid
            if orphan.any():
                row = start + int(np.flatnonzero(orphan)[0])
                raise ProfileError(f"row {row} has a signature in {column!r} but no embedding in {emb_column!r}: "
                                   "featurize both columns in one pass, or drop the embedding column "
                                   "(embedding=None) to profile the signatures alone")
        yield np.arange(start, start + len(sigs), dtype=np.int64), sigs, valid, emb
        start += len(sigs)


def count_rows_with_embeddings(ds: Any, column: str, spec: SignatureSpec, emb_column: str, emb_spec: EmbeddingSpec,
                               *, sample: int | None = None, seed: int = 0, batch_size: int = 8192
                               ) -> tuple[CountAccumulator, dict[str, Any] | None, EmbeddingStats]:
    """Counts (as :func:`~nag_datasets.scoring.counting.count_rows`), how a sample was drawn, and the rows kept:
    every row with a signature, or the seeded sample of ``sample`` of them, in row order."""
    if sample is None:
        acc = CountAccumulator(spec)
        sig_parts, emb_parts = [], []
        for _, sigs, valid, emb in _blocks(ds, column, spec, emb_column, emb_spec, batch_size):
            acc.add(sigs, valid)
            keep = slice(None) if valid is None else valid
            sig_parts.append(np.array(sigs[keep]))
            emb_parts.append(np.array(emb[keep]))
        L, K = spec.num_layers, spec.top_k
        sigs_all = np.concatenate(sig_parts) if sig_parts else np.zeros((0, L, K), np.dtype(spec.index_dtype))
        emb_all = np.concatenate(emb_parts) if emb_parts else np.zeros((0, emb_spec.hidden_size), np.float16)
        return acc, None, EmbeddingStats(emb_spec, emb_all, sigs_all, emb_column)
    reservoir = Reservoir(int(sample), int(seed), spec, hidden_size=emb_spec.hidden_size)
    for positions, sigs, valid, emb in _blocks(ds, column, spec, emb_column, emb_spec, batch_size):
        reservoir.add(positions, sigs, valid, embeddings=emb)
    order = np.argsort(reservoir.positions, kind="stable")
    rows = EmbeddingStats(emb_spec, reservoir.embeddings[order], reservoir.sigs[order], emb_column)
    return reservoir.accumulator(), reservoir.info(), rows
