"""The embedding spec: how a ``nag_embedding`` column was computed, so two embeddings are compared only when they
mean the same thing.

An embedding is the masked mean, over a document's valid tokens, of one decoder layer's output after the model's
final norm, reduced in float32 and stored as float16 (one vector of ``hidden_size`` values per row). It comes from the
forward pass that computes the signatures, so it shares their model, tokenizer and text cut; the spec says which.

>>> spec = EmbeddingSpec(model_fingerprint="m", tokenizer_fingerprint="t", layer=29, max_length=120,
...                      add_special_tokens=False, hidden_size=576)
>>> EmbeddingSpec.from_json(spec.to_json()) == spec
True
>>> [m.field for m in spec.mismatches(spec.replace(layer=15))]
['layer']
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from typing import Any

from .spec import SignatureSpec, SpecError, SpecMismatch, SpecMismatchError, build_spec, parse_spec_json

__all__ = [
    "EMBEDDING_COMPARED_FIELDS",
    "EMBEDDING_KIND",
    "EMBEDDING_VERSION",
    "PAIRED_FIELDS",
    "EmbeddingSpec",
    "spec_from_dict",
]

#: Bumped whenever the definition of the embedding (pooling, norm, reduction) changes.
EMBEDDING_VERSION = "1"
#: The ``kind`` every serialised embedding spec carries (a signature spec has none).
EMBEDDING_KIND = "embedding"

#: Fields that must be equal for two embeddings to be compared.
EMBEDDING_COMPARED_FIELDS = (
    "model_fingerprint",
    "tokenizer_fingerprint",
    "layer",
    "pooling",
    "norm",
    "dtype",
    "max_length",
    "add_special_tokens",
    "hidden_size",
    "embedding_version",
)
#: Fields an embedding must share with the signature column it is used with (the same forward pass's inputs).
PAIRED_FIELDS = ("model_fingerprint", "tokenizer_fingerprint", "max_length", "add_special_tokens")


@dataclasses.dataclass(frozen=True)
class EmbeddingSpec:
    """How an embedding column was computed; see ``EMBEDDING_COMPARED_FIELDS`` for what must match.

    ``layer`` is the decoder layer's index (``layer_name`` records what was asked: ``"last"``, ``"mid"`` or the index);
    ``pooling="mean"`` over valid tokens, ``norm="final"`` (the model's final norm applied to that layer's output),
    ``dtype`` the stored type. ``model_name``, ``model_dtype``, ``attn_implementation``, ``library_version`` and
    ``layer_name`` are provenance only.
    """

    model_fingerprint: str
    tokenizer_fingerprint: str
    layer: int
    max_length: int
    add_special_tokens: bool
    hidden_size: int
    pooling: str = "mean"
    norm: str = "final"
    dtype: str = "float16"
    embedding_version: str = EMBEDDING_VERSION
    layer_name: str = ""
    model_name: str = ""
    model_dtype: str = ""
    attn_implementation: str = ""
    library_version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", int(self.layer))
        object.__setattr__(self, "hidden_size", int(self.hidden_size))
        if self.layer < 0:
            raise SpecError(f"an embedding's layer is a non-negative index, got {self.layer}")
        if self.hidden_size < 1:
            raise SpecError(f"hidden_size must be >= 1, got {self.hidden_size}")
        if self.pooling != "mean" or self.norm != "final" or self.dtype != "float16":
            raise SpecError(f"unknown embedding definition: pooling={self.pooling!r}, norm={self.norm!r}, "
                            f"dtype={self.dtype!r} (this library writes mean / final / float16)")

    def replace(self, **changes: Any) -> EmbeddingSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": EMBEDDING_KIND, **dataclasses.asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmbeddingSpec:
        if not isinstance(d, dict):
            raise SpecError(f"an embedding spec must be a JSON object, got {type(d).__name__}")
        if d.get("kind") != EMBEDDING_KIND:
            raise SpecError(f"not an embedding spec (kind {d.get('kind')!r}, expected {EMBEDDING_KIND!r})")
        d = {k: v for k, v in d.items() if k != "kind"}
        return build_spec(cls, d, EMBEDDING_COMPARED_FIELDS, "embedding spec")

    @classmethod
    def from_json(cls, text: str) -> EmbeddingSpec:
        return cls.from_dict(parse_spec_json(text, "embedding spec"))

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the compared fields only (provenance fields do not change it); never equal to a signature spec's;
        read-only, computed once."""
        d = dataclasses.asdict(self)
        payload = json.dumps({k: d[k] for k in EMBEDDING_COMPARED_FIELDS}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(("embedding\0" + payload).encode()).hexdigest()[:16]

    def mismatches(self, other: Any) -> list[SpecMismatch]:
        if not isinstance(other, EmbeddingSpec):
            return [SpecMismatch("kind", EMBEDDING_KIND, "signature")]
        a, b = dataclasses.asdict(self), dataclasses.asdict(other)
        return [SpecMismatch(f, a[f], b[f]) for f in EMBEDDING_COMPARED_FIELDS if a[f] != b[f]]

    def check_compatible(self, other: Any, *, what: str = "embeddings", against: str = "profile") -> None:
        """Raise :class:`SpecMismatchError` naming every differing field and both values."""
        diffs = self.mismatches(other)
        if diffs:
            lines = "; ".join(f"{m.field}: {against}={m.left!r} vs {what}={m.right!r}" for m in diffs)
            raise SpecMismatchError(f"cannot compare {what} with {against}: embedding specs differ in {lines}")

    def check_pairs_with(self, signature: SignatureSpec, *, what: str = "the embedding column",
                         against: str = "the signature column") -> None:
        """Refuse an embedding made from other inputs than ``signature`` (model, tokenizer, text cut), naming each
        differing field: the two signals must describe the same forward pass."""
        diffs = [(f, getattr(signature, f), getattr(self, f)) for f in PAIRED_FIELDS
                 if getattr(signature, f) != getattr(self, f)]
        if diffs:
            lines = "; ".join(f"{f}: {against}={s!r} vs {what}={e!r}" for f, s, e in diffs)
            raise SpecMismatchError(f"{what} was not computed with the inputs of {against}: they differ in {lines}; "
                                    "featurize once with both (NAGFeaturizer(..., embedding='last'))")


def spec_from_dict(d: dict[str, Any]) -> SignatureSpec | EmbeddingSpec:
    """A signature spec or an embedding spec, by the dict's ``kind`` (absent: a signature spec).

    >>> spec_from_dict({"kind": "embedding", "model_fingerprint": "m", "tokenizer_fingerprint": "t", "layer": 1,
    ...                 "max_length": 8, "add_special_tokens": False, "hidden_size": 4, "pooling": "mean",
    ...                 "norm": "final", "dtype": "float16", "embedding_version": "1"}).layer
    1
    """
    if isinstance(d, dict) and d.get("kind") == EMBEDDING_KIND:
        return EmbeddingSpec.from_dict(d)
    return SignatureSpec.from_dict(d)
