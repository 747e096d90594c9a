"""Provenance that travels with a selected dataset: how it was chosen, stored in the dataset's own features.

A selection gets an int64 column ``nag_rank`` (0-based rank within the selection); the innermost ``Value.id`` of
that column carries the recipe as JSON, the same way signature columns carry their spec, so it survives ``select``,
``save_to_disk``/``load_from_disk`` and ``to_parquet``/``load_dataset("parquet")``. Score columns written by this
library (e.g. ``nag_combined``) carry how they were computed the same way.

>>> from datasets import Dataset
>>> recipe = SelectionRecipe(kind="top_fraction", fraction=0.2, method="exact", reports=[], created="now")
>>> ds = attach_recipe(Dataset.from_dict({"text": ["a", "b"]}), recipe)
>>> ds["nag_rank"][:]
[0, 1]
>>> get_recipe(ds) == recipe
True
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NAGError
from ..signatures.arrow import add_row_column

__all__ = [
    "RANK_COLUMN",
    "RecipeError",
    "SelectionRecipe",
    "attach_recipe",
    "get_recipe",
    "get_score_info",
    "score_feature",
]

RANK_COLUMN = "nag_rank"
RECIPE_ID_PREFIX = "nag_datasets.recipe:"  # a stored id: kept when the module moved
SCORE_ID_PREFIX = "nag_datasets.score:"
RECIPE_VERSION = 1


class RecipeError(NAGError, ValueError):
    """A recipe stored in a dataset is malformed."""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclasses.dataclass
class SelectionRecipe:
    """How a selection was made: everything needed to reproduce or audit it (JSON-serialisable).

    ``reports`` holds one :class:`nag_datasets.selection.reports.SelectionReport` dict per target (one for a single
    target), ``profiles`` one profile summary per target (``NAGProfile.summary()``: fingerprint, description,
    num_targets, score_kind, and for a contrastive profile its weighting and background; empty when ranking by a
    precomputed score column), ``shares`` the token fraction each target selected (multi-target).
    """

    kind: str
    fraction: float
    method: str
    reports: list[dict[str, Any]]
    spec: dict[str, Any] | None = None
    profiles: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    shares: list[float] | None = None
    dedup: bool | None = None
    score_column: str | None = None
    higher_is_better: bool = True
    quality: dict[str, Any] | None = None
    library_version: str = __version__
    created: str = dataclasses.field(default_factory=_now)
    recipe_version: int = RECIPE_VERSION

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelectionRecipe:
        if not isinstance(d, dict):
            raise RecipeError(f"a recipe must be a JSON object, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RecipeError(f"recipe has unknown fields: {', '.join(unknown)}")
        try:
            recipe = cls(**d)
        except TypeError as e:
            raise RecipeError(f"malformed recipe: {e}") from None
        recipe._check_types()
        return recipe

    def _check_types(self) -> None:
        """Refuse values of the wrong type (a damaged recipe must fail here, not later as a wrong card or score)."""
        number = (int, float)
        checks = {
            "kind": (str,), "fraction": number, "method": (str,), "reports": (list,), "spec": (dict, type(None)),
            "profiles": (list,), "shares": (list, type(None)), "dedup": (bool, type(None)),
            "score_column": (str, type(None)), "higher_is_better": (bool,), "quality": (dict, type(None)),
            "recipe_version": (int,),
        }
        bad = [name for name, types in checks.items() if not isinstance(getattr(self, name), types)
               or (types is number and isinstance(getattr(self, name), bool))]
        bad += [f"{name}[{i}]" for name in ("reports", "profiles") if isinstance(getattr(self, name), list)
                for i, item in enumerate(getattr(self, name)) if not isinstance(item, dict)]
        if bad:
            raise RecipeError(f"malformed recipe: wrong type for {', '.join(bad)}")
        if not 0.0 <= self.fraction <= 1.0:
            raise RecipeError(f"malformed recipe: fraction {self.fraction!r} is outside [0, 1]")
        if self.spec is not None:
            from ..signatures.spec import SignatureSpec, SpecError

            try:
                SignatureSpec.from_dict(self.spec)
            except SpecError as e:
                raise RecipeError(f"malformed recipe: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> SelectionRecipe:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise RecipeError(f"recipe is not valid JSON: {e}") from None


def _innermost(feature: Any) -> Any:
    while hasattr(feature, "feature"):
        feature = feature.feature
    return feature


def rank_feature(recipe: SelectionRecipe) -> Any:
    """The `datasets` feature of the ``nag_rank`` column, carrying ``recipe``."""
    from datasets import Value

    return Value("int64", id=RECIPE_ID_PREFIX + recipe.to_json())


def attach_recipe(ds: Any, recipe: SelectionRecipe, *, column: str = RANK_COLUMN) -> Any:
    """``ds`` with ``column`` = 0-based row position and ``recipe`` in its feature (replaces an existing one).

    No rows are copied: the column is added beside the underlying table. A row that appears twice (a multi-target
    selection keeping duplicates) shows the rank of its first appearance.
    """
    fingerprint = hashlib.sha256(f"{ds._fingerprint}\0{column}\0{recipe.to_json()}".encode()).hexdigest()[:16]
    return add_row_column(ds, column, np.arange(len(ds), dtype=np.int64), rank_feature(recipe), fingerprint)


def get_recipe(ds: Any, column: str = RANK_COLUMN) -> SelectionRecipe | None:
    """The recipe carried by ``ds[column]``, or None when the column is absent or carries none."""
    feature = (ds.features or {}).get(column)
    ident = getattr(_innermost(feature), "id", None) if feature is not None else None
    if not ident or not str(ident).startswith(RECIPE_ID_PREFIX):
        return None
    return SelectionRecipe.from_json(str(ident)[len(RECIPE_ID_PREFIX) :])


def score_feature(info: dict[str, Any], dtype: str = "float64") -> Any:
    """A `datasets` feature for a score column that records how the scores were computed (``info``, JSON)."""
    from datasets import Value

    return Value(dtype, id=SCORE_ID_PREFIX + json.dumps(info, sort_keys=True, separators=(",", ":")))


def get_score_info(ds: Any, column: str) -> dict[str, Any] | None:
    """What :func:`score_feature` recorded for ``ds[column]``, or None."""
    feature = (ds.features or {}).get(column)
    ident = getattr(_innermost(feature), "id", None) if feature is not None else None
    if not ident or not str(ident).startswith(SCORE_ID_PREFIX):
        return None
    try:
        info = json.loads(str(ident)[len(SCORE_ID_PREFIX) :])
    except json.JSONDecodeError as e:
        raise RecipeError(f"score column {column!r} carries malformed provenance: {e}") from None
    return info if isinstance(info, dict) else None
