"""What launcher-sharded and streaming runs share: who this process is in a ``torchrun`` / ``accelerate launch``
job, what a resumable piece must share with the run that reuses it, the markers they leave, and rank 0's wait for
the other ranks (it polls the shared folder: no process group is needed).

>>> world_from_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
(1, 2, 1)
>>> world_from_env({})
(0, 1, 0)
>>> resolve_world(None, None, env={"RANK": "1", "WORLD_SIZE": "2"})
(1, 2, 1)
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, NAGError
from ..storage import location

__all__ = ["FORMAT_VERSION", "RanksTimeoutError", "ShardError", "featurizer_specs", "now", "read_json",
           "resolve_world", "wait_for_ranks", "world_from_env"]

#: Version of the markers and checkpoints the runners write.
FORMAT_VERSION = 1


class ShardError(NAGError, RuntimeError):
    """A shard, part or marker is inconsistent with this run (other input, settings or world size)."""


class RanksTimeoutError(NAGError, TimeoutError):
    """Rank 0 waited longer than ``wait_timeout`` for the other ranks to finish."""


def world_from_env(env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as set by ``torchrun``, ``accelerate launch`` or deepspeed (else 0, 1, 0)."""
    env = dict(os.environ if env is None else env)
    world = int(env.get("WORLD_SIZE", "1") or 1)
    rank = int(env.get("RANK", "0") or 0)
    local = int(env.get("LOCAL_RANK", str(rank)) or 0)
    if world < 1 or not 0 <= rank < world:
        raise InvalidArgumentError(f"invalid launcher environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world, local


def resolve_world(rank: int | None, world_size: int | None, local_rank: int | None = None, *,
                  env: dict[str, str] | None = None) -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)``: the arguments given, the launcher's environment for the others. A rank
    given without its local rank is its own local rank (one process per GPU on one machine)."""
    env_rank, env_world, env_local = world_from_env(env)
    r = env_rank if rank is None else int(rank)
    world = env_world if world_size is None else int(world_size)
    local = (env_local if r == env_rank else r) if local_rank is None else int(local_rank)
    if world < 1 or not 0 <= r < world:
        raise InvalidArgumentError(f"rank {r} is not within world_size {world}")
    return r, world, local


def now() -> str:
    """The UTC time, as markers record it."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def featurizer_specs(featurizer: Any) -> dict[str, dict[str, Any]]:
    """The specs of the featurizer's columns without the library version: what a piece written earlier must share
    with this run to be reused (an upgrade of the library alone does not redo finished work)."""
    specs = {}
    for column, spec in featurizer.column_specs().items():
        d = spec.to_dict()
        d.pop("library_version", None)
        specs[column] = d
    return specs


def read_json(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON object at ``path`` (local, or an fsspec URL), or None when it is missing, unreadable or no object."""
    try:
        data = json.loads(location.read_text(path) if location.is_remote(path) else Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def wait_for_ranks(read_rank: Callable[[int], dict[str, Any] | None], world: int, *, timeout: float | None,
                   poll: float, where: str) -> list[dict[str, Any]]:
    """Every rank's final record, in rank order: ``read_rank(r)`` gives rank ``r``'s record, or None while it runs
    (it raises :class:`ShardError` for a record of another run). Polls every ``poll`` seconds for up to ``timeout``
    seconds (None: forever); ``where`` names the folder in the timeout's message."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        records = [read_rank(r) for r in range(world)]
        missing = [r for r, record in enumerate(records) if record is None]
        if not missing:
            return records  # type: ignore[return-value]
        if deadline is not None and time.monotonic() > deadline:
            raise RanksTimeoutError(f"ranks {missing} of {world} did not finish within {timeout} s ({where})")
        time.sleep(poll)
