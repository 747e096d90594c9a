"""Where data lives: local paths, ``file://`` URLs and remote fsspec URLs (``hf://``, ``s3://``, ``gs://``, ...).

Every path the library takes may be an fsspec URL. ``file://`` URLs are local paths (they get the local, atomic
rename writers); any other protocol is *remote* (``local://`` too: fsspec's local filesystem used like an object
store) and goes through the filesystem ``fsspec`` resolves for it, with credentials from that filesystem's usual
sources (environment, config files; ``hf://`` uses ``huggingface_hub``'s token).

>>> is_remote("s3://bucket/pool"), is_remote("file:///tmp/pool"), is_remote("/tmp/pool")
(True, False, False)
>>> local_path("file:///tmp/pool").as_posix()
'/tmp/pool'
>>> join("memory://x/out", "part-000000.parquet")
'memory://x/out/part-000000.parquet'
>>> write_text("memory://doc-location/a.json", "{}"); read_text("memory://doc-location/a.json")
'{}'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError, OverlappingPathsError

__all__ = ["PathLike", "check_apart", "exists", "get_fs", "glob", "is_remote", "isdir", "isfile", "join", "list_names",
           "local_path", "occupied", "read_bytes", "read_text", "remove", "require_local", "write_bytes",
           "write_text"]

PathLike = str | os.PathLike[str]
_LOCAL_PROTOCOLS = ("file",)


def _protocol(path: PathLike) -> str | None:
    text = os.fspath(path)
    if "://" not in text:
        return None
    return text.split("://", 1)[0].split("::")[-1].lower()


def is_remote(path: PathLike) -> bool:
    """Whether ``path`` is an fsspec URL of a non-local filesystem (``file://`` counts as local)."""
    protocol = _protocol(path)
    return protocol is not None and protocol not in _LOCAL_PROTOCOLS


def local_path(path: PathLike) -> Path:
    """``path`` as a local :class:`~pathlib.Path` (``file://`` stripped); a remote URL raises
    :class:`~nag_datasets.errors.InvalidArgumentError`."""
    if is_remote(path):
        raise InvalidArgumentError(f"{path} is a remote URL, not a local path")
    text = os.fspath(path)
    if _protocol(text) is not None:
        from fsspec.core import url_to_fs

        return Path(url_to_fs(text)[1])
    return Path(text)


def require_local(path: PathLike, what: str) -> Path:
    """``path`` as a local Path; a remote URL raises :class:`~nag_datasets.errors.InvalidArgumentError` saying that
    ``what`` needs a local folder.

    >>> require_local("s3://b/x", "a card")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nag_datasets.errors.InvalidArgumentError: a card needs a local folder, not the remote URL s3://b/x (work on a ...
    """
    if is_remote(path):
        raise InvalidArgumentError(f"{what} needs a local folder, not the remote URL {os.fspath(path)} (work on a "
                                   f"local copy, then upload it)")
    return local_path(path)


def get_fs(url: PathLike, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """``(filesystem, path inside it)`` for ``url`` (``fsspec.core.url_to_fs``)."""
    from fsspec.core import url_to_fs

    return url_to_fs(os.fspath(url), **(storage_options or {}))


def join(url: PathLike, *names: str) -> str:
    """``url`` with ``names`` appended, ``/``-separated (local paths too; no normalisation)."""
    return "/".join([os.fspath(url).rstrip("/"), *names])


def glob(url: PathLike, pattern: str) -> list[str]:
    """URLs (with ``url``'s protocol) of the files under the folder ``url`` matching ``pattern``, sorted.

    >>> write_text("memory://doc-glob/a/x.parquet", ""); glob("memory://doc-glob", "**/*.parquet")
    ['memory://doc-glob/a/x.parquet']
    """
    fs, root = get_fs(url)
    text = os.fspath(url)
    protocol = text.split("://", 1)[0]
    base = text.rstrip("/")
    root = root.rstrip("/")
    found = sorted(fs.glob(f"{root}/{pattern}"))
    return [f"{protocol}://{p}" if not p.startswith(root) else base + p[len(root):] for p in found]


def exists(url: PathLike) -> bool:
    fs, p = get_fs(url)
    return bool(fs.exists(p))


def isdir(url: PathLike) -> bool:
    fs, p = get_fs(url)
    return bool(fs.isdir(p))


def isfile(url: PathLike) -> bool:
    fs, p = get_fs(url)
    return bool(fs.isfile(p))


def occupied(url: PathLike) -> bool:
    """Whether an output at ``url`` would replace something: it exists and is not an empty folder (an empty folder,
    like an empty prefix of an object store, holds nothing to lose).

    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> occupied(folder), occupied(folder + "/missing")
    (False, False)
    """
    if is_remote(url):
        fs, p = get_fs(url)
        return bool(fs.exists(p)) and (not fs.isdir(p) or bool(list_names(url)))
    path = local_path(url)
    if path.is_dir() and not path.is_symlink():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def _place(url: PathLike) -> tuple[str, tuple[str, ...]]:
    """``(filesystem, path parts)`` of ``url``, normalised so that two names of one place compare equal: local paths
    (``file://`` and fsspec's ``local://`` too) resolved absolutely with symlinks followed, other URLs by protocol and
    normalised path."""
    import posixpath

    text = os.fspath(url)
    if is_remote(text):
        from fsspec.implementations.local import LocalFileSystem

        try:
            fs, inner = get_fs(text)
        except (ImportError, ValueError):  # a filesystem not installed here: compare the URLs as written
            protocol, inner = text.split("://", 1)
            return protocol.split("::")[-1].lower(), tuple(p for p in posixpath.normpath("/" + inner).split("/") if p)
        if not isinstance(fs, LocalFileSystem):
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            return protocol, tuple(p for p in posixpath.normpath("/" + inner.strip("/")).split("/") if p)
        text = inner
    return "file", Path(local_path(text)).expanduser().resolve().parts


def check_apart(output: PathLike, inputs: dict[str, PathLike | None], *, output_name: str = "the output") -> None:
    """Refuse an ``output`` that is one of ``inputs`` (``{what: path}``; None entries are skipped), lies inside one or
    holds one: writing it would replace or change data that is being read. Local paths and URLs alike (the same
    filesystem); nothing is read.

    >>> check_apart("pool/selected", {"the input": "pool"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    nag_datasets.errors.OverlappingPathsError: the output pool/selected lies inside the input pool: ...
    """
    out_fs, out_parts = _place(output)
    for what, path in inputs.items():
        if path is None:
            continue
        in_fs, in_parts = _place(path)
        if in_fs != out_fs:
            continue
        if in_parts == out_parts:
            same_text = os.fspath(path) == os.fspath(output)
            relation = f"is also {what}" + ("" if same_text else f" ({os.fspath(path)})")
        elif in_parts == out_parts[: len(in_parts)]:
            relation = f"lies inside {what} {os.fspath(path)}"
        elif out_parts == in_parts[: len(out_parts)]:
            relation = f"holds {what} {os.fspath(path)}"
        else:
            continue
        raise OverlappingPathsError(f"{output_name} {os.fspath(output)} {relation}: writing it would replace or change "
                                    "data that is being read; choose an output outside every input")


def list_names(url: PathLike) -> list[str]:
    """Names of the entries directly inside the folder ``url`` (empty when it does not exist)."""
    fs, p = get_fs(url)
    if not fs.isdir(p):
        return []
    return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in fs.ls(p, detail=False))


def read_bytes(url: PathLike) -> bytes:
    fs, p = get_fs(url)
    with fs.open(p, "rb") as f:
        return f.read()


def read_text(url: PathLike, encoding: str = "utf-8") -> str:
    return read_bytes(url).decode(encoding)


def write_bytes(url: PathLike, data: bytes) -> None:
    """Write one object (on object stores a single PUT: it appears whole or not at all)."""
    fs, p = get_fs(url)
    parent = p.rsplit("/", 1)[0] if "/" in p else ""
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(p, "wb") as f:
        f.write(data)


def write_text(url: PathLike, text: str, encoding: str = "utf-8") -> None:
    write_bytes(url, text.encode(encoding))


def remove(url: PathLike, recursive: bool = False) -> None:
    """Delete ``url`` (a file, or a folder with ``recursive``); nothing there is not an error."""
    fs, p = get_fs(url)
    if fs.exists(p):
        fs.rm(p, recursive=recursive)
