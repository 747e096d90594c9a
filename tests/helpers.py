"""Shared test helpers: synthetic signature datasets and the reference folder beside the repository."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from nag_datasets.signatures.columns import column_name, signature_feature
from nag_datasets.signatures.spec import SignatureSpec


def make_spec(**changes: Any) -> SignatureSpec:
    """A small valid spec (L=3, K=4, N=32) with ``changes`` applied."""
    base: dict[str, Any] = {
        "model_fingerprint": "model-a", "tokenizer_fingerprint": "tok-a", "neuron_type": "fwd_up", "top_k": 4,
        "layers": (0, 1, 2), "max_length": 16, "add_special_tokens": False, "neurons_per_layer": 32,
    }
    base.update(changes)
    return SignatureSpec(**base)


def random_signatures(n: int, spec: SignatureSpec, seed: int = 0) -> np.ndarray:
    """``n`` signatures of ``spec``: per layer ``top_k`` distinct neurons, as the featurizer produces."""
    rng = np.random.default_rng(seed)
    L, K, N = spec.num_layers, spec.top_k, spec.neurons_per_layer
    keys = rng.random((n, L, N))
    return np.argsort(keys, axis=2)[:, :, :K].astype(spec.index_dtype)


def signature_array(sigs: np.ndarray, spec: SignatureSpec, null_rows: Iterable[int] = (),
                    null_children: bool = True) -> pa.Array:
    """An Arrow signature column; null rows get null children too (as pyarrow writes Python ``None`` rows)."""
    sigs = np.asarray(sigs)
    n, L, K = sigs.shape
    row_null = np.zeros(n, np.bool_)
    row_null[list(null_rows)] = True
    child_null = np.repeat(row_null, L * K) if null_children and row_null.any() else None
    values = pa.array(sigs.astype(spec.index_dtype).ravel(), mask=child_null)
    layer_null = np.repeat(row_null, L) if null_children and row_null.any() else None
    layers = pa.FixedSizeListArray.from_arrays(values, K, mask=None if layer_null is None else pa.array(layer_null))
    return pa.FixedSizeListArray.from_arrays(layers, L, mask=pa.array(row_null) if row_null.any() else None)


def make_signature_dataset(
    sigs: np.ndarray,
    spec: SignatureSpec,
    extra_columns: dict[str, Any] | None = None,
    null_rows: Iterable[int] = (),
    *,
    path: str | os.PathLike[str] | None = None,
    column: str | None = None,
    null_children: bool = True,
) -> Any:
    """A `datasets.Dataset` with signature column ``column`` (default ``nag_<type>``) carrying ``spec``.

    With ``path`` it is written with ``save_to_disk`` and read back with ``load_from_disk`` (memory-mapped), the
    way users hold large pools.
    """
    from datasets import Dataset, Features, load_from_disk
    from datasets.table import InMemoryTable

    column = column or column_name(spec.neuron_type)
    features = {column: signature_feature(spec)}
    arrays = {column: signature_array(sigs, spec, null_rows, null_children)}
    for name, values in (extra_columns or {}).items():
        arrays[name] = pa.array(values)
    table = pa.table(arrays)
    inferred = Features.from_arrow_schema(table.schema)
    feats = Features({name: features.get(name, inferred[name]) for name in arrays})
    table = table.cast(feats.arrow_schema)
    ds = Dataset(InMemoryTable(table))
    if path is None:
        return ds
    ds.save_to_disk(str(path))
    return load_from_disk(str(path))


def shared_dir() -> Path:
    """The project's shared folder beside the repository; skips the test when absent.

    Set ``NAG_DATASETS_REQUIRE_SHARED=1`` to make its absence a failure instead.
    """
    path = Path(__file__).resolve().parents[2] / "shared"
    if path.is_dir():
        return path
    if os.environ.get("NAG_DATASETS_REQUIRE_SHARED") == "1":
        pytest.fail(f"shared reference folder {path} is missing and NAG_DATASETS_REQUIRE_SHARED=1")
    pytest.skip(f"shared reference folder {path} is absent")


def make_embedding_spec(signature: SignatureSpec | None = None, **changes: Any) -> Any:
    """A small embedding spec (hidden 8, layer 2) paired with ``signature`` (default :func:`make_spec`)."""
    from nag_datasets.signatures.embedding_spec import EmbeddingSpec

    sig = signature or make_spec()
    base: dict[str, Any] = {"model_fingerprint": sig.model_fingerprint, "tokenizer_fingerprint": sig.tokenizer_fingerprint,
                            "layer": 2, "max_length": sig.max_length, "add_special_tokens": sig.add_special_tokens,
                            "hidden_size": 8, "layer_name": "last"}
    base.update(changes)
    return EmbeddingSpec(**base)


def embedding_column_array(emb: np.ndarray, null_rows: Iterable[int] = ()) -> pa.Array:
    """An Arrow ``fixed_size_list<halffloat>`` embedding column (null rows get null values)."""
    emb = np.asarray(emb, np.float16)
    n, H = emb.shape
    row_null = np.zeros(n, np.bool_)
    row_null[list(null_rows)] = True
    values = pa.array(emb.ravel(), type=pa.float16())
    return pa.FixedSizeListArray.from_arrays(values, H, mask=pa.array(row_null) if row_null.any() else None)


def make_fused_dataset(sigs: np.ndarray, emb: np.ndarray, spec: SignatureSpec, emb_spec: Any,
                       extra_columns: dict[str, Any] | None = None, null_rows: Iterable[int] = (), *,
                       spec_column: bool = True, path: str | os.PathLike[str] | None = None) -> Any:
    """A `datasets.Dataset` with a signature column, ``nag_embedding`` (both typed) and, with ``spec_column``, the
    ``nag_spec`` strings the featurizer writes (both specs registered on this machine, as the featurizer does)."""
    from datasets import Dataset, Features, load_from_disk
    from datasets.table import InMemoryTable

    from nag_datasets.signatures.embedding_column import EMBEDDING_COLUMN, embedding_feature
    from nag_datasets.signatures.registry import register_spec
    from nag_datasets.signatures.spec_column import SPEC_COLUMN, spec_value

    column = column_name(spec.neuron_type)
    null_rows = list(null_rows)
    arrays = {column: signature_array(sigs, spec, null_rows), EMBEDDING_COLUMN: embedding_column_array(emb, null_rows)}
    features = {column: signature_feature(spec), EMBEDDING_COLUMN: embedding_feature(emb_spec)}
    if spec_column:
        register_spec(spec)
        register_spec(emb_spec)
        arrays[SPEC_COLUMN] = pa.array([spec_value({column: spec, EMBEDDING_COLUMN: emb_spec})] * len(sigs))
    for name, values in (extra_columns or {}).items():
        arrays[name] = pa.array(values)
    table = pa.table(arrays)
    inferred = Features.from_arrow_schema(table.schema)
    feats = Features({name: features.get(name, inferred[name]) for name in arrays})
    ds = Dataset(InMemoryTable(table.cast(feats.arrow_schema)))
    if path is None:
        return ds
    ds.save_to_disk(str(path))
    return load_from_disk(str(path))


def random_embeddings(n: int, hidden: int = 8, *, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    """``n`` float16 embeddings, normal around ``shift`` (targets get a shift, so they are separable)."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, hidden)) + shift).astype(np.float16)
