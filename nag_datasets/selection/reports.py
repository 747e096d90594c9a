"""What a selection reports: the rows and tokens it kept, out of which pool, and how (dataclasses that round-trip
through ``to_dict``/``from_dict``, as JSON). Every report of one cut starts with :class:`BudgetCut`'s fields.

>>> r = SelectionReport("exact", 0.5, 1, 30, 3, 60, 0.5, 0.9, 0, 0)
>>> SelectionReport.from_dict(r.to_dict()) == r
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import MissingColumnError

__all__ = ["BudgetCut", "MultiTargetReport", "RaySelectionReport", "SelectionReport"]


@dataclasses.dataclass
class BudgetCut:
    """What one token-budget cut kept, out of which pool: rows without a score are outside the pool (skipped)."""

    method: str
    fraction: float
    documents_selected: int
    tokens_selected: int
    pool_documents: int
    pool_tokens: int
    achieved_fraction: float
    threshold: float | None
    null_rows_skipped: int
    null_tokens_skipped: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SelectionReport(BudgetCut):
    """What a selection kept, out of which pool, and how."""

    higher_is_better: bool = True
    score_column: str | None = None
    signature_column: str | None = None
    spec: dict[str, Any] | None = None
    profile_fingerprint: str | None = None
    profile_description: str | None = None
    profile_num_targets: int | None = None
    #: ``"similarity"`` (the paper's profile, in [0, 1]) or ``"contrastive"`` (weights, any sign); None without one.
    score_kind: str | None = None
    #: The profile's :meth:`~nag_datasets.scoring.profile_base.Profile.summary` (weighting and background when
    #: contrastive).
    profile: dict[str, Any] | None = None
    seed: int | None = None
    sample_size: int | None = None
    sample_documents: int | None = None
    #: Pool rows whose text repeats an earlier pool row's, and selected rows repeating an earlier selected row's
    #: (None when not counted: no text column, or ``count_duplicates=False``).
    duplicate_rows: int | None = None
    duplicate_rows_selected: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SelectionReport:
        return cls(**d)


@dataclasses.dataclass
class MultiTargetReport:
    """Per-target reports of a multi-target selection plus the totals of the concatenated result.

    ``target_documents[i]`` rows of the result (in order) come from target ``i``; with ``dedup`` they exclude the
    ``duplicates_dropped[i]`` rows an earlier target had already selected.
    """

    fraction: float
    share: float
    dedup: bool
    targets: list[SelectionReport]
    target_documents: list[int]
    duplicates_dropped: list[int]
    duplicate_tokens_dropped: list[int]
    documents_selected: int
    tokens_selected: int
    pool_tokens: int
    achieved_fraction: float

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["targets"] = [t.to_dict() for t in self.targets]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MultiTargetReport:
        d = dict(d)
        d["targets"] = [SelectionReport.from_dict(t) for t in d["targets"]]
        return cls(**d)


@dataclasses.dataclass
class RaySelectionReport(BudgetCut):
    """What :func:`~nag_datasets.selection.ray_select.select_top_fraction_ray` kept (also written as
    ``selection.json``): the cut, ``last_position`` (the global row position of the last kept row) and how the Ray
    run went.

    Read it as attributes or, like the dict it used to be, by key: ``report["documents_selected"]``.
    """

    last_position: int | None
    signature_column: str
    spec: dict[str, Any]
    profile_fingerprint: str
    profile_description: str
    profile_num_targets: int
    input_files: int
    score_blocks: int
    score_worker_processes: int
    #: ``"similarity"`` or ``"contrastive"`` and the profile's summary (weighting and background when contrastive).
    score_kind: str = "similarity"
    profile: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RaySelectionReport:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def __eq__(self, other: object) -> bool:
        """Equal to another report or to the dict it was (e.g. ``selection.json`` read back) with the same fields."""
        if isinstance(other, RaySelectionReport):
            return self.to_dict() == other.to_dict()
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like any dataclass with eq

    def __getitem__(self, key: str) -> Any:
        if key not in self.__dataclass_fields__:
            raise MissingColumnError(key)
        return getattr(self, key)

    def keys(self) -> list[str]:
        return list(self.__dataclass_fields__)
