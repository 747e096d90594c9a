"""Reading and writing datasets on disk in the formats the CLI accepts, without losing signature specs.

``save_to_disk`` folders, parquet files (or folders of them) and JSON lines are read; the first two keep the
spec through `datasets`' own metadata. For parquet written by other tools, a ``<file>.spec.json`` sidecar (or
``nag_spec.json`` in the folder) reattaches it. Every path may be an fsspec URL (``s3://``, ``gs://``, ``hf://``,
``memory://``; ``file://`` is local): remote folders are written in place, data first and the completion marker last
(:func:`nag_datasets.storage.atomic.remote_dir`), and a reader refuses one whose writer has not finished.

>>> import tempfile, os
>>> from datasets import Dataset
>>> folder = tempfile.mkdtemp()
>>> save_any(Dataset.from_dict({"text": ["a", "b"]}), os.path.join(folder, "ds"))
>>> load_any(os.path.join(folder, "ds"))["text"][:]
['a', 'b']
>>> save_any(Dataset.from_dict({"text": ["a", "b"]}), "memory://doc/ds")
>>> load_any("memory://doc/ds")["text"][:]
['a', 'b']
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError, InvalidArgumentError, NAGError, OutputExistsError
from ..storage import atomic as _atomic
from ..storage import location
from ..storage.atomic import atomic_write_text, check_complete, check_replaceable, lock_dir, remote_dir, replacing_dir
from .columns import attach_spec, signature_columns
from .embedding_column import attach_embedding_spec, embedding_columns
from .embedding_spec import EmbeddingSpec, spec_from_dict


class OutputIsFolderError(NAGError, IsADirectoryError):
    """A file output (``.parquet``, ``.jsonl``) whose path is a folder."""


SIDECAR = "nag_spec.json"
#: Written inside every ``save_to_disk`` folder :func:`save_any` produces: ``--overwrite`` replaces only such folders.
OUTPUT_MARKER = "nag_datasets.json"
_SAVED_FILES = ("state.json", "dataset_info.json")


def _saved_dataset_file(name: str) -> bool:
    return name in _SAVED_FILES or (name.startswith("data-") and name.endswith(".arrow"))


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and (path / "state.json").is_file() and (path / "dataset_info.json").is_file()


def is_saved_dataset(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` (local path or fsspec URL) is a ``save_to_disk`` folder."""
    if location.is_remote(path):
        return set(_SAVED_FILES) <= set(location.list_names(path))
    return _is_saved_dataset(location.local_path(path))


def load_any(path: str | os.PathLike[str], *, split: str = "train", streaming: bool = False) -> Any:
    """Load a ``save_to_disk`` folder, a parquet file or folder, or a ``.jsonl``/``.json`` file as a Dataset.

    ``streaming=True`` gives an ``IterableDataset`` instead (a saved folder stays memory-mapped; files are read
    as they are iterated).
    """
    import datasets

    if location.is_remote(path):
        return _load_remote(os.fspath(path), split=split, streaming=streaming)
    p = location.local_path(path)
    if not p.exists():
        raise InputNotFoundError(f"no dataset at {p}")
    if _is_saved_dataset(p):
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds[split]
        return ds.to_iterable_dataset() if streaming else ds
    if p.is_dir():
        files: Any = sorted(str(f) for f in p.rglob("*.parquet"))
        if not files:
            raise InvalidArgumentError(f"{p} is neither a save_to_disk folder nor a folder of parquet files")
        builder, sidecar = "parquet", p / SIDECAR
    elif p.suffix.lower() == ".parquet":
        files, builder, sidecar = str(p), "parquet", p.with_name(p.name + ".spec.json")
    elif p.suffix.lower() in (".jsonl", ".json"):
        files, builder, sidecar = str(p), "json", None
    else:
        raise InvalidArgumentError(f"unsupported dataset path {p}: use a save_to_disk folder, .parquet or .jsonl")
    if builder == "parquet" and not streaming and _parquet_rows(files) == 0:
        ds = _empty_parquet(files)  # `load_dataset` refuses a split without rows
    else:
        ds = datasets.load_dataset(builder, data_files=files, split="train", streaming=streaming)
    return _reattach(ds, sidecar) if sidecar is not None else ds


