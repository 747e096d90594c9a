"""Launcher ranks and the bookkeeping that sharded and streaming runs share: who this process is in a ``torchrun``
/ ``accelerate launch`` job, summed featurization reports, timestamps and the crash-test sleep hook.

>>> world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
(1, 2, 1)
>>> world_from_env({})
(0, 1, 0)
"""

from __future__ import annotations

import datetime as _dt
import os
from typing import Any

from ..errors import NAGError

__all__ = ["FORMAT_VERSION", "ShardError", "world_from_env"]

FORMAT_VERSION = 1
#: Test hook: ``"i"`` or ``"i:seconds"`` makes the process sleep after finishing shard (or part) ``i``.


class ShardError(NAGError, RuntimeError):
    """A shard, part or marker is inconsistent with this run (other input, settings or world size)."""


def world_from_env(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun``, ``accelerate launch`` or deepspeed (else 0, 1, 0)."""
    env = dict(os.environ if env is None else env)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"invalid launcher environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _add_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The sum of shard or part reports (as stored in their markers), as a dict for the JSON summary."""
    from ..featurize.report import FeaturizeReport

    return sum((FeaturizeReport.from_dict(r) for r in reports), FeaturizeReport.empty()).to_dict()
