"""The ``nag-datasets`` command line: a thin layer over the library (no logic of its own).

    nag-datasets featurize POOL OUT [--model M] [--neuron-types fwd_up] [--top-k 20] [--num-proc N]
    nag-datasets profile TARGET_FEATURIZED PROFILE_DIR [--column nag_fwd_up] [--description "..."]
    nag-datasets score POOL_FEATURIZED OUT --profile PROFILE_DIR [--token-column num_tokens]
    nag-datasets select POOL_FEATURIZED OUT --profile PROFILE_DIR --fraction 0.2 [--token-column num_tokens]
                        [--keep-score]
    nag-datasets select SCORED_POOL OUT --score-column nag_similarity --fraction 0.2
    nag-datasets demo

Datasets are ``save_to_disk`` folders, parquet files or folders, or ``.jsonl`` files (see
:mod:`nag_datasets.signatures.formats`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nag-datasets", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from . import cmd_demo, cmd_distill, cmd_featurize, cmd_hub, cmd_profile, cmd_score, cmd_select

    for command in (cmd_featurize, cmd_profile, cmd_score, cmd_select, cmd_demo, cmd_hub, cmd_distill):
        command.register_cli(sub)
    return parser


#: Set to 1 to get the traceback of an error instead of its one-line message.
TRACEBACK_ENV = "NAG_DATASETS_TRACEBACK"


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. Every error of the library (:class:`~nag_datasets.errors.NAGError`: a spec mismatch, a bad
    argument, column, token count or model, an existing or foreign output, a missing input, an output another run
    is writing, a failed upload, ...) is caught here, once, and printed as one ``error: ...`` line with exit status
    1, no traceback (``NAG_DATASETS_TRACEBACK=1`` shows it). Anything else is a bug: its traceback shows."""
    import os

    from ..errors import NAGError, command_line

    args = build_parser().parse_args(argv)
    try:
        with command_line():  # refusals name flags (--overwrite), not Python arguments (overwrite=True)
            return int(args.func(args) or 0)
    except NAGError as e:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
