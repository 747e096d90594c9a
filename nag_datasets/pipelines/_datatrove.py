"""datatrove's base classes, or stand-ins that explain how to install it.

datatrove is optional (``pip install 'nag-datasets[datatrove]'``). This module imports without it, so the package
and its import checks work everywhere; constructing one of our steps without it raises
:class:`DatatroveMissingError`, naming the extra.

>>> issubclass(DatatroveMissingError, ImportError)
True
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError

__all__ = [
    "HAVE_DATATROVE",
    "BaseFilter",
    "DatatroveMissingError",
    "PipelineStep",
    "get_datafolder",
    "require_datatrove",
]

INSTALL_HINT = "pip install 'nag-datasets[datatrove]'"


class DatatroveMissingError(MissingDependencyError):
    """datatrove (or a package its readers and writers need) is not installed; the message has the command."""


def require_datatrove(what: str = "the datatrove pipeline steps") -> None:
    """Raise :class:`DatatroveMissingError` unless datatrove 0.10.x imports."""
    if _IMPORT_ERROR is not None:
        raise DatatroveMissingError(f"{what} need datatrove 0.10.x: {INSTALL_HINT} ({_IMPORT_ERROR})")


try:
    from datatrove.io import get_datafolder
    from datatrove.pipeline.base import PipelineStep
    from datatrove.pipeline.filters.base_filter import BaseFilter

    _IMPORT_ERROR: ImportError | None = None
    HAVE_DATATROVE = True
except ImportError as _e:  # the stand-ins below refuse to be built, with the install command
    _IMPORT_ERROR = _e
    HAVE_DATATROVE = False

    class PipelineStep:  # type: ignore[no-redef]
        """Stand-in for ``datatrove.pipeline.base.PipelineStep``: building a step says how to install datatrove."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            require_datatrove(type(self).__name__)

    class BaseFilter(PipelineStep):  # type: ignore[no-redef]
        """Stand-in for ``datatrove.pipeline.filters.base_filter.BaseFilter``."""

    def get_datafolder(data: Any) -> Any:  # type: ignore[misc]
        require_datatrove("datatrove folders")
