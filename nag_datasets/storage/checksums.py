"""The sha256 of a file, read in blocks (shard markers, saved scorers and model weights record it).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "f"
>>> _ = path.write_bytes(b"abc")
>>> sha256_file(path)[:12]
'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_file"]


def sha256_file(path: str | os.PathLike[str], block: int = 1 << 22) -> str:
    """Hex sha256 of the file at ``path``, read ``block`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()
