"""``nag-datasets distill SCORED_SAMPLE MODEL_DIR --score-column COL``: train a distilled NAG scorer.

SCORED_SAMPLE is a dataset (folder, parquet or JSON lines) with a text column and a score column made by any NAG
profile (``nag_similarity``, ``nag_contrast_score``, ...); after the held-out share, at least 50 scored rows must
remain for training. MODEL_DIR receives the model, ``distilled.json`` and a
card; score a pool with it through ``nag_datasets.distill.score_dataset``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError, OutputExistsError


def _check_args(args: argparse.Namespace) -> None:
    """Argument checks that need no data, so that a mistake costs nothing."""
    from ..distill.labels import DistillError
    from ..storage.location import check_apart, occupied

    check_apart(args.output, {"the scored sample": args.input, "the profile": args.profile})
    if not Path(args.input).exists():
        raise InputNotFoundError(f"no scored sample at {args.input}")
    if occupied(args.output) and not args.overwrite:
        raise OutputExistsError(f"{args.output} exists; pass --overwrite to replace the scorer saved there")
    if args.model == "fasttext" and _mode(args) == "regress":
        raise DistillError("--mode regress needs --model linear: fastText learns labels only")
    if args.profile is not None and not Path(args.profile).exists():
        raise InputNotFoundError(f"no profile folder at {args.profile}")
    _rule(args)  # share and sampling checked before any data is read


def _mode(args: argparse.Namespace) -> str:
    """``--mode``, else ``--regress``, else the model's own default (linear: regress; fastText: top_share)."""
    from ..distill.models import default_rule_mode

    if args.mode is not None:
        return str(args.mode)
    return "regress" if args.regress else default_rule_mode(args.model)


def _rule(args: argparse.Namespace) -> Any:
    from ..distill.labels import LabelRule

    given = {k: getattr(args, k) for k in ("positive_share", "negatives", "negative_share", "negative_ratio")
             if getattr(args, k) is not None}
    return LabelRule(mode=_mode(args), **given)  # a setting the mode does not use is refused there


def cmd_distill(args: argparse.Namespace) -> int:
    from ..distill.train import distill_dataset
    from ..signatures.formats import load_any

    _check_args(args)
    profile = None
    if args.profile is not None:
        from ..scoring.target_profile import NAGProfile

        profile = NAGProfile.load(args.profile)
    ds = load_any(args.input)
    scorer = distill_dataset(ds, args.output, score_column=args.score_column, text_column=args.text_column,
                             profile=profile, tokenizer=args.tokenizer, rule=_rule(args), model=args.model,
                             seed=args.seed, holdout=args.holdout, overwrite=args.overwrite)
    meta = scorer.meta
    print(json.dumps({"output": args.output, "model": meta["model"], "fingerprint": meta["fingerprint"],
                      "rule": meta["rule"], "sample": meta["sample"], "agreement": meta.get("agreement")}, indent=1))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    p = subparsers.add_parser("distill", help="train a fast text classifier that ranks raw text like NAG scores",
                              description="Train a distilled scorer on a scored sample. After the --holdout share, at "
                                          "least 50 scored rows must remain for training.")
    p.add_argument("input", metavar="SCORED_SAMPLE", help="a scored sample (nag-datasets score): text and score")
    p.add_argument("output", metavar="MODEL_DIR", help="the scorer folder to write")
    p.add_argument("--text-column", default="text", help="the column the scorer reads (default text)")
    p.add_argument("--score-column", required=True, help="the NAG score column (e.g. nag_contrast_score)")
    p.add_argument("--model", choices=("linear", "fasttext"), default="linear",
                   help="linear (default; deterministic) or fasttext (not reproducible with this fastText build)")
    p.add_argument("--positive-share", type=float, default=None,
                   help="top_share labels: the top share of scored rows labelled positive (default 0.2)")
    p.add_argument("--negatives", choices=("rest", "bottom", "sample"), default=None,
                   help="top_share labels: negatives are every other row (rest, default), the bottom "
                        "--negative-share, or a sample of --negative-ratio per positive")
    p.add_argument("--negative-share", type=float, default=None,
                   help="with --negatives bottom: the bottom share labelled negative (default 0.5)")
    p.add_argument("--negative-ratio", type=float, default=None,
                   help="with --negatives sample: negatives sampled per positive (default 4)")
    p.add_argument("--mode", choices=("regress", "top_share"), default=None,
                   help="what the model learns: the score itself (regress, the linear model's default) or top-share "
                        "labels (top_share, fastText's default and only mode)")
    p.add_argument("--regress", action="store_true", help="same as --mode regress")
    p.add_argument("--holdout", type=float, default=0.1,
                   help="share of the scored rows held out for the agreement figures (default 0.1); at least 50 "
                        "scored rows must remain for training")
    p.add_argument("--seed", type=int, default=0, help="seed of the holdout split and the model (default 0)")
    p.add_argument("--profile", default=None, help="the profile folder that made the scores (recorded in the card)")
    p.add_argument("--tokenizer", default=None,
                   help="tokenizer for count_tokens (name, path or 'bundled'; default: the profile's if bundled)")
    p.add_argument("--overwrite", action="store_true", help="replace a scorer saved in MODEL_DIR before")
    p.set_defaults(func=cmd_distill)
