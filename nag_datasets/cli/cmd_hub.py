"""``nag-datasets export``, ``push`` and ``card``: publish a selection or a scored pool, each as a config of one
dataset repo (see :mod:`nag_datasets.hub`)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import InvalidArgumentError
from ..hub.export import export_for_hub, regenerate_card
from ..hub.templates import CARD_FILE, DEFAULT_MAX_SHARD_SIZE
from ..hub.upload import push_to_hub
from ..scoring.target_profile import NAGProfile


def _load_input(path: str) -> Any:
    from ..signatures.formats import load_any

    return load_any(path)


def _cmd_export(args: argparse.Namespace) -> int:
    from ..hub.export import _check_target
    from ..storage.location import check_apart, join

    check_apart(args.output, {"the input": args.input, "the profile": args.profile})
    _check_config(args.config_name)
    _check_target(args.output, args.overwrite, args.config_name)  # before reading anything
    selected = _load_input(args.input)
    profile = NAGProfile.load(args.profile) if args.profile else None
    # An existing or locked output is reported by `cli.main` (one line, exit 1).
    folder = export_for_hub(selected, args.output, license=args.license, source_datasets=args.source_dataset,
                            pretty_name=args.pretty_name, source_column=args.source_column,
                            token_column=args.token_column, profile=profile, overwrite=args.overwrite,
                            language=args.language, config_name=args.config_name,
                            max_shard_rows=args.max_shard_rows, max_shard_size=_shard_size(args.max_shard_size))
    print(json.dumps({"output": str(folder), "config": args.config_name, "rows": len(selected),
                      "card": join(folder, CARD_FILE)}, indent=1))
    return 0


def _check_config(name: str) -> None:
    from ..hub.configs import DEFAULT_CONFIG, check_config_name

    if name != DEFAULT_CONFIG:
        check_config_name(name)


def _cmd_push(args: argparse.Namespace) -> int:
    from ..storage.location import check_apart

    if args.folder is not None:
        check_apart(args.folder, {"the input": args.input, "the profile": args.profile}, output_name="--folder")
    _check_config(args.config_name)
    if args.create_pr and args.revision is not None:
        raise InvalidArgumentError("pass either --revision or --create-pr: a pull request is opened against the "
                                   "default branch")
    selected = _load_input(args.input)
    profile = NAGProfile.load(args.profile) if args.profile else None
    # Errors (HubPublishError, an existing or locked output) are reported by `cli.main` (one line, exit 1).
    url = push_to_hub(selected, args.repo_id, private=not args.public, folder=args.folder, license=args.license,
                      source_datasets=args.source_dataset, pretty_name=args.pretty_name,
                      source_column=args.source_column, token_column=args.token_column, profile=profile,
                      overwrite=args.overwrite, language=args.language, config_name=args.config_name,
                      revision=args.revision, create_pr=args.create_pr, max_shard_rows=args.max_shard_rows,
                      max_shard_size=_shard_size(args.max_shard_size))
    print(json.dumps({"repo" if not args.create_pr else "pull_request": url, "config": args.config_name,
                      "private": not args.public}, indent=1))
    return 0


def _cmd_card(args: argparse.Namespace) -> int:
    settings = {k: v for k, v in (("license", args.license), ("source_datasets", args.source_dataset or None),
                                  ("language", args.language or None), ("pretty_name", args.pretty_name))
                if v is not None}
    path = regenerate_card(args.folder, **settings)  # a missing or bad recipe: one line from `cli.main`
    print(json.dumps({"card": str(path)}, indent=1))
    return 0


def _shard_size(value: str) -> str | None:
    """``--max-shard-size``: bytes (``1000000``), a size (``500MB``), or ``none`` for no limit."""
    return None if value.lower() == "none" else value


def _card_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--license", default=None,
                   help="the source data's license as a Hub id (default: what the export's other configs record, "
                        "else unknown); shared by every config")
    p.add_argument("--source-dataset", action="append", default=None,
                   help="a source dataset id (repeatable; default: what the export's other configs record)")
    p.add_argument("--pretty-name", default=None, help="the card's title (default: what the other configs record)")
    p.add_argument("--source-column", default=None, help="column naming each row's source (per-source shares)")
    p.add_argument("--token-column", default=None, help="column of token counts (exact token totals)")
    p.add_argument("--profile", default=None, help="profile folder: score the selection for the card's figure")
    p.add_argument("--overwrite", action="store_true", help="replace the same config of a previous export")
    p.add_argument("--language", action="append", default=None,
                   help="a language of the data, ISO code (repeatable; default: what the other configs record)")
    p.add_argument("--config-name", default="default",
                   help="publish as this config (e.g. 'scored' for a scored pool); other configs stay")
    p.add_argument("--max-shard-size", default=DEFAULT_MAX_SHARD_SIZE,
                   help=f"largest shard, as push_to_hub: bytes or a size like 500MB (default {DEFAULT_MAX_SHARD_SIZE})")
    p.add_argument("--max-shard-rows", type=int, default=None, help="also at most this many rows per shard")


def register_cli(subparsers: Any) -> None:
    """Add the ``export``, ``push`` and ``card`` subcommands to the ``nag-datasets`` parser's ``subparsers``."""
    e = subparsers.add_parser("export", help="write a selection as a Hub-ready folder (parquet, recipe, card)")
    e.add_argument("input", help="the selected dataset (save_to_disk folder, parquet or jsonl)")
    e.add_argument("output", help="the folder to write")
    _card_options(e)
    e.set_defaults(func=_cmd_export)

    p = subparsers.add_parser("push", help="export a selection and upload it to the Hub (private by default)")
    p.add_argument("input", help="the selected dataset (save_to_disk folder, parquet or jsonl)")
    p.add_argument("repo_id", help="the dataset repo, e.g. your-org/nag-subset (created if missing)")
    p.add_argument("--public", action="store_true", help="create the repo public (default: private)")
    p.add_argument("--folder", default=None, help="where to keep the local export (default: a temporary folder)")
    _card_options(p)
    p.add_argument("--revision", default=None, help="commit to this branch (created if missing)")
    p.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing to main")
    p.set_defaults(func=_cmd_push)

    c = subparsers.add_parser("card", help="rebuild README.md and the figure of an export from nag_recipe.json")
    c.add_argument("folder", help="an export folder (written by nag-datasets export)")
    c.add_argument("--license", default=None, help="replace the stored license (every config)")
    c.add_argument("--pretty-name", default=None, help="replace the stored title (every config)")
    c.add_argument("--source-dataset", action="append", default=None, help="replace the stored source datasets")
    c.add_argument("--language", action="append", default=None, help="replace the stored languages (repeatable)")
    c.set_defaults(func=_cmd_card)
