"""The package's one exception root and its generic errors: everything ``nag_datasets`` raises is a :class:`NAGError`.

Every error also keeps the built-in parent that says what kind of failure it is (``ValueError``, ``TypeError``,
``KeyError``, ``FileExistsError``, ...), as ``datasets.exceptions`` does, so code that catches the built-in keeps
working, and ``except NAGError`` catches all of ours at once: the command line does, and prints one
``error: ...`` line with exit status 1; anything else is a bug and shows its traceback.

The generic errors below cover arguments and paths; errors of one concept sit beside it (``SpecMismatchError`` in
:mod:`nag_datasets.signatures.spec`, ``ProfileError`` in :mod:`nag_datasets.scoring.profile_files`, ...).
``tests/test_errors.py`` fails on any ``raise`` of something else.

>>> from nag_datasets.signatures.spec import SpecError
>>> issubclass(SpecError, NAGError) and issubclass(SpecError, ValueError)
True
>>> str(MissingColumnError("column 'x' not in dataset"))
"column 'x' not in dataset"

This module is the lowest layer of the package: it imports nothing.
"""

from __future__ import annotations

__all__ = ["InputNotFoundError", "InvalidArgumentError", "MissingColumnError", "MissingDependencyError", "NAGError",
           "OutputExistsError", "WrongTypeError"]


class NAGError(Exception):
    """Root of every exception raised by ``nag_datasets``."""


class InvalidArgumentError(NAGError, ValueError):
    """An argument or an input value is out of range or inconsistent (a fraction above 1, a negative token count)."""


class WrongTypeError(NAGError, TypeError):
    """An argument of the wrong kind (a ``DatasetDict`` where one split is needed, a row where a batch is)."""


class MissingColumnError(NAGError, KeyError):
    """A column (or another named field) that is not there; the message lists what is."""

    def __str__(self) -> str:
        # KeyError quotes its argument (it is usually the key alone); ours is a sentence.
        return str(self.args[0]) if self.args else ""


class OutputExistsError(NAGError, FileExistsError):
    """An output that would replace something: an existing output without ``overwrite``, or files not ours."""


class InputNotFoundError(NAGError, FileNotFoundError):
    """An input path that does not exist or does not hold what it should."""


class MissingDependencyError(NAGError, ImportError):
    """An optional package (or data wheel) that a feature needs is not installed; the message has the command."""
