"""The files the token-budget stages pass on: per task ``(score, tokens, id hash)`` rows and the kept positions.

Each file is one JSON header line followed by little-endian records. The header names the format, the task
(``rank``, ``world_size``) and the number of rows, so a file cut short by a killed task is refused (the stage
that wrote it is not marked complete; rerun it). Files live in a datatrove ``DataFolder`` (local, ``s3://``,
``hf://``, ...).

>>> import numpy as np
>>> from fsspec.implementations.memory import MemoryFileSystem
>>> from fsspec.implementations.dirfs import DirFileSystem
>>> folder = DirFileSystem("/budget-doc", fs=MemoryFileSystem())
>>> rows = scores_records(np.array([0.5, np.nan]), np.array([7, 3]), ["a", "b"])
>>> write_records(folder, scores_name(0), SCORES_FORMAT, {"rank": 0, "world_size": 1}, rows)
>>> header, back = read_records(folder, scores_name(0), SCORES_FORMAT, SCORES_DTYPE)
>>> header["rows"], back["tokens"].tolist()
(2, [7, 3])
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import NAGError

__all__ = [
    "KEEP_DTYPE",
    "KEEP_FORMAT",
    "SCORES_DTYPE",
    "SCORES_FORMAT",
    "BudgetStageError",
    "id_hashes",
    "keep_name",
    "read_records",
    "scores_name",
    "scores_records",
    "write_records",
]

SCORES_FORMAT = "nag_datasets.budget_scores/1"
KEEP_FORMAT = "nag_datasets.budget_keep/1"
#: Stage 1, one row per document of a task in input order; NaN score = not in the pool.
SCORES_DTYPE = np.dtype([("score", "<f8"), ("tokens", "<i8"), ("id_hash", "<u8")])
#: Stage 2, one row per kept document of a task: its position in the task's input and its place in the ranking.
KEEP_DTYPE = np.dtype([("position", "<i8"), ("order", "<i8")])
SELECTION_FILE = "selection.json"


class BudgetStageError(NAGError, RuntimeError):
    """A budget stage's input is missing, incomplete, or does not match the documents it is run on."""


def scores_name(rank: int) -> str:
    return f"{rank:05d}.nagscores"


def keep_name(rank: int) -> str:
    return f"{rank:05d}.nagkeep"


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """64-bit hashes of document ids (blake2b), to check that stage 3 reads the documents stage 1 scored."""
    return np.array(
        [int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=8).digest(), "little") for i in ids],
        dtype=np.uint64,
    )


def scores_records(scores: Any, tokens: Any, ids: Sequence[str]) -> np.ndarray:
    """Stage-1 records of one task (scores as float64: float32 scores convert exactly, ranks and ties kept)."""
    rows = np.empty(len(ids), SCORES_DTYPE)
    rows["score"] = np.asarray(scores, dtype=np.float64)
    rows["tokens"] = np.asarray(tokens, dtype=np.int64)
    rows["id_hash"] = id_hashes(ids)
    return rows


def write_records(folder: Any, name: str, fmt: str, header: dict[str, Any], records: np.ndarray) -> None:
    """Write ``records`` under a header line naming ``fmt`` and the row count."""
    head = json.dumps({"format": fmt, **header, "rows": len(records)}, sort_keys=True).encode() + b"\n"
    with folder.open(name, "wb") as f:
        f.write(head)
        f.write(np.ascontiguousarray(records).tobytes())


def read_records(folder: Any, name: str, fmt: str, dtype: np.dtype) -> tuple[dict[str, Any], np.ndarray]:
    """The header and records of a file written by :func:`write_records`; refuses missing or cut-short files."""
    if not folder.isfile(name):
        raise BudgetStageError(
            f"{name} is missing from {_where(folder)}: run the stage that writes it first "
            "(all of its tasks must have completed)"
        )
    with folder.open(name, "rb") as f:
        data = f.read()
    head, newline, body = data.partition(b"\n")
    try:
        header = json.loads(head) if newline else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise BudgetStageError(f"{name} in {_where(folder)} is not a {fmt} file")
    rows = int(header["rows"])
    if len(body) != rows * dtype.itemsize:
        raise BudgetStageError(
            f"{name} in {_where(folder)} holds {len(body)} bytes, its header promises {rows} rows "
            f"({rows * dtype.itemsize} bytes): the task that wrote it did not finish; rerun it"
        )
    return header, np.frombuffer(body, dtype=dtype)


def _where(folder: Any) -> str:
    return str(getattr(folder, "path", folder))