def _load_remote(url: str, *, split: str, streaming: bool) -> Any:
    """:func:`load_any` for a remote URL. Without ``streaming``, parquet and JSON lines are read into memory through
    fsspec (`datasets` would download them, which offline mode refuses); use ``streaming`` for larger inputs."""
    import datasets

    fs, root = location.get_fs(url)
    if not fs.exists(root):
        raise InputNotFoundError(f"no dataset at {url}")
    if fs.isdir(root):
        check_complete(url)
        if is_saved_dataset(url):
            ds = datasets.load_from_disk(_download_saved(fs, root))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[split]
            return ds.to_iterable_dataset() if streaming else ds
        files = location.glob(url, "**/*.parquet")
        if not files:
            raise InvalidArgumentError(f"{url} is neither a save_to_disk folder nor a folder of parquet files")
        builder, sidecar = "parquet", location.join(url, SIDECAR)
    elif url.lower().endswith(".parquet"):
        files, builder, sidecar = [url], "parquet", url + ".spec.json"
    elif url.lower().endswith((".jsonl", ".json")):
        files, builder, sidecar = [url], "json", None
    else:
        raise InvalidArgumentError(f"unsupported dataset path {url}: use a save_to_disk folder, .parquet or .jsonl")
    if streaming:
        ds = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    elif builder == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        from datasets.table import InMemoryTable

        tables = []
        for f in files:
            with fs.open(location.get_fs(f)[1], "rb") as handle:
                tables.append(pq.read_table(handle))
        ds = datasets.Dataset(InMemoryTable(pa.concat_tables(tables) if len(tables) > 1 else tables[0]))
    else:
        stream = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
        ds = datasets.Dataset.from_list(list(stream))
    return _reattach(ds, sidecar) if sidecar is not None else ds


def _download_saved(fs: Any, root: str) -> str:
    """A fresh local copy of the remote ``save_to_disk`` folder ``root`` (in `datasets`' session temp folder).

    `datasets.load_from_disk(url)` copies to a temp path named after the URL and, on a second load in the same
    process, copies into that existing folder and reads the stale first copy; a fresh folder per load avoids it.
    """
    from datasets.fingerprint import get_temporary_cache_files_directory

    local = tempfile.mkdtemp(prefix="remote-", dir=get_temporary_cache_files_directory())
    for entry in fs.ls(root, detail=True):
        if entry["type"] == "file":
            fs.get_file(entry["name"], os.path.join(local, entry["name"].rstrip("/").rsplit("/", 1)[-1]))
    return local


def _parquet_rows(files: Any) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in ([files] if isinstance(files, str) else files))


def _empty_parquet(files: Any) -> Any:
    """A 0-row Dataset with the features recorded in the (first) parquet file's schema."""
    import pyarrow.parquet as pq
    from datasets import Dataset
    from datasets.table import InMemoryTable

    first = files if isinstance(files, str) else files[0]
    return Dataset(InMemoryTable(pq.read_table(first)))


def _reattach(ds: Any, sidecar: Path | str) -> Any:
    """Reattach specs from a sidecar file ``{column: spec}`` (local or remote) to columns that lost theirs."""
    remote = location.is_remote(sidecar)
    if ds.features is None or not (location.isfile(sidecar) if remote else Path(sidecar).is_file()):
        return ds
    import json

    have = {**signature_columns(ds), **embedding_columns(ds)}
    text = location.read_text(sidecar) if remote else Path(sidecar).read_text()
    for column, d in json.loads(text).items():
        if column in ds.column_names and column not in have:
            spec = spec_from_dict(d)
            ds = attach_embedding_spec(ds, spec, column) if isinstance(spec, EmbeddingSpec) else attach_spec(
                ds, spec, column)
    return ds


def column_specs(ds: Any) -> dict[str, dict[str, Any]]:
    """``{column: spec dict}`` of every signature and embedding column of ``ds`` (what a sidecar records)."""
    return {**{c: s.to_dict() for c, s in signature_columns(ds).items()},
            **{c: s.to_dict() for c, s in embedding_columns(ds).items()}}


