"""What a selection reports: the rows and tokens it kept, out of which pool, and how (dataclasses that round-trip
through ``to_dict``/``from_dict``, as JSON).

>>> r = SelectionReport("exact", 0.5, 1, 30, 3, 60, 0.5, 0.9, 0, 0)
>>> SelectionReport.from_dict(r.to_dict()) == r
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["MultiTargetReport", "SelectionReport"]


@dataclasses.dataclass
class SelectionReport:
    """What a selection kept, out of which pool, and how."""

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
