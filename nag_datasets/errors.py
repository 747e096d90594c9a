"""The library's one root exception: every error of ours is a :class:`NAGError` (and keeps its built-in parent).

>>> issubclass(NAGError, Exception)
True
"""

from __future__ import annotations

__all__ = ["NAGError"]


class NAGError(Exception):
    """Root of every exception raised by nag_datasets; the CLI turns it into one line and a non-zero exit."""
