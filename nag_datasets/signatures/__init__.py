"""Signatures: the one object that crosses every boundary (the spec) and the columns that carry it.

``spec`` (:class:`SignatureSpec`, compared field by field), ``columns`` (the typed signature column whose feature
holds the spec), ``embedding_spec`` and ``embedding_column`` (the same for the ``nag_embedding`` column),
``spec_column`` (the per-row ``nag_spec`` column a plain ``map`` keeps, and the checks of a column's spec),
``registry`` (specs seen on this machine, by fingerprint), ``arrow`` (zero-copy Arrow access:
signature blocks in row order, numeric and added columns), ``formats`` (datasets on disk, local or remote, that keep
their specs).

>>> from nag_datasets.signatures import SignatureSpec, column_name
>>> column_name("fwd_up")
'nag_fwd_up'
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "SignatureSpec": "spec",
    "EmbeddingSpec": "embedding_spec",
    "EMBEDDING_COLUMN": "embedding_column",
    "SpecError": "spec",
    "SpecMismatchError": "spec",
    "NEURON_TYPES": "spec",
    "attach_spec": "columns",
    "column_name": "columns",
    "get_spec": "columns",
    "signature_columns": "columns",
    "signature_feature": "columns",
    "SPEC_COLUMN": "spec_column",
    "numeric_column": "arrow",
    "signature_blocks": "arrow",
    "load_any": "formats",
    "save_any": "formats",
}
__all__ = ["EMBEDDING_COLUMN", "NEURON_TYPES", "SPEC_COLUMN", "EmbeddingSpec", "SignatureSpec", "SpecError",
           "SpecMismatchError", "attach_spec", "column_name", "get_spec", "load_any", "numeric_column", "save_any",
           "signature_blocks", "signature_columns", "signature_feature"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
