"""Crash-safe writes: atomic files and folders, and a lock that refuses a second writer of the same output.

A reader never sees a half-written file or folder: content goes to a temporary sibling first and is renamed into
place only once complete.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(root / "a.txt", "hello")
>>> (root / "a.txt").read_text()
'hello'
>>> with lock_dir(root / "out"), atomic_dir(root / "out") as tmp:
...     _ = (tmp / "part.json").write_text("{}")
>>> sorted(p.name for p in (root / "out").iterdir())
['part.json']
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..errors import NAGError, OutputExistsError, argument
from . import location

__all__ = [
    "PENDING",
    "FolderLockedError",
    "IncompleteOutputError",
    "UnfinishedWriteError",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_complete",
    "check_replaceable",
    "lock_dir",
    "read_versioned_json",
    "recover_interrupted_swap",
    "remote_dir",
    "replacing_dir",
    "write_pending",
]


def stage_reached(stage: str, **where: Any) -> None:
    """A named point of a write; does nothing. The points: ``atomic_write:filled`` and ``atomic_dir:filled`` (content
    complete in the temporary sibling, nothing renamed yet), ``atomic_dir:swapped`` (the old folder moved aside, the
    new one not yet in place), ``save_any:filled`` (a parquet/jsonl output written, not yet renamed), ``shard:done``
    (``index``, ``rank``: a featurization shard or streamed part recorded). Crash tests replace this function in a
    subprocess (``tests/hooked_cli.py``) to stop a writer at an exact point and SIGKILL it there; nothing
    in the package reads an environment variable for it."""


class FolderLockedError(NAGError, RuntimeError):
    """Another process (or another writer in this one) is writing the same output folder."""


class IncompleteOutputError(NAGError, FileNotFoundError):
    """A remote output folder whose writer has not written its completion marker (still running, or killed)."""


class UnfinishedWriteError(NAGError, RuntimeError):
    """A writer's body ended without writing the completion marker it is to write last."""


def _umask() -> int:
    # os.umask can only be read by setting it; restore immediately.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling file, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        stage_reached("atomic_write:filled")
        # mkstemp creates 0600; give the file the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target``, on error it is removed.

    An existing ``target`` folder is moved aside first and deleted only after the new one is in place, so a
    failure at any point leaves either the old or the new complete folder.
    """
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise OutputExistsError(f"{target} exists and is not a folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        stage_reached("atomic_dir:filled")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / target.name)
            stage_reached("atomic_dir:swapped")
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:
                os.replace(old / target.name, target)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def lock_dir(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``<folder>.lock`` while writing ``folder``; raise :class:`FolderLockedError` at once if it is held.

    The lock is an OS file lock (released when the holder exits, even on a crash), so a leftover ``.lock`` file
    never blocks a later run. The holder deletes the file before releasing it, finished or refused, so none is left
    beside the output; a run that locked a file just deleted that way (its inode is no longer at the path) counts
    as having lost the race and is refused like any concurrent writer.
    """
    from filelock import FileLock, Timeout

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    lock_path = folder.with_name(folder.name + ".lock")
    lock = FileLock(str(lock_path))
    busy = (f"another run is writing {folder} (lock {lock_path} is held); wait for it to finish or choose "
            "another output folder")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise FolderLockedError(busy) from None
    fd = getattr(getattr(lock, "_context", None), "lock_file_fd", None)
    try:
        lost = fd is not None and os.stat(lock_path).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        lost = True
    if lost:
        lock.release()
        raise FolderLockedError(busy) from None
    try:
        recover_interrupted_swap(folder)
        yield folder
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        lock.release()


def recover_interrupted_swap(target: str | os.PathLike[str]) -> bool:
    """Finish what a writer killed inside :func:`atomic_dir`'s swap left behind; call it holding :func:`lock_dir`.

    A kill between moving the previous ``target`` aside and renaming the new one into place leaves the previous
    complete folder at ``.<name>.old-*/<name>`` and nothing at ``target``: it is moved back (with a warning) and
    ``True`` is returned. ``.old-*`` folders left beside an existing ``target`` (a kill after the swap) are deleted.
    Hidden ``.tmp-*`` folders of killed writers are left alone (never read; safe to delete).
    """
    import warnings

    target = Path(target)
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    restored = False
    if not target.exists():
        candidates = [p for p in olds if (p / target.name).is_dir()]
        if candidates:
            os.replace(candidates[-1] / target.name, target)
            restored = True
            warnings.warn(f"restored {target} from {candidates[-1]}: an earlier write was killed mid-swap",
                          RuntimeWarning, stacklevel=3)
    for old in olds:
        shutil.rmtree(old, ignore_errors=True)
    return restored


