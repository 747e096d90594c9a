"""Signature columns: their `datasets` feature type, where the spec lives, and zero-copy reading.

A signature column ``nag_<type>`` is a fixed-size ``(L, K)`` list of unsigned integers, stored in Arrow as
nested ``fixed_size_list`` (2 bytes per index, no per-row offsets). The signature spec is kept in the ``id`` of
the innermost ``Value``: `datasets` carries it through ``map``, ``filter``, ``select``, ``concatenate_datasets``,
``save_to_disk``/``load_from_disk`` and its own parquet writer. Zero-copy block reading lives in :mod:`.arrow`.

>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up",
...                      top_k=2, layers=(0, 1, 2), max_length=8, add_special_tokens=False,
...                      neurons_per_layer=16)
>>> feature = signature_feature(spec)
>>> spec_from_feature(feature) == spec
True
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingColumnError
from .spec import SignatureSpec, SpecError

SPEC_ID_PREFIX = "nag_datasets.spec:"  # a stored id (inside every saved signature feature): kept when the module moved


def column_name(neuron_type: str) -> str:
    return f"nag_{neuron_type}"


def signature_feature(spec: SignatureSpec) -> Any:
    """The `datasets` feature of a signature column, carrying ``spec`` in its innermost ``Value.id``."""
    from datasets import List, Value

    inner = Value(spec.index_dtype, id=SPEC_ID_PREFIX + spec.to_json())
    return List(List(inner, length=spec.top_k), length=spec.num_layers)


def _innermost_value(feature: Any) -> Any:
    while hasattr(feature, "feature"):
        feature = feature.feature
    return feature


def spec_from_feature(feature: Any) -> SignatureSpec | None:
    """The spec stored in a signature feature, or None if the feature carries none."""
    ident = getattr(_innermost_value(feature), "id", None)
    if not ident or not str(ident).startswith(SPEC_ID_PREFIX):
        return None
    return SignatureSpec.from_json(str(ident)[len(SPEC_ID_PREFIX) :])


def signature_columns(ds: Any) -> dict[str, SignatureSpec]:
    """All columns of ``ds`` that carry a signature spec, by name."""
    out = {}
    for name, feature in (ds.features or {}).items():
        spec = spec_from_feature(feature)
        if spec is not None:
            out[name] = spec
    return out


def get_spec(ds: Any, column: str) -> SignatureSpec:
    """The spec of ``column`` in ``ds``; a clear error when the column is missing or lost its spec."""
    features = ds.features or {}
    if column not in features:
        raise MissingColumnError(f"column {column!r} not in dataset; columns: {list(features)}")
    spec = spec_from_feature(features[column])
    if spec is None:
        raise SpecError(
            f"column {column!r} carries no NAG signature spec (it was lost, e.g. by a parquet writer other than "
            "ours, or the column was produced by a plain `map` without the featurizer's features). Reattach it "
            "with `nag_datasets.attach_spec(ds, spec, column)` using the spec saved with the data "
            "(`*.spec.json`), or read the files with `nag_datasets.signatures.formats.load_any`; featurize with "
            "`featurizer.apply(ds)` to keep it."
        )
    return spec


def attach_spec(ds: Any, spec: SignatureSpec, column: str | None = None) -> Any:
    """Return ``ds`` with ``spec`` attached to its signature ``column`` (cast, no data rewrite of values).

    The column's shape must match the spec's ``(L, K)``.
    """
    column = column or f"nag_{spec.neuron_type}"
    if column not in (ds.features or {}):
        raise MissingColumnError(f"column {column!r} not in dataset; columns: {list(ds.features or {})}")
    features = ds.features.copy()
    features[column] = signature_feature(spec)
    return ds.cast(features)
