"""The ``nag-datasets`` command line with the write-stage hook armed, for crash tests (run as a script, also under
torchrun): ``python tests/hooked_cli.py featurize ...``.

It replaces :func:`nag_datasets.storage.atomic.stage_reached` before running the command. Configured by the test
through the environment of the subprocess (the package itself reads none of these):

- ``NAG_TEST_PAUSE_AT=<stage>`` with ``NAG_TEST_PAUSE_MARKER=<file>``: at the first ``<stage>``, write the marker
  (pid and stage) and sleep, so the test can SIGKILL the process there;
- ``NAG_TEST_SLEEP_AFTER_SHARD=<index>:<seconds>``: after shard (or streamed part) ``<index>``, print
  ``[nag_datasets test hook] rank R pid P finished shard I; sleeping`` and sleep.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

PAUSE_ENV = "NAG_TEST_PAUSE_AT"
PAUSE_MARKER_ENV = "NAG_TEST_PAUSE_MARKER"
SLEEP_ENV = "NAG_TEST_SLEEP_AFTER_SHARD"
SCRIPT = Path(__file__).resolve()


def _hook(stage: str, **where: Any) -> None:
    if stage == os.environ.get(PAUSE_ENV):
        marker = os.environ.get(PAUSE_MARKER_ENV)
        if marker:
            Path(marker).write_text(f"{os.getpid()} {stage}\n")
        time.sleep(600)
    sleep = os.environ.get(SLEEP_ENV)
    if stage == "shard:done" and sleep:
        which, _, seconds = sleep.partition(":")
        if int(which) == where["index"]:
            rank = where.get("rank")
            who = "" if rank is None else f"rank {rank} pid {os.getpid()} "
            print(f"[nag_datasets test hook] {who}finished shard {where['index']}; sleeping", flush=True)
            time.sleep(float(seconds or 3600))


if __name__ == "__main__":
    from nag_datasets.cli.app import main
    from nag_datasets.storage import atomic

    atomic.stage_reached = _hook
    sys.exit(main(sys.argv[1:]))
