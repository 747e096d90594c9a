"""``nag-datasets profile TARGET_FEATURIZED PROFILE_DIR``: build and save a target profile."""

from __future__ import annotations

import argparse
import json
from typing import Any


def cmd_profile(args: argparse.Namespace) -> int:
    from ..scoring.target_profile import NAGProfile
    from ..storage.formats import load_any

    ds = load_any(args.input)
    profile = NAGProfile.from_dataset(ds, column=args.column, description=args.description or str(args.input))
    profile.save(args.output)
    print(json.dumps({"output": args.output, "targets": profile.num_targets, "fingerprint": profile.fingerprint(),
                      "skipped_null": profile.skipped_null}, indent=1))
    return 0


def register_cli(subparsers: Any) -> None:
    """Add this command to the ``nag-datasets`` parser's ``subparsers``."""
    p = subparsers.add_parser("profile", help="build a target profile from featurized target documents")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--column", default="nag_fwd_up")
    p.add_argument("--description", default="")
    p.set_defaults(func=cmd_profile)
