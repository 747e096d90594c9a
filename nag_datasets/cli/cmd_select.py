"""``nag-datasets select POOL_FEATURIZED OUT --profile DIR --fraction F``: budgeted selection, optional JSON report."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _ensure_tokens(ds: Any, token_column: str, tokenizer_name: str | None, text_column: str) -> Any:
    if token_column in ds.column_names:
        return ds
    from transformers import AutoTokenizer

    from ..featurize.models import converted_bundled_dir
    from ..selection.budgeted import count_tokens

    source = tokenizer_name or str(converted_bundled_dir()[0])
    print(f"counting full-document tokens with {source} into column {token_column!r}", file=sys.stderr)
    return count_tokens(ds, AutoTokenizer.from_pretrained(source), column=text_column, out_column=token_column)


def cmd_select(args: argparse.Namespace) -> int:
    from ..scoring.target_profile import NAGProfile
    from ..selection.budgeted import select_top_fraction
    from ..storage.atomic import atomic_write_text
    from ..storage.formats import check_output, load_any, save_any
    from ..storage.location import is_remote, write_text

    if not 0.0 <= args.fraction <= 1.0:
        raise ValueError(f"--fraction must be within [0, 1], got {args.fraction}")
    check_output(args.output, overwrite=args.overwrite)  # before any data or model is loaded
    profile = NAGProfile.load(args.profile)
    ds = _ensure_tokens(load_any(args.input), args.token_column, args.tokenizer, args.text_column)
    selected, report = select_top_fraction(ds, args.fraction, token_column=args.token_column, profile=profile,
                                           column=args.column, method=args.method, seed=args.seed,
                                           return_report=True)
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
    s.add_argument("--profile", required=True)
    s.add_argument("--fraction", type=float, required=True)
    s.add_argument("--token-column", default="num_tokens")
    s.add_argument("--tokenizer", default=None, help="tokenizer for counting tokens when the column is missing")
    s.add_argument("--text-column", default="text")
    s.add_argument("--column", default=None)
    s.add_argument("--method", choices=("exact", "sampled"), default="exact")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--report", default=None, help="also write the selection report as JSON here")
    s.add_argument("--overwrite", action="store_true")
    s.set_defaults(func=cmd_select)