def check_output(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Refuse now what :func:`save_any` would refuse at the end: an existing output without ``overwrite``, or a folder
    that is not one of our outputs (see :func:`nag_datasets.storage.atomic.check_replaceable`). Lets the CLI fail before
    any expensive work; :func:`save_any` checks again under the output's lock."""
    if location.is_remote(path):
        url = os.fspath(path)
        if url.lower().endswith((".parquet", ".jsonl", ".json")):
            if location.exists(url) and not overwrite:
                raise OutputExistsError(f"{url} exists; pass overwrite=True (--overwrite) to replace it")
        else:
            check_replaceable(url, overwrite=overwrite, marker=OUTPUT_MARKER, ours=_saved_dataset_file,
                              what="dataset folder")
        return
    p = location.local_path(path)
    if p.suffix.lower() in (".parquet", ".jsonl", ".json"):
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
        if p.is_dir():
            raise OutputIsFolderError(f"{p} is a folder; a {p.suffix} output must be a file")
    else:
        check_replaceable(p, overwrite=overwrite, marker=OUTPUT_MARKER, ours=_saved_dataset_file,
                          what="dataset folder")


def save_any(ds: Any, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
    """Write ``ds`` atomically: ``.parquet`` (plus a spec sidecar), ``.jsonl``, else a ``save_to_disk`` folder.

    The output is built in a temporary sibling and renamed into place, under a lock (``<path>.lock``): a concurrent
    write of the same path raises :class:`nag_datasets.storage.atomic.FolderLockedError`, and an interrupted one leaves
    the previous output (or none) plus, at worst, a hidden ``.<name>.tmp-*`` leftover.

    A remote ``path`` (fsspec URL) is written in place, without a lock (one writer at a time): a folder through
    :func:`nag_datasets.storage.atomic.remote_dir` (data, then ``nag_datasets.json`` last), a file as one object
    (its spec sidecar after it).
    """
    import json

    if location.is_remote(path):
        _save_remote(ds, os.fspath(path), overwrite=overwrite)
        return
    p = location.local_path(path)
    suffix = p.suffix.lower()
    folder = suffix not in (".parquet", ".jsonl", ".json")
    if len(ds) == 0 and suffix in (".jsonl", ".json"):
        raise InvalidArgumentError(f"the dataset to write to {p} has 0 rows, and JSON lines cannot record the columns "
                                   f"of an empty dataset: write a folder or a .parquet file instead")
    if folder:
        with replacing_dir(p, overwrite=overwrite, marker=OUTPUT_MARKER, ours=_saved_dataset_file,
                           what="dataset folder") as tmp:
            # One shard even for 0 rows: `datasets` writes no data file for an empty selection otherwise, and such a
            # folder does not load back.
            ds.save_to_disk(str(tmp), **({"num_shards": 1} if len(ds) == 0 else {}))
            _write_marker(tmp / OUTPUT_MARKER)
        return
    with lock_dir(p):
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} exists; pass overwrite=True (--overwrite) to replace it")
        if p.is_dir():
            raise OutputIsFolderError(f"{p} is a folder; a {suffix} output must be a file")
        tmp = Path(tempfile.mkdtemp(prefix=f".{p.name}.tmp-", dir=p.parent))
        try:
            sidecar = p.with_name(p.name + ".spec.json")
            specs = {}
            if suffix == ".parquet":
                ds.to_parquet(str(tmp / p.name))
                specs = column_specs(ds)
                if specs:
                    (tmp / sidecar.name).write_text(json.dumps(specs, indent=1))
            else:
                ds.to_json(str(tmp / p.name), lines=True)
            _atomic.stage_reached("save_any:filled")
            if specs:
                os.replace(tmp / sidecar.name, sidecar)
            elif suffix == ".parquet" and sidecar.is_file():
                sidecar.unlink()  # a stale sidecar of a previous output would describe columns that are gone
            os.replace(tmp / p.name, p)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _save_remote(ds: Any, url: str, *, overwrite: bool) -> None:
    import json

    suffix = "." + url.rsplit(".", 1)[-1].lower() if "." in url.rsplit("/", 1)[-1] else ""
    if suffix not in (".parquet", ".jsonl", ".json"):
        with remote_dir(url, marker=OUTPUT_MARKER, overwrite=overwrite, ours=_saved_dataset_file,
                        what="dataset folder"):
            ds.save_to_disk(url, **({"num_shards": 1} if len(ds) == 0 else {}))
            location.write_text(location.join(url, OUTPUT_MARKER), _marker_text())
        return
    if location.exists(url) and not overwrite:
        raise OutputExistsError(f"{url} exists; pass overwrite=True (--overwrite) to replace it")
    if location.isdir(url):
        raise OutputIsFolderError(f"{url} is a folder; a {suffix} output must be a file")
    sidecar = url + ".spec.json"
    if suffix == ".parquet":
        location.remove(sidecar)  # first: a stale sidecar must never describe the new file
        ds.to_parquet(url)
        specs = column_specs(ds)
        if specs:
            location.write_text(sidecar, json.dumps(specs, indent=1))
    else:
        ds.to_json(url, lines=True)


def _marker_text() -> str:
    import json

    from .. import __version__

    return json.dumps({"format": "nag_datasets.dataset", "format_version": 1, "library_version": __version__}) + "\n"


def _write_marker(path: Path) -> None:
    atomic_write_text(path, _marker_text())
