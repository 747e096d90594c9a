"""The token column that ``score`` and ``select`` need: its options, and counting full documents when it is missing.

>>> import argparse
>>> parser = argparse.ArgumentParser()
>>> add_token_options(parser)
>>> vars(parser.parse_args([]))
{'token_column': 'num_tokens', 'tokenizer': None, 'text_column': 'text'}
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_token_options", "ensure_tokens"]


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """``--token-column``, ``--tokenizer`` and ``--text-column``."""
    parser.add_argument("--token-column", default="num_tokens",
                        help="full-document token counts (default num_tokens; counted from --text-column when "
                             "missing)")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer for counting tokens when the column is missing (default: the bundled model's)")
    parser.add_argument("--text-column", default="text", help="the text column tokens are counted from (default text)")


def ensure_tokens(ds: Any, args: argparse.Namespace) -> Any:
    """``ds`` with ``args.token_column``: as it is, or counted (full documents) with ``args.tokenizer`` (default: the
    bundled model's tokenizer) from ``args.text_column``."""
    if args.token_column in ds.column_names:
        return ds
    from transformers import AutoTokenizer

    from ..featurize.models import converted_bundled_dir
    from ..selection.tokens import count_tokens

    source = args.tokenizer or str(converted_bundled_dir()[0])
    print(f"counting full-document tokens with {source} into column {args.token_column!r}", file=sys.stderr)
    return count_tokens(ds, AutoTokenizer.from_pretrained(source), column=args.text_column,
                        out_column=args.token_column)
