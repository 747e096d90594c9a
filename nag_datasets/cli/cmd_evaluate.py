"""``nag-datasets evaluate``: the retrieval evaluation, which is research code kept outside the wheel.

The harness lives in the repository's ``benchmarks/nag_research`` (``python -m nag_research.evaluate`` from a
checkout with ``benchmarks`` on ``PYTHONPATH``). This command finds it in the checkout an editable install points
at; installed from a wheel, it says so in one line instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from ..errors import NAGError

__all__ = ["ResearchCodeMissingError", "register_cli"]


class ResearchCodeMissingError(NAGError, ImportError):
    """The research package ``nag_research`` (a checkout's ``benchmarks/``) is not importable."""


def _research_cli() -> Any:
    try:
        return importlib.import_module("nag_research.evaluate.cli")
    except ModuleNotFoundError as e:
        if e.name not in ("nag_research", "nag_research.evaluate", "nag_research.evaluate.cli"):
            raise
    checkout = Path(__file__).resolve().parents[2] / "benchmarks"
    if (checkout / "nag_research" / "__init__.py").is_file():
        sys.path.append(str(checkout))
        return importlib.import_module("nag_research.evaluate.cli")
    raise ResearchCodeMissingError(
        "`nag-datasets evaluate` runs the research harness in the repository's benchmarks/nag_research, which is "
        "not part of the installed package: clone the repository and run `PYTHONPATH=benchmarks python -m "
        "nag_research.evaluate --config small --out DIR`")


def cmd_evaluate(args: argparse.Namespace) -> int:
    research = _research_cli()
    configs = importlib.import_module("nag_research.evaluate.harness").CONFIGS
    if args.config not in configs:
        raise NAGError(f"unknown --config {args.config!r}; choose from {sorted(configs)}")
    return int(research.cmd_evaluate(args) or 0)


def register_cli(subparsers: Any) -> None:
    """Add ``evaluate`` (options mirror ``nag_research.evaluate.cli``; the config is checked by the harness)."""
    p = subparsers.add_parser("evaluate", help="compare NAG with embedding, TF-IDF, DSIR and random on real "
                                               "target-retrieval tasks; write report.md, results.json and plots "
                                               "(research code from a checkout's benchmarks/)")
    p.add_argument("--config", default="small", help="small or full (see nag_research.evaluate.harness.CONFIGS)")
    p.add_argument("--out", required=True, help="folder for report.md, results.json and plots/")
    p.add_argument("--cache-dir", default=None,
                   help="feature cache (default $NAG_DATASETS_CACHE/evaluate/features or ~/.cache/nag_datasets/...)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy 2-core machine)")
    p.set_defaults(func=cmd_evaluate)
