"""The per-row spec column ``nag_spec``: plain ``map`` output stays checkable.

A plain ``ds.map(featurizer, batched=True)`` (no ``features=``) lets `datasets` infer the signature column's type,
which drops the spec carried by the typed feature. The featurizer therefore also writes ``nag_spec``: one short
string per row, ``"<column>=<spec fingerprint>"`` (several signature columns are separated by spaces). Strings
survive type inference, ``filter``/``select``, and any parquet writer (pyarrow, pandas). Scoring accepts such a
column when its fingerprint equals the profile's and refuses any other, naming the differing fields when the other
spec is in the local registry (:mod:`.registry`).

>>> from nag_datasets.signatures.spec import SignatureSpec
>>> spec = SignatureSpec(model_fingerprint="m", tokenizer_fingerprint="t", neuron_type="fwd_up", top_k=2,
...                      layers=(0, 1), max_length=8, add_special_tokens=False, neurons_per_layer=4)
>>> value = spec_value({"nag_fwd_up": spec})
>>> parse_spec_value(value) == {"nag_fwd_up": spec.fingerprint()}
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import MissingColumnError, WrongTypeError
from .arrow import row_indices
from .columns import get_spec, spec_from_feature
from .registry import known_spec, spec_path
from .spec import SignatureSpec, SpecError, SpecMismatchError

__all__ = ["SPEC_COLUMN", "check_batch", "check_dataset_column", "check_spec_values", "dataset_spec",
           "parse_spec_value", "refuse_split_dict", "require_dataset", "single_spec", "spec_value", "spec_values_of"]

SPEC_COLUMN = "nag_spec"

#: How to fix a column whose spec cannot be established here (appended to refusals).
FIX_HINT = ("reattach the spec with `nag_datasets.attach_spec(ds, spec, column)` (the spec is in the featurizer's "
            "`featurizer.spec()` or a saved `*.spec.json`), or featurize again with this library")


def spec_value(specs: Mapping[str, SignatureSpec]) -> str:
    """The ``nag_spec`` string for signature columns ``{column: spec}``."""
    return " ".join(f"{column}={spec.fingerprint()}" for column, spec in specs.items())


def parse_spec_value(value: Any) -> dict[str, str]:
    """``{column: fingerprint}`` of one ``nag_spec`` value; a malformed value raises :class:`SpecError`."""
    if not isinstance(value, str):
        raise SpecError(f"a {SPEC_COLUMN} value must be a string, got {type(value).__name__}")
    out = {}
    for part in value.split():
        column, sep, fingerprint = part.partition("=")
        if not sep or not column or not fingerprint:
            raise SpecError(f"malformed {SPEC_COLUMN} value {value!r}: expected 'column=fingerprint'")
        out[column] = fingerprint
    return out


def _fingerprints(values: Iterable[Any], column: str) -> set[str]:
    """Distinct fingerprints that the ``nag_spec`` ``values`` give ``column`` (refused when a row names none)."""
    found: set[str] = set()
    for value in set(values):
        if value is None:
            raise SpecError(f"some rows have no {SPEC_COLUMN} value, so the spec of column {column!r} is unknown "
                            f"there; {FIX_HINT}")
        parsed = parse_spec_value(value)
        if column not in parsed:
            raise SpecError(f"{SPEC_COLUMN} describes columns {sorted(parsed)}, not {column!r} (renamed?); "
                            f"{FIX_HINT}")
        found.add(parsed[column])
    return found


def check_spec_values(values: Iterable[Any], column: str, expected: SignatureSpec, *, against: str = "profile"
                      ) -> None:
    """Refuse ``nag_spec`` ``values`` that give ``column`` another spec than ``expected``, naming what differs.

    A fingerprint registered on this machine is compared field by field; an unknown one is refused as unknown.
    """
    want = expected.fingerprint()
    for fingerprint in sorted(_fingerprints(values, column) - {want}):
        other = known_spec(fingerprint)
        what = f"column {column!r}"
        if other is not None and type(other) is not type(expected):
            raise SpecMismatchError(f"cannot compare {what} with {against}: its {SPEC_COLUMN} names a spec of another "
                                    f"kind ({type(other).__name__}, not {type(expected).__name__}); was it renamed?")
        if other is not None:
            expected.check_compatible(other, what=what, against=against)
        raise SpecMismatchError(
            f"cannot compare {what} with {against}: its {SPEC_COLUMN} names spec {fingerprint}, not the {against}'s "
            f"{want}, and spec {fingerprint} is unknown here (no {spec_path(fingerprint)}), so the "
            f"differing fields cannot be named; {FIX_HINT}")


def spec_values_of(ds: Any) -> list[Any] | None:
    """Distinct ``nag_spec`` values of the rows of ``ds`` (after any ``select``/``filter``), or None without one."""
    import pyarrow.compute as pc

    if SPEC_COLUMN not in (ds.column_names or []):
        return None
    col = ds.data.column(SPEC_COLUMN)
    idx = row_indices(ds)
    if idx is not None:
        col = col.take(idx)
    return pc.unique(col).to_pylist()


def single_spec(ds: Any, column: str) -> SignatureSpec:
    """The spec that the ``nag_spec`` column gives ``column``, when it names one registered spec."""
    values = spec_values_of(ds)
    if values is None:
        return get_spec(ds, column)  # raises its own explanation
    found = _fingerprints(values, column)
    if len(found) != 1:
        raise SpecMismatchError(f"column {column!r} mixes rows of {len(found)} signature specs "
                                f"({', '.join(sorted(found))}); profile each spec separately")
    fingerprint = found.pop()
    spec = known_spec(fingerprint)
    if spec is None:
        raise SpecError(f"column {column!r} carries no typed spec and its {SPEC_COLUMN} names spec {fingerprint}, "
                        f"which is unknown here (no {spec_path(fingerprint)}); {FIX_HINT}")
    return spec


def refuse_split_dict(ds: Any, what: str) -> None:
    """Refuse a ``DatasetDict`` where one split is needed, naming its splits."""
    from datasets import DatasetDict, IterableDatasetDict

    if isinstance(ds, (DatasetDict, IterableDatasetDict)):
        splits = list(ds)
        first = splits[0] if splits else "train"
        raise WrongTypeError(f"{what} needs one split, got a {type(ds).__name__} with splits {splits}: pass one, e.g. "
                             f"ds[{first!r}], or call it once per split")


def require_dataset(ds: Any, what: str) -> None:
    """Refuse anything but a ``datasets.Dataset`` (a dict of splits, a stream) with what to do instead."""
    from datasets import Dataset, IterableDataset

    refuse_split_dict(ds, what)
    if isinstance(ds, IterableDataset):
        raise WrongTypeError(f"{what} reads a datasets.Dataset (random access, Arrow columns), got an IterableDataset: "
                        "take a bounded part with Dataset.from_generator / ds.take(n), or save the stream first; to "
                             "score a stream use ds.map(profile.scorer(), batched=True)")
    if not isinstance(ds, Dataset):
        raise WrongTypeError(f"{what} needs a datasets.Dataset, got {type(ds).__name__}")


def dataset_spec(ds: Any, column: str) -> SignatureSpec:
    """The spec of ``ds[column]``: its typed feature's, else the one its ``nag_spec`` column names (registered).

    When both exist they must agree.
    """
    require_dataset(ds, "NAGProfile.from_dataset")
    features = ds.features or {}
    if column not in features:
        raise MissingColumnError(f"column {column!r} not in dataset; columns: {list(features)}")
    typed = spec_from_feature(features[column])
    if typed is None:
        return single_spec(ds, column)
    values = spec_values_of(ds)
    if values is not None:
        check_spec_values(values, column, typed, against="its typed feature")
    return typed


def check_dataset_column(ds: Any, column: str, expected: SignatureSpec) -> SignatureSpec:
    """Refuse ``ds[column]`` unless its spec (typed, or named by ``nag_spec``) matches ``expected``; return it."""
    require_dataset(ds, "scoring")
    features = ds.features or {}
    if column not in features:
        raise MissingColumnError(f"column {column!r} not in dataset; columns: {list(features)}")
    typed = spec_from_feature(features[column])
    values = spec_values_of(ds)
    if typed is None and values is None:
        get_spec(ds, column)  # raises the explanation of a column without a spec
    if typed is not None:
        expected.check_compatible(typed, what=f"column {column!r}", against="profile")
    if values is not None:
        check_spec_values(values, column, expected)
    return typed or expected


def check_batch(batch: Mapping[str, Any], column: str, expected: SignatureSpec, *, required: bool) -> None:
    """The check a ``map``/``filter`` callable does on every batch: its ``nag_spec`` values must name ``expected``.

    A batch without ``nag_spec`` is refused when ``required`` (the callable was made without ``dataset=``).
    """
    if SPEC_COLUMN in batch:
        values = batch[SPEC_COLUMN]
        check_spec_values(values.to_pylist() if hasattr(values, "to_pylist") else list(values), column, expected)
    elif required:
        raise SpecError(
            f"this batch has no {SPEC_COLUMN} column, so the signature spec of column {column!r} cannot be checked. "
            f"Pass the dataset (profile.filter(t, dataset=ds), profile.scorer(dataset=ds) or profile.scorer_for(ds)) "
            f"so its typed spec is checked first, keep the {SPEC_COLUMN} column the featurizer writes, or pass "
            "check_spec=False if you vouch for the spec yourself")

