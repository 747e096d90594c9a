"""``python -m nag_research.evaluate --config small|full --out DIR``."""

from __future__ import annotations

import argparse
import sys

from .cli import register_cli

parser = argparse.ArgumentParser(prog="python -m nag_research.evaluate")
args = parser.parse_args(["evaluate", *sys.argv[1:]]) if register_cli(parser.add_subparsers(dest="command")) else None
sys.exit(args.func(args))
