"""``nag-datasets select POOL OUT (--profile DIR | --score-column C) --fraction F``: budgeted selection.

With ``--profile`` the pool's signatures are scored against the profile (``--keep-score`` keeps the selected rows'
scores, in the column selection names them: ``nag_similarity`` or ``nag_contrast_score``); with ``--score-column``
a scored pool (``nag-datasets score``, ``score_dataset``) is cut at its precomputed scores: a column that records the
profile or scorer that made it, unless ``--any-score-column``. It prints a short summary (documents and tokens kept,
threshold, where the report is); the full report (spec, profile, weighting) rides with the selection as its recipe
(``nag_datasets.get_recipe``) and ``--report FILE`` also writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidArgumentError
from .tokens import add_token_options, ensure_tokens


def _check_score_column(ds: Any, args: argparse.Namespace) -> None:
    """A score column must record the profile or scorer that wrote it (``score``, ``distill``), unless
    ``--any-score-column``: ranking by ``id`` or ``num_tokens`` is a mistake far more often than a plan."""
    from ..errors import MissingColumnError
    from ..selection.recipe import get_score_info

    column = args.score_column
    if column not in ds.column_names:
        raise MissingColumnError(f"--score-column {column!r} is not a column of {args.input}; columns: "
                                 f"{ds.column_names}")
    if not args.any_score_column and get_score_info(ds, column) is None:
        recorded = [c for c in ds.column_names if get_score_info(ds, c) is not None]
        raise InvalidArgumentError(
            f"--score-column {column!r} is not a recorded score column (its feature records no profile or scorer, as "
            f"`nag-datasets score` writes); recorded score columns here: {recorded or 'none'}. Pass "
            "--any-score-column to rank by it anyway")


def cmd_select(args: argparse.Namespace) -> int:
    import warnings

    from ..scoring.target_profile import NAGProfile
    from ..selection.budgeted import UnrecordedScoreColumnWarning, select_top_fraction
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
    if args.column is not None and args.profile is None:
        raise InvalidArgumentError("--column names the signature column a profile scores: it needs --profile")
    if args.any_score_column and args.score_column is None:
        raise InvalidArgumentError("--any-score-column goes with --score-column")
    if args.seed is not None and args.method != "sampled":
        raise InvalidArgumentError("--seed draws the sample of --method sampled; --method exact draws none")
    check_output(args.output, overwrite=args.overwrite)  # before any data or model is loaded
    profile = NAGProfile.load(args.profile) if args.profile is not None else None
    ds = ensure_tokens(load_any(args.input), args)
    if args.score_column is not None:
        _check_score_column(ds, args)
    if args.keep_score:
        from ..selection.scored import score_pool

        ds = score_pool(ds, profile, args.column)
    by = {"profile": profile, "column": args.column} if profile is not None else {"score_column": args.score_column}
    with warnings.catch_warnings():
        if args.any_score_column:  # asked for: the warning would only repeat the flag
            warnings.simplefilter("ignore", UnrecordedScoreColumnWarning)
        selected, report = select_top_fraction(ds, args.fraction, token_column=args.token_column, method=args.method,
                                               seed=args.seed, return_report=True, **by)
    save_any(selected, args.output, overwrite=args.overwrite)
    if args.report:
        text = json.dumps(report.to_dict(), indent=1)
        if is_remote(args.report):
            write_text(args.report, text)  # one object: it appears whole or not at all
        else:
            atomic_write_text(args.report, text)
    print(json.dumps(_summary(report, args), indent=1))
    return 0


def _summary(report: Any, args: argparse.Namespace) -> dict[str, Any]:
    """What a person reads after a selection; the spec, profile and weighting are in the report."""
    return {
        "output": str(args.output),
        "documents_selected": report.documents_selected,
        "pool_documents": report.pool_documents,
        "tokens_selected": report.tokens_selected,
        "pool_tokens": report.pool_tokens,
        "fraction": report.fraction,
        "achieved_fraction": round(report.achieved_fraction, 6),
        "threshold": report.threshold,
        "ranked_by": report.score_column or f"{report.score_kind} score of profile {report.profile_fingerprint}",
        "null_rows_skipped": report.null_rows_skipped,
        "report": str(args.report) if args.report else
        "in the selection's recipe: nag_datasets.get_recipe(load_any(OUTPUT)); --report FILE writes it as JSON",
    }


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    s = subparsers.add_parser("select", help="keep the pool documents most similar to a target, within a token budget")
    s.add_argument("input", help="the pool: featurized (with --profile) or scored (with --score-column)")
    s.add_argument("output", help="where to write the selection (folder, .parquet or .jsonl)")
    by = s.add_mutually_exclusive_group(required=True)
    by.add_argument("--profile", default=None, help="a saved profile folder: score the pool's signatures")
    by.add_argument("--score-column", default=None,
                    help="rank by this precomputed score column of a scored pool (one that records its profile or "
                         "scorer, unless --any-score-column)")
    s.add_argument("--any-score-column", action="store_true",
                   help="accept a --score-column that records no profile or scorer (a column of your own)")
    s.add_argument("--keep-score", action="store_true", help="keep the selected rows' scores (with --profile)")
    s.add_argument("--fraction", type=float, required=True, help="share of the pool's tokens to keep, in [0, 1]")
    add_token_options(s)
    s.add_argument("--column", default=None,
                   help="signature column scored by --profile (default nag_<the profile's neuron type>)")
    s.add_argument("--method", choices=("exact", "sampled"), default="exact",
                   help="exact budget cut (default) or a threshold estimated on a seeded sample of 100,000 rows")
    s.add_argument("--seed", type=int, default=None, help="seed of --method sampled's sample (default 0)")
    s.add_argument("--report", default=None, help="also write the full selection report as JSON here")
    s.add_argument("--overwrite", action="store_true", help="replace an output this library wrote before")
    s.set_defaults(func=cmd_select)
