"""The signature spec: the settings two NAG signatures must share to be comparable.

Every boundary of the library (featurizer, columns, profiles, selection, Hub export) passes this one object.

>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up",
...                      top_k=20, layers=(0, 1), max_length=120, add_special_tokens=False,
...                      neurons_per_layer=1536)
>>> SignatureSpec.from_json(spec.to_json()) == spec
True
>>> [m.field for m in spec.mismatches(spec.replace(top_k=5))]
['top_k']
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from ..errors import NAGError

#: Bumped whenever the definition of impact (and so of every signature) changes.
IMPACT_VERSION = "1"

NEURON_TYPES = ("fwd_up", "fwd_down", "att_q", "att_k", "att_v", "att_o")

#: Fields that must be equal for two signatures to be compared.
COMPARED_FIELDS = (
    "model_fingerprint",
    "tokenizer_fingerprint",
    "neuron_type",
    "top_k",
    "layers",
    "max_length",
    "add_special_tokens",
    "neurons_per_layer",
    "impact_version",
)
#: Fields recorded for provenance only; differences never refuse a comparison.
RECORDED_FIELDS = ("model_name", "dtype", "attn_implementation", "library_version")


class SpecError(NAGError, ValueError):
    """A signature spec is missing, malformed or incompatible."""


class SpecMismatchError(SpecError):
    """Two signature specs differ in a compared field."""


@dataclasses.dataclass(frozen=True)
class SpecMismatch:
    field: str
    left: Any
    right: Any


#: A spec dataclass (signature or embedding).
T = TypeVar("T")


def build_spec(cls: type[T], d: dict[str, Any], required: Sequence[str], what: str) -> T:
    """``cls(**d)`` for a spec dataclass, refusing missing ``required`` fields and unknown ones by name."""
    missing = [f for f in required if f not in d]
    if missing:
        raise SpecError(f"{what} lacks fields: {', '.join(missing)}")
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})  # type: ignore[arg-type]
    if unknown:
        raise SpecError(f"{what} has unknown fields: {', '.join(unknown)}")
    try:
        return cls(**d)
    except TypeError as e:
        raise SpecError(f"malformed {what}: {e}") from e


def parse_spec_json(text: str, what: str) -> Any:
    """The JSON value of a spec's text; invalid JSON is a :class:`SpecError` naming ``what``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{what} is not valid JSON: {e}") from e


@dataclasses.dataclass(frozen=True)
class SignatureSpec:
    """How signatures were computed; see ``COMPARED_FIELDS`` for what must match."""

    model_fingerprint: str
    tokenizer_fingerprint: str
    neuron_type: str
    top_k: int
    layers: tuple[int, ...]
    max_length: int
    add_special_tokens: bool
    neurons_per_layer: int
    impact_version: str = IMPACT_VERSION
    model_name: str = ""
    dtype: str = ""
    attn_implementation: str = ""
    library_version: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        if self.neuron_type not in NEURON_TYPES:
            raise SpecError(f"unknown neuron type {self.neuron_type!r}; known: {', '.join(NEURON_TYPES)}")
        if self.top_k < 1 or self.top_k > self.neurons_per_layer:
            raise SpecError(f"top_k={self.top_k} must be in 1..neurons_per_layer={self.neurons_per_layer}")
        if not self.layers:
            raise SpecError("a signature spec needs at least one layer")

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def index_dtype(self) -> str:
        """Smallest unsigned integer type that holds a neuron index."""
        return "uint16" if self.neurons_per_layer <= 65536 else "uint32"

    def __getstate__(self) -> dict[str, Any]:
        # The cached fingerprint stays out of pickles (and so out of `datasets`' hashes of objects holding a spec).
        state = dict(self.__dict__)
        state.pop("fingerprint", None)
        return state

    def replace(self, **changes: Any) -> SignatureSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["layers"] = list(self.layers)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignatureSpec:
        if not isinstance(d, dict):
            raise SpecError(f"a signature spec must be a JSON object, got {type(d).__name__}")
        return build_spec(cls, d, COMPARED_FIELDS, "signature spec")

    @classmethod
    def from_json(cls, text: str) -> SignatureSpec:
        return cls.from_dict(parse_spec_json(text, "signature spec"))

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the compared fields only (recorded fields do not change it); read-only, computed once."""
        d = self.to_dict()
        payload = json.dumps({k: d[k] for k in COMPARED_FIELDS}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def mismatches(self, other: SignatureSpec) -> list[SpecMismatch]:
        a, b = self.to_dict(), other.to_dict()
        return [SpecMismatch(f, a[f], b[f]) for f in COMPARED_FIELDS if a[f] != b[f]]

    def check_compatible(self, other: SignatureSpec, *, what: str = "signatures", against: str = "profile") -> None:
        """Raise :class:`SpecMismatchError` naming every differing field and both values."""
        diffs = self.mismatches(other)
        if diffs:
            lines = "; ".join(f"{m.field}: {against}={m.left!r} vs {what}={m.right!r}" for m in diffs)
            raise SpecMismatchError(f"cannot compare {what} with {against}: signature specs differ in {lines}")
        if self.dtype and other.dtype and self.dtype != other.dtype:
            import warnings

            warnings.warn(
                f"{against} was computed in {self.dtype} and {what} in {other.dtype}: near-tied neurons may flip",
                stacklevel=3,
            )
