"""Lazy exports for a package's ``__init__``: names load their module on first use, so ``import nag_datasets`` stays
light (no torch, transformers or datasets until something needs them).

>>> getattr_, dir_ = lazy_exports("json", {"JSONDecoder": "decoder"})
>>> getattr_("JSONDecoder") is __import__("json").decoder.JSONDecoder
True
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any

from .errors import NAGError

__all__ = ["UnknownExportError", "lazy_exports"]


class UnknownExportError(NAGError, AttributeError):
    """A package has no such public name (what ``getattr`` raises for a name a package does not export)."""


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``name`` lives in submodule ``exports[name]``."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(f".{exports[name]}", package), name)
        raise UnknownExportError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
