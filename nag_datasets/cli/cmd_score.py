"""``nag-datasets score POOL OUT --profile DIR``: keep every row, add its float32 score and its token count.

The output is a scored pool that anyone can cut at their own r_f (``nag-datasets select OUT SEL --fraction F
--score-column ...`` or ``select_top_fraction(ds, F, token_column=..., score_column=...)``), the way FineWeb-Edu
publishes its classifier scores; ``nag-datasets export OUT FOLDER --config-name scored`` publishes it.

Scores come from one *scorer source*, chosen by a mutually exclusive option: ``--profile DIR`` (NAG scores of the
signature column) or ``--distilled MODEL_DIR`` (a classifier distilled from a NAG ranking, scoring the text column;
see :mod:`nag_datasets.distill`). Each source is an entry of :data:`SOURCES`: the option's ``dest``, a help text,
and a function ``(args, ds) -> (ds, score_column)``.

>>> build = __import__("nag_datasets.cli.app", fromlist=["build_parser"]).build_parser
>>> args = build().parse_args(["score", "pool", "out", "--profile", "p"])
>>> args.profile, args.token_column, args.overwrite
('p', 'num_tokens', False)
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, NamedTuple

from .tokens import add_token_options, ensure_tokens


class ScoreSource(NamedTuple):
    """One way to score a pool: ``--<flag> VALUE`` and the function that adds the score column."""

    flag: str
    dest: str
    help: str
    add_scores: Callable[[argparse.Namespace, Any], tuple[Any, str]]


def _profile_scores(args: argparse.Namespace, ds: Any) -> tuple[Any, str]:
    from ..scoring.target_profile import NAGProfile
    from ..selection.scored import score_pool

    profile = NAGProfile.load(args.profile)
    return score_pool(ds, profile, args.column), profile.score_column


def _distilled_scores(args: argparse.Namespace, ds: Any) -> tuple[Any, str]:
    from ..distill.scorer import DistilledScorer, score_dataset

    scorer = DistilledScorer.load(args.distilled, text_column=args.text_column)
    return score_dataset(ds, scorer, num_proc=args.num_proc), scorer.out_column


#: The scorer sources, in the order the mutually exclusive options are listed.
SOURCES: tuple[ScoreSource, ...] = (
    ScoreSource(
        "--profile",
        "profile",
        "a saved profile folder (paper's or contrastive): NAG scores from the signature column",
        _profile_scores,
    ),
    ScoreSource(
        "--distilled",
        "distilled",
        "a distilled scorer folder (nag-datasets distill): fast scores from the text column, no model pass",
        _distilled_scores,
    ),
)


def _source(args: argparse.Namespace) -> ScoreSource:
    return next(s for s in SOURCES if getattr(args, s.dest, None) is not None)


def cmd_score(args: argparse.Namespace) -> int:
    from ..signatures.formats import check_output, load_any, save_any
    from ..storage.location import check_apart

    source = _source(args)
    check_apart(args.output, {"the input": args.input, f"the {source.flag} folder": getattr(args, source.dest)})
    check_output(args.output, overwrite=args.overwrite)  # before any data or model is loaded
    ds = load_any(args.input)
    ds, score_column = source.add_scores(args, ds)
    ds = ensure_tokens(ds, args)
    save_any(ds, args.output, overwrite=args.overwrite)
    print(
        json.dumps(
            {
                "output": str(args.output),
                "rows": len(ds),
                "score_column": score_column,
                "token_column": args.token_column,
                "scored_by": source.flag,
            },
            indent=1,
        )
    )
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    s = subparsers.add_parser("score", help="keep every pool row and add its score and token count (a scored pool)")
    s.add_argument("input", help="the pool: featurized (with --profile) or text (with --distilled)")
    s.add_argument("output", help="where to write the scored pool, every row kept (folder, .parquet or .jsonl)")
    sources = s.add_mutually_exclusive_group(required=True)
    for source in SOURCES:
        sources.add_argument(source.flag, dest=source.dest, default=None, help=source.help)
    s.add_argument("--column", default=None, help="signature column (default nag_<neuron_type> of the profile)")
    add_token_options(s)
    s.add_argument("--num-proc", type=int, default=None, help="map workers for --distilled (each loads the model once)")
    s.add_argument("--overwrite", action="store_true", help="replace an output this library wrote before")
    s.set_defaults(func=cmd_score)
