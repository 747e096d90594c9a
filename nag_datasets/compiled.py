"""Compiled loops: ``numba.njit`` with an on-disk cache where a cache folder is writable.

The package's hot loops (the scoring kernel, the budget cut's masked sums, the null check of Arrow bitmaps) are
plain Python functions compiled with :func:`jit`; each has a numpy reference or a docstring example beside it.

>>> @jit(nogil=True)
... def total(xs):
...     s = 0
...     for x in xs:
...         s += x
...     return s
>>> import numpy as np
>>> int(total(np.arange(5)))
10
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["jit"]


def jit(**options: Any) -> Callable[[Any], Any]:
    """``numba.njit(cache=True, **options)``, or without the cache when no cache folder is writable."""
    from numba import njit

    def decorate(fn: Any) -> Any:
        try:
            return njit(cache=True, **options)(fn)
        except RuntimeError:
            # numba raises at decoration when neither __pycache__, NUMBA_CACHE_DIR nor the user cache is
            # writable; compiling on each start is slower but correct.
            return njit(cache=False, **options)(fn)

    return decorate
