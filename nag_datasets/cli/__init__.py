"""The ``nag-datasets`` command line: ``python -m nag_datasets.cli`` or the ``nag-datasets`` script."""

from __future__ import annotations

from .app import build_parser, main

__all__ = ["build_parser", "main"]
