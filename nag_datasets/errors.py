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

A refusal names the argument to change as the caller wrote it: ``overwrite=True`` from Python, ``--overwrite`` on
the command line (:func:`argument`; the command line runs its commands inside :func:`command_line`).

>>> argument("overwrite=True")
'overwrite=True'
>>> with command_line():
...     argument("overwrite=True"), argument("on_invalid='null'", "--on-invalid null")
('--overwrite', '--on-invalid null')

This module is the lowest layer of the package: it imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

__all__ = ["InputNotFoundError", "InvalidArgumentError", "MissingColumnError", "MissingDependencyError", "NAGError",
           "OutputExistsError", "OverlappingPathsError", "WrongTypeError", "argument", "command_line"]

#: Which front end is calling: ``"python"`` (the library, from code) or ``"cli"`` (``nag-datasets``).
_FRONT_END: contextvars.ContextVar[str] = contextvars.ContextVar("nag_datasets_front_end", default="python")


def argument(python: str, flag: str | None = None) -> str:
    """How a message names an argument: ``python`` (``"overwrite=True"``, ``"top_k"``) when the library is called
    from code, ``flag`` on the command line. Without ``flag`` it is derived: ``name=True`` gives ``--name``, any
    other ``name=value`` gives ``--name value``, a bare ``name`` or ``name=`` gives ``--name`` (underscores become
    dashes)."""
    if _FRONT_END.get() != "cli":
        return python
    if flag is not None:
        return flag
    name, sep, value = python.partition("=")
    option = "--" + name.strip().replace("_", "-")
    return option if not sep or value in ("True", "") else f"{option} {value.strip(chr(39)).strip(chr(34))}"


@contextlib.contextmanager
def command_line() -> Iterator[None]:
    """Inside this block, :func:`argument` names command-line flags (``nag-datasets`` runs every command in it)."""
    token = _FRONT_END.set("cli")
    try:
        yield
    finally:
        _FRONT_END.reset(token)


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


class OverlappingPathsError(NAGError, ValueError):
    """An output that is one of the inputs, lies inside one, or holds one: writing it would destroy what is read."""


class InputNotFoundError(NAGError, FileNotFoundError):
    """An input path that does not exist or does not hold what it should."""


class MissingDependencyError(NAGError, ImportError):
    """An optional package (or data wheel) that a feature needs is not installed; the message has the command."""
