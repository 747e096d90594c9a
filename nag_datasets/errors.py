"""The package's one exception root: every error raised by ``nag_datasets`` on purpose is a :class:`NAGError`.

Each concrete error also keeps its built-in parent (``ValueError``, ``RuntimeError``, ``ImportError``), so code
that already catches those keeps working, and ``except NAGError`` catches all of ours at once (the CLI does, and
turns it into one ``error: ...`` line with exit status 1).

>>> from nag_datasets.signatures.spec import SpecError
>>> issubclass(SpecError, NAGError) and issubclass(SpecError, ValueError)
True

This module is the lowest layer of the package: it imports nothing.
"""

from __future__ import annotations

__all__ = ["NAGError"]


class NAGError(Exception):
    """Root of every exception defined by ``nag_datasets``."""
