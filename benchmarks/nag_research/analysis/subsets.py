"""Signatures and profiles restricted to some layers, or to the first K' neurons of every row (width sweeps).

A restricted signature is a different signature: it gets its own spec (``layers`` or ``top_k`` replaced), so it can
never be scored against a profile built from the unrestricted one. Rows are sorted by impact, so the first K'
columns of a top-K signature are exactly the top-K' signature.

>>> import numpy as np
>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=3,
...                      layers=(0, 1, 2), max_length=8, add_special_tokens=False, neurons_per_layer=10)
>>> sigs = np.arange(2 * 3 * 3).reshape(2, 3, 3) % 10
>>> last, last_spec = slice_signatures(sigs, spec, "last")
>>> last.shape, last_spec.layers
((2, 1, 3), (2,))
>>> narrow, narrow_spec = prefix_signatures(sigs, spec, 2)
>>> narrow[0].tolist(), narrow_spec.top_k
([[0, 1], [3, 4], [6, 7]], 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nag_datasets.scoring.target_profile import NAGProfile, ProfileError
from nag_datasets.signatures.arrow import row_indices, signature_blocks, table_column
from nag_datasets.signatures.columns import get_spec, signature_feature
from nag_datasets.signatures.spec import SignatureSpec, SpecError

__all__ = [
    "layer_positions",
    "prefix_column",
    "prefix_profile",
    "prefix_signatures",
    "signature_array",
    "slice_column",
    "slice_profile",
    "slice_signatures",
]


def layer_positions(spec: SignatureSpec, layers: Sequence[int] | str) -> tuple[list[int], tuple[int, ...]]:
    """Rows of a signature holding ``layers`` (model layer indices, or ``"last"`` = the spec's last layer).

    Returns (row positions, the chosen layer indices). Layers the spec lacks are refused.
    """
    if isinstance(layers, str):
        if layers != "last":
            raise ValueError(f"layers must be a list of layer indices or 'last', got {layers!r}")
        chosen: tuple[int, ...] = (spec.layers[-1],)
    else:
        chosen = tuple(sorted({int(i) for i in layers}))
    if not chosen:
        raise ValueError("layers must not be empty")
    missing = [i for i in chosen if i not in spec.layers]
    if missing:
        raise SpecError(f"layers {missing} are not in the signatures, which hold layers {list(spec.layers)}")
    return [spec.layers.index(i) for i in chosen], chosen


def slice_signatures(sigs: np.ndarray, spec: SignatureSpec, layers: Sequence[int] | str) -> tuple[np.ndarray, SignatureSpec]:
    """``(n, L, K)`` signatures restricted to ``layers``, with the matching spec."""
    sigs = _check_shape(sigs, spec)
    rows, chosen = layer_positions(spec, layers)
    return np.ascontiguousarray(sigs[:, rows, :]), spec.replace(layers=chosen)


def prefix_signatures(sigs: np.ndarray, spec: SignatureSpec, top_k: int) -> tuple[np.ndarray, SignatureSpec]:
    """The first ``top_k`` neurons of every row (= the top-``top_k`` signature), with the matching spec."""
    sigs = _check_shape(sigs, spec)
    if not 1 <= top_k <= spec.top_k:
        raise ValueError(f"a prefix needs 1 <= top_k <= {spec.top_k} (the signatures' width), got {top_k}")
    return np.ascontiguousarray(sigs[:, :, :top_k]), spec.replace(top_k=int(top_k))


def signature_array(ds: Any, column: str | None = None) -> tuple[np.ndarray, np.ndarray, SignatureSpec]:
    """A signature column in row order: ``(signatures (n, L, K), valid (n,) bool, spec)``.

    Null rows hold zeros and ``valid`` False. ``column`` defaults to the only signature column of ``ds``.
    """
    column = column or _only_signature_column(ds)
    spec = get_spec(ds, column)
    sigs, valids = [], []
    for block, valid in signature_blocks(table_column(ds, column), spec):
        sigs.append(block)
        valids.append(np.ones(len(block), np.bool_) if valid is None else valid)
    if sigs:
        arr, ok = np.concatenate(sigs), np.concatenate(valids)
    else:
        arr, ok = np.zeros((0, spec.num_layers, spec.top_k), spec.index_dtype), np.zeros(0, np.bool_)
    idx = row_indices(ds)
    if idx is not None:
        arr, ok = arr[idx], ok[idx]
    arr = np.where(ok[:, None, None], arr, 0).astype(spec.index_dtype)
    return arr, ok, spec


def slice_column(ds: Any, layers: Sequence[int] | str, *, column: str | None = None,
                 out_column: str | None = None) -> Any:
    """``ds`` with ``out_column`` (default: replaces ``column``) = ``column`` restricted to ``layers``.

    The new column carries the restricted spec, so profiles of the full signature refuse it.
    """
    return _rewrite_column(ds, column, out_column, lambda s, sp: slice_signatures(s, sp, layers))


def prefix_column(ds: Any, top_k: int, *, column: str | None = None, out_column: str | None = None) -> Any:
    """``ds`` with ``out_column`` (default: replaces ``column``) = the first ``top_k`` neurons of every row."""
    return _rewrite_column(ds, column, out_column, lambda s, sp: prefix_signatures(s, sp, top_k))


def slice_profile(profile: NAGProfile, layers: Sequence[int] | str) -> NAGProfile:
    """The profile of the same targets with signatures restricted to ``layers`` (exact: counts are per layer)."""
    rows, chosen = layer_positions(profile.spec, layers)
    desc = f"{profile.description} [layers {list(chosen)}]" if profile.description else f"layers {list(chosen)}"
    return NAGProfile(profile.counts[rows].astype(np.int64), profile.num_targets, profile.spec.replace(layers=chosen),
                      desc, skipped_null=profile.skipped_null)


def prefix_profile(profile: NAGProfile, top_k: int) -> NAGProfile:
    """Always refused: a profile's counts do not say at which rank each target held a neuron.

    Rebuild the profile from prefixed target signatures instead:
    ``NAGProfile.from_signatures(*prefix_signatures(sigs, spec, top_k))`` or ``from_dataset(prefix_column(...))``.
    """
    raise ProfileError(
        f"cannot narrow a top-{profile.spec.top_k} profile to top-{top_k}: its counts do not record each neuron's "
        "rank in the target signatures. Rebuild it from prefixed target signatures (prefix_signatures or "
        "prefix_column, then NAGProfile.from_signatures / from_dataset)."
    )


def _check_shape(sigs: np.ndarray, spec: SignatureSpec) -> np.ndarray:
    sigs = np.asarray(sigs)
    if sigs.ndim != 3 or sigs.shape[1:] != (spec.num_layers, spec.top_k):
        raise SpecError(f"signatures have shape {sigs.shape}, the spec implies (n, {spec.num_layers}, {spec.top_k})")
    return sigs


def _only_signature_column(ds: Any) -> str:
    from nag_datasets.signatures.columns import signature_columns

    columns = list(signature_columns(ds))
    if len(columns) != 1:
        raise ValueError(f"pass column=...: the dataset has {len(columns)} signature columns {columns}")
    return columns[0]


def _rewrite_column(ds: Any, column: str | None, out_column: str | None, fn: Any) -> Any:
    column = column or _only_signature_column(ds)
    sigs, valid, spec = signature_array(ds, column)
    new, new_spec = fn(sigs, spec)
    out_column = out_column or column
    values = [row.tolist() if ok else None for row, ok in zip(new, valid)]
    features = ds.features.copy()
    if out_column in features:
        ds = ds.remove_columns(out_column)
        del features[out_column]
    features[out_column] = signature_feature(new_spec)
    return ds.add_column(out_column, values, feature=features[out_column]).cast(features)
