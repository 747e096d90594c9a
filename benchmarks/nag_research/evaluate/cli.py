"""The research harness's own command line, ``python -m nag_research.evaluate --config small|full --out DIR`` (see
:mod:`.__main__`); :func:`register_cli` adds it as an ``evaluate`` subcommand to any ``argparse`` parser."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .harness import run_evaluation

    run_evaluation(args.config, args.out, cache_dir=args.cache_dir, torch_threads=args.threads)
    return 0


def register_cli(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to an ``argparse`` subparsers object."""
    from .harness import CONFIGS

    p = subparsers.add_parser("evaluate", help="compare NAG with embedding, TF-IDF, DSIR and random on real "
                                               "target-retrieval tasks; write report.md, results.json and plots")
    p.add_argument("--config", choices=sorted(CONFIGS), default="small")
    p.add_argument("--out", required=True, help="folder for report.md, results.json and plots/")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache (default $NAG_DATASETS_CACHE/evaluate/features or ~/.cache/nag_datasets/...)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy 2-core machine)")
    p.set_defaults(func=cmd_evaluate)
    return p
