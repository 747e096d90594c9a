"""``nag-datasets select POOL OUT (--profile DIR | --score-column C) --fraction F``: budgeted selection.

With ``--profile`` the pool's signatures are scored against the profile (``--keep-score`` keeps the selected rows'
scores, in the column selection names them: ``nag_similarity`` or ``nag_contrast_score``); with ``--score-column``
a scored pool (``nag-datasets score``) is cut at its precomputed scores. ``--report`` also writes the JSON report.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidArgumentError
from .tokens import add_token_options, ensure_tokens


def cmd_select(args: argparse.Namespace) -> int:
    from ..scoring.target_profile import NAGProfile
    from ..selection.budgeted import select_top_fraction
    from ..signatures.formats import check_output, load_any, save_any
    from ..storage.atomic import atomic_write_text
    from ..storage.location import check_apart, is_remote, write_text

    check_apart(args.output, {"the input": args.input, "the profile": args.profile})
    if args.report is not None:
        check_apart(args.report, {"the input": args.input, "the profile": args.profile, "the output": args.output},
                    output_name="the --report file")
    if not 0.0 <= args.fraction <= 1.0:
        raise InvalidArgumentError(f"--fraction must be within [0, 1], got {args.fraction}")
    if args.keep_score and args.profile is None:
        raise InvalidArgumentError("--keep-score needs --profile (with --score-column the score column is kept anyway)")
    check_output(args.output, overwrite=args.overwrite)  # before any data or model is loaded
    profile = NAGProfile.load(args.profile) if args.profile is not None else None
    ds = ensure_tokens(load_any(args.input), args)
    if args.keep_score:
        from ..selection.scored import score_pool

        ds = score_pool(ds, profile, args.column)
    by = {"profile": profile, "column": args.column} if profile is not None else {"score_column": args.score_column}
    selected, report = select_top_fraction(ds, args.fraction, token_column=args.token_column, method=args.method,
                                           seed=args.seed, return_report=True, **by)
    save_any(selected, args.output, overwrite=args.overwrite)
    if args.report:
        text = json.dumps(report.to_dict(), indent=1)
        if is_remote(args.report):
            write_text(args.report, text)  # one object: it appears whole or not at all
        else:
            atomic_write_text(args.report, text)
    print(json.dumps(report.to_dict(), indent=1))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    s = subparsers.add_parser("select", help="keep the pool documents most similar to a target, within a token budget")
    s.add_argument("input")
    s.add_argument("output")
    by = s.add_mutually_exclusive_group(required=True)
    by.add_argument("--profile", default=None, help="a saved profile folder: score the pool's signatures")
    by.add_argument("--score-column", default=None, help="rank by this precomputed score column (a scored pool)")
    s.add_argument("--keep-score", action="store_true", help="keep the selected rows' scores (with --profile)")
    s.add_argument("--fraction", type=float, required=True)
    add_token_options(s)
    s.add_argument("--column", default=None)
    s.add_argument("--method", choices=("exact", "sampled"), default="exact")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--report", default=None, help="also write the selection report as JSON here")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_select)
