"""What featurization did to every row: the per-row ``nag_status`` values and their counts, summable over shards,
ranks and streamed parts.

>>> FeaturizeReport.from_dict(FeaturizeReport(3, 2, 1, 1, {"empty": 1}, 250).to_dict()).featurized_rows
2
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["NULL_STATUSES", "STATUSES", "FeaturizeReport", "invalid_reason", "preview", "sum_reports"]

#: Per-row outcomes written to ``nag_status``. Only ``ok`` and ``truncated`` rows carry a signature.
STATUSES = ("ok", "truncated", "empty", "whitespace", "zero_tokens", "none", "not_string")
NULL_STATUSES = ("empty", "whitespace", "zero_tokens", "none", "not_string")


@dataclasses.dataclass
class FeaturizeReport:
    """Counts of what happened to every row (read from the output columns, so cache hits count too)."""

    rows: int
    featurized_rows: int
    truncated_rows: int
    null_rows: int
    null_by_reason: dict[str, int]
    tokens: int

    @classmethod
    def empty(cls) -> FeaturizeReport:
        """The report of no rows: the zero of ``+``."""
        return cls(rows=0, featurized_rows=0, truncated_rows=0, null_rows=0, null_by_reason={}, tokens=0)

    def __add__(self, other: FeaturizeReport) -> FeaturizeReport:
        """The counts of both runs (shards, ranks, streamed parts) together.

        >>> a = FeaturizeReport(2, 2, 1, 0, {}, 30)
        >>> (a + FeaturizeReport(1, 0, 0, 1, {"empty": 1}, 0)).to_dict()["null_by_reason"]
        {'empty': 1}
        """
        if not isinstance(other, FeaturizeReport):
            return NotImplemented
        nulls = Counter(self.null_by_reason)
        nulls.update(other.null_by_reason)
        return FeaturizeReport(
            rows=self.rows + other.rows, featurized_rows=self.featurized_rows + other.featurized_rows,
            truncated_rows=self.truncated_rows + other.truncated_rows, null_rows=self.null_rows + other.null_rows,
            null_by_reason=dict(sorted(nulls.items())), tokens=self.tokens + other.tokens)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeaturizeReport:
        return cls(rows=int(d["rows"]), featurized_rows=int(d["featurized_rows"]),
                   truncated_rows=int(d["truncated_rows"]), null_rows=int(d["null_rows"]),
                   null_by_reason={str(k): int(v) for k, v in d.get("null_by_reason", {}).items()},
                   tokens=int(d["tokens"]))

    @classmethod
    def from_dataset(cls, ds: Any) -> FeaturizeReport:
        status = Counter(ds["nag_status"])
        tokens = int(np.asarray(ds.data.column("nag_tokens").to_numpy(), dtype=np.int64).sum()) if len(ds) else 0
        nulls = {k: status.get(k, 0) for k in NULL_STATUSES if status.get(k, 0)}
        return cls(rows=len(ds), featurized_rows=status.get("ok", 0) + status.get("truncated", 0),
                   truncated_rows=status.get("truncated", 0), null_rows=sum(nulls.values()),
                   null_by_reason=nulls, tokens=tokens)


def sum_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of reports stored as dicts (in shard and part markers), as a dict for a JSON summary.

    >>> a, b = FeaturizeReport(2, 2, 0, 0, {}, 10), FeaturizeReport(1, 0, 0, 1, {"none": 1}, 0)
    >>> sum_reports([a.to_dict(), b.to_dict()])["rows"]
    3
    """
    return sum((FeaturizeReport.from_dict(r) for r in reports), FeaturizeReport.empty()).to_dict()


def invalid_reason(text: Any) -> str | None:
    """The status of a text that gets no forward pass (``none``, ``not_string``, ``empty``, ``whitespace``), else None."""
    if text is None:
        return "none"
    if not isinstance(text, str):
        return "not_string"
    if text == "":
        return "empty"
    if text.isspace():
        return "whitespace"
    return None


def preview(text: Any, n: int = 60) -> str:
    """A short ``repr`` of ``text`` for error messages."""
    r = repr(text)
    return r if len(r) <= n else r[:n] + "..."