def check_replaceable(folder: str | os.PathLike[str], *, overwrite: bool, marker: str | None,
                      ours: Callable[[str], bool], what: str = "output") -> None:
    """Refuse to write over ``folder`` unless it is absent or an empty folder, or ``overwrite`` and it is one of our
    outputs.

    Ours means: it holds ``marker`` (the file our writers put inside every output; None when the names alone tell)
    and nothing that ``ours(name)`` does not recognise. Anything else is the user's, and is never replaced: the
    refusal names the foreign files. Call it holding :func:`lock_dir` (local folders). ``folder`` may be an fsspec
    URL: a remote folder left incomplete by one of our writers (see :func:`remote_dir`) counts as ours.
    """
    if location.is_remote(folder):
        if not location.exists(folder):
            return
        if not location.isdir(folder):
            raise OutputExistsError(f"{folder} exists and is not a folder; refusing to replace it")
        names = location.list_names(folder)
        if not names:
            return  # object stores hold no empty folders: an empty prefix is no output
        if not overwrite:
            raise OutputExistsError(f"{folder} exists; pass {argument('overwrite=True')} to replace it")
        if PENDING in names:
            names = [n for n in names if n != PENDING]
            if marker is not None and marker not in names:
                names.append(marker)  # an interrupted write of ours: replaceable like a complete one
    else:
        folder = location.local_path(folder)
        if not location.occupied(folder):
            return  # absent, or an empty folder: nothing to lose
        if not overwrite:
            raise OutputExistsError(f"{folder} exists; pass {argument('overwrite=True')} to replace it")
        if not folder.is_dir():
            raise OutputExistsError(f"{folder} exists and is not a folder; refusing to replace it")
        names = sorted(p.name for p in folder.iterdir())
    foreign = [n for n in names if n != marker and not ours(n)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputExistsError(f"refusing to replace {folder} even with overwrite: it holds files that are not a "
                                f"nag_datasets {what} ({shown}); move them away or choose another output")
    if names and marker is not None and marker not in names:
        raise OutputExistsError(f"refusing to replace {folder} even with overwrite: it has no {marker}, so it was not "
                                f"written by nag_datasets as a {what}; delete it yourself or choose another output")


@contextlib.contextmanager
def replacing_dir(folder: str | os.PathLike[str], *, overwrite: bool, marker: str | None,
                  ours: Callable[[str], bool], what: str = "output",
                  refusal: type[NAGError] = OutputExistsError) -> Iterator[Path]:
    """The one way a local output folder is written: hold :func:`lock_dir`, refuse what :func:`check_replaceable`
    refuses (as ``refusal``, e.g. a ``ProfileError``), and yield the temporary folder of :func:`atomic_dir`, which
    replaces ``folder`` when the body succeeds.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "out"
    >>> with replacing_dir(out, overwrite=False, marker="done.json", ours=bool) as tmp:
    ...     _ = (tmp / "done.json").write_text("{}")
    >>> sorted(p.name for p in out.iterdir())
    ['done.json']
    """
    with lock_dir(folder):
        try:
            check_replaceable(folder, overwrite=overwrite, marker=marker, ours=ours, what=what)
        except OutputExistsError as e:
            if refusal is OutputExistsError:
                raise
            raise refusal(str(e)) from None
        with atomic_dir(folder) as tmp:
            yield tmp


def read_versioned_json(
    path: Path | str, *, fmt: str, version: int | tuple[int, ...], error: type[NAGError], what: str
) -> dict[str, Any]:
    """Read one of our JSON description files, checking its ``format`` and ``format_version``.

    Corrupt, truncated or foreign files raise ``error`` with a message naming the file (never a bare
    ``JSONDecodeError``); the caller checks the fields it needs.
    """
    import json

    try:
        meta = json.loads(location.read_text(path) if location.is_remote(path) else Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path} is not valid JSON (corrupt or truncated): {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        raise error(f"{path} is not a nag_datasets {what}")
    versions = (version,) if isinstance(version, int) else tuple(version)
    if meta.get("format_version") not in versions:
        readable = " or ".join(str(v) for v in versions)
        raise error(f"{path} has format_version {meta.get('format_version')!r}; this library reads {readable}")
    return meta


# -- remote folders ----------------------------------------------------------------------------------------------

#: Written first into a remote output folder by :func:`remote_dir` and deleted after the completion marker.
PENDING = ".nag_pending.json"


@contextlib.contextmanager
def remote_dir(url: str, *, marker: str, overwrite: bool, ours: Callable[[str], bool],
               what: str = "output") -> Iterator[str]:
    """Write the remote folder ``url`` in place: object stores have no atomic rename, so data goes first and the
    completion ``marker`` last; yields ``url``. The body writes its data, then ``marker``.

    Order: refuse like :func:`check_replaceable`; write ``.nag_pending.json`` (who writes, which marker ends the
    write); delete the previous marker, then the previous files; run the body; check that ``marker`` exists;
    delete the pending file. A reader (:func:`check_complete`) refuses a folder whose pending file names a marker
    that is absent. A body that raises removes a folder it created; a killed writer leaves it marked incomplete,
    and a rerun with ``overwrite`` replaces it. There is no lock: one writer per remote output at a time.

    >>> with remote_dir("memory://doc/remote_out", marker="done.json", overwrite=False, ours=bool) as url:
    ...     location.write_text(location.join(url, "data.txt"), "rows")
    ...     location.write_text(location.join(url, "done.json"), "{}")
    >>> location.list_names("memory://doc/remote_out")
    ['data.txt', 'done.json']
    """
    check_replaceable(url, overwrite=overwrite, marker=marker, ours=ours, what=what)
    existed = bool(location.list_names(url))
    pending = write_pending(url, marker=marker, what=what)
    if existed:
        location.remove(location.join(url, marker))  # first: from here on a reader sees an incomplete folder
        for name in location.list_names(url):
            if name != PENDING:
                location.remove(location.join(url, name), recursive=True)
    try:
        yield url
    except BaseException:
        if not existed:
            with contextlib.suppress(OSError):
                location.remove(url, recursive=True)
        raise
    if not location.exists(location.join(url, marker)):
        raise UnfinishedWriteError(f"the writer of {url} finished without writing its completion marker {marker}")
    location.remove(pending)


def write_pending(url: str, *, marker: str, what: str) -> str:
    """Write :data:`PENDING` into the remote folder ``url`` (who writes, and which ``marker`` will end the write);
    returns its URL. Until ``marker`` exists, :func:`check_complete` refuses the folder."""
    import json
    import socket

    pending = location.join(url, PENDING)
    info = {"format": "nag_datasets.pending", "marker": marker, "what": what, "host": socket.gethostname(),
            "pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    location.write_text(pending, json.dumps(info))
    return pending


def check_complete(url: str | os.PathLike[str]) -> None:
    """Raise :class:`IncompleteOutputError` if ``url`` is a remote folder one of our writers has not finished.

    A folder counts as incomplete while it holds :data:`PENDING` and not the completion marker that file names.
    Folders without a pending file (complete outputs, other tools' data) pass; local paths always pass (local
    writers rename complete folders into place).
    """
    import json

    if not location.is_remote(url):
        return
    names = location.list_names(url)
    if PENDING not in names:
        return
    try:
        info = json.loads(location.read_text(location.join(url, PENDING)))
    except (OSError, ValueError):
        info = {}
    marker = info.get("marker") if isinstance(info, dict) else None
    if marker in names:
        return
    raise IncompleteOutputError(
        f"{url} is incomplete: a nag_datasets writer (host {info.get('host')}, pid {info.get('pid')}, started "
        f"{info.get('started')}) has not written its completion marker {marker}; it is still running or was "
        "interrupted: wait for it, rerun it, or replace the output with --overwrite")
