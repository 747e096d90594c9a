"""Storage: what every layer writes through and reads from, knowing nothing of signatures or models.

``location`` (local paths and fsspec URLs), ``atomic`` (crash-safe files and folders, locks, the marker-last
protocol of remote folders), ``cache`` (the one cache folder), ``checksums`` (sha256 of files), ``remote`` (what the
Hub's client raises, token scrubbing).

>>> from nag_datasets.storage import is_remote
>>> is_remote("s3://bucket/pool"), is_remote("/tmp/pool")
(True, False)
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "FolderLockedError": "atomic",
    "IncompleteOutputError": "atomic",
    "atomic_dir": "atomic",
    "atomic_write_bytes": "atomic",
    "atomic_write_text": "atomic",
    "lock_dir": "atomic",
    "cache_root": "cache",
    "sha256_file": "checksums",
    "is_remote": "location",
    "local_path": "location",
}
__all__ = ["FolderLockedError", "IncompleteOutputError", "atomic_dir", "atomic_write_bytes", "atomic_write_text",
           "cache_root", "is_remote", "local_path", "lock_dir", "sha256_file"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
