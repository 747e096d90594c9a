"""The ``nag-datasets`` command line: ``python -m nag_datasets.cli`` or the ``nag-datasets`` script.

``app`` (the parser; errors of the library caught once, as one ``error: ...`` line) and one ``cmd_*`` module per
command.

>>> from nag_datasets.cli import build_parser
>>> build_parser().prog
'nag-datasets'
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "build_parser": "app",
    "main": "app",
}
__all__ = ["build_parser", "main"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
