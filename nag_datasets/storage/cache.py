"""The one cache folder of the package and its one environment variable.

Converted models, fetched corpora, cached features and analysis sets all live under :func:`cache_root`:
``$NAG_DATASETS_CACHE`` if set, else ``~/.cache/nag_datasets``.

>>> import os
>>> os.environ[CACHE_ENV] = "/tmp/nag-cache"; str(cache_root())
'/tmp/nag-cache'
>>> del os.environ[CACHE_ENV]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "cache_root"]

CACHE_ENV = "NAG_DATASETS_CACHE"


def cache_root() -> Path:
    """Folder for converted models and fetched corpora (``$NAG_DATASETS_CACHE`` or ``~/.cache/nag_datasets``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "nag_datasets"
