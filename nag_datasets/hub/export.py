"""Exporting a selection as a Hub-ready folder: a selected subset with a card that says exactly how it was chosen.

:func:`export_for_hub` writes everything locally (parquet shards, ``nag_recipe.json``, ``score_distribution.png`` and
a ``README.md`` card rendered from ``hub_cards/``); :func:`~nag_datasets.hub.upload.push_to_hub` exports first and
then uploads the folder. :func:`regenerate_card` rebuilds the card from ``nag_recipe.json``. A folder (or repo) can
hold several configs, e.g. a selection and the scored pool it was cut from (:mod:`nag_datasets.hub.configs`).

>>> import tempfile, pathlib, numpy as np
>>> from datasets import Dataset
>>> from nag_datasets.selection.budgeted import select_top_fraction
>>> pool = Dataset.from_dict({"text": ["a", "b", "c"], "score": [0.2, 0.9, 0.5], "num_tokens": [4, 4, 4]})
>>> selected = select_top_fraction(pool, 0.7, token_column="num_tokens", score_column="score")
>>> folder = export_for_hub(selected, pathlib.Path(tempfile.mkdtemp()) / "out", license="cc-by-4.0")
>>> sorted(p.name for p in folder.iterdir())
['README.md', 'data', 'nag_recipe.json', 'score_distribution.png']
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import (
    InputNotFoundError,
    InvalidArgumentError,
    MissingColumnError,
    OutputExistsError,
    WrongTypeError,
    argument,
)
from ..scoring.profile_base import Profile
from ..selection.recipe import get_recipe, get_score_info
from ..selection.scored import SCORED_KIND
from ..signatures.arrow import numeric_column
from ..signatures.columns import signature_columns
from ..storage import location
from ..storage.atomic import (
    atomic_dir,
    atomic_write_text,
    check_complete,
    check_replaceable,
    lock_dir,
    remote_dir,
)
from .card import write_card, write_figure
from .configs import (
    DEFAULT_CONFIG,
    check_config_name,
    config_data_dir,
    config_root,
    foreign_entries,
    foreign_in_config,
    local_configs,
    read_config_meta,
)
from .figure import _histogram, _selection_scores
from .repo_settings import repo_defaults, resolve_repo_settings
from .templates import (
    CARD_FILE,
    CARD_SETTINGS,
    DATA_DIR,
    DEFAULT_MAX_SHARD_SIZE,
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    FIGURE_FILE,
    RECIPE_FILE,
    _as_list,
)

__all__ = ["export_for_hub", "regenerate_card"]


logger = logging.getLogger(__name__)


def _check_settings(selected: Any, settings: dict[str, Any]) -> None:
    for key in ("source_column", "token_column"):
        name = settings[key]
        if name and name not in selected.column_names:
            raise MissingColumnError(f"{key}={name!r} is not a column of the selection; columns: "
                                     f"{selected.column_names}")
    if not isinstance(settings["license"], str) or not settings["license"].strip():
        raise InvalidArgumentError("license must be a Hub license id such as 'cc-by-4.0', or 'unknown'")


def _num_shards(ds: Any, max_shard_rows: int | None, max_shard_size: int | str | None) -> int:
    """Shards needed so none exceeds ``max_shard_rows`` rows or ``max_shard_size`` bytes of Arrow data (the estimate
    ``Dataset.push_to_hub`` uses: rows are split evenly, so rows of similar size give shards of similar size)."""
    from datasets.utils.py_utils import convert_file_size_to_int

    n = 1
    if max_shard_rows is not None:
        if max_shard_rows < 1:
            raise InvalidArgumentError(f"max_shard_rows must be >= 1, got {max_shard_rows}")
        n = max(n, math.ceil(len(ds) / max_shard_rows))
    if max_shard_size is not None:
        bad = f"max_shard_size must be a positive number of bytes or a size such as '500MB', got {max_shard_size!r}"
        try:
            size = int(max_shard_size) if str(max_shard_size).isdigit() else convert_file_size_to_int(max_shard_size)
        except (ValueError, TypeError):
            raise InvalidArgumentError(bad) from None
        if size < 1:
            raise InvalidArgumentError(bad)
        n = max(n, math.ceil(ds._estimate_nbytes() / size))
    return max(1, min(n, len(ds)))


def _scored_info(ds: Any) -> dict[str, Any] | None:
    """What a scored pool's score column records (see :mod:`nag_datasets.selection.scored`), or None."""
    for name in ds.column_names:
        info = get_score_info(ds, name)
        if info and info.get("kind") == SCORED_KIND:
            return {"column": name, "score_kind": info.get("score_kind"), "spec": info.get("spec"),
                    "signature_column": info.get("signature_column"), "profile": info.get("profile") or {}}
    return None


def export_for_hub(
    selected: Any,
    folder: str | os.PathLike[str],
    *,
    license: str | None = None,
    source_datasets: str | Sequence[str] | None = None,
    pretty_name: str | None = None,
    source_column: str | None = None,
    token_column: str | None = None,
    pool_scores: Any = None,
    scores: Any = None,
    profile: Profile | Sequence[Profile] | None = None,
    task_categories: str | Sequence[str] | None = None,
    tags: str | Sequence[str] | None = None,
    repo_id: str | None = None,
    language: str | Sequence[str] | None = None,
    config_name: str = DEFAULT_CONFIG,
    overwrite: bool = False,
    max_shard_rows: int | None = None,
    max_shard_size: int | str | None = DEFAULT_MAX_SHARD_SIZE,
    repo_configs: Sequence[str] = (),
) -> Path | str:
    """Write ``selected`` as config ``config_name`` of a Hub-ready dataset folder; returns ``folder``.

    The ``default`` config writes ``data/train-0000i-of-0000N.parquet`` (rows, order and features as in
    ``selected``, spec and recipe included), ``nag_recipe.json`` and ``score_distribution.png``; another config
    ``NAME`` writes the same files into ``NAME/`` (see :mod:`nag_datasets.hub.configs`), beside the configs already
    there, and ``load_dataset(folder, NAME)`` loads it. ``README.md`` describes the config just written and lists
    every config (plus ``repo_configs``, configs published elsewhere in the same repo) in its YAML. Shards hold at
    most ``max_shard_size`` bytes (``"500MB"``, an int of bytes; ``None``: no limit) and ``max_shard_rows`` rows.

    A fresh folder is built beside the target and renamed into place, under a lock: a concurrent export of the same
    folder is refused, and an interrupted one leaves nothing behind; a config added to an existing export is written
    the same way, the card last. Replacing a config the folder already holds needs ``overwrite``; a folder holding
    anything but an export is refused. ``folder`` may be an fsspec URL (returned as given): the export is built in a
    local temporary folder (from a copy of the remote export, so its other configs stay) and uploaded, ``README.md``
    last (the completion marker; no lock: one writer at a time).

    ``license`` is the source data's license as a Hub id (default ``"unknown"``, stated as such on the card);
    ``language`` the data's languages (ISO codes, in the card's YAML). These, ``source_datasets``, ``pretty_name``,
    ``task_categories`` and ``tags`` describe the whole repository: a config exported beside others keeps the values
    they record when not given one, and a different value is refused (:mod:`nag_datasets.hub.repo_settings`; change
    them for every config with :func:`regenerate_card`). ``source_column`` adds per-source shares,
    ``token_column`` exact token counts (else the recipe's totals). The figure shows the selection's scores:
    ``scores`` (one per row), or ``profile`` (one, or one per target of a multi-target recipe) scoring the signature
    column, or the recipe's score column / ``nag_similarity`` / a scored pool's score column if kept;
    ``pool_scores`` adds the pool's distribution. ``repo_id`` only fills the card's loading example.
    """
    if location.is_remote(folder):
        settings = {k: v for k, v in locals().items() if k not in ("selected", "folder")}  # every argument
        return _export_remote(str(folder), overwrite, lambda local: export_for_hub(selected, local, **settings))
    if config_name != DEFAULT_CONFIG:
        check_config_name(config_name)
    if len(selected) == 0:
        raise InvalidArgumentError("the selection is empty: there is nothing to publish (datasets cannot load an empty "
                                   "split)")
    num_shards = _num_shards(selected, max_shard_rows, max_shard_size)
    given = {
        "license": license,
        "source_datasets": None if source_datasets is None else _as_list(source_datasets),
        "pretty_name": pretty_name,
        "source_column": source_column,
        "token_column": token_column,
        "task_categories": None if task_categories is None else _as_list(task_categories),
        "tags": None if tags is None else _as_list(tags),
        "repo_id": repo_id,
        "language": None if language is None else _as_list(language),
    }
    settings = repo_defaults(given)
    _check_settings(selected, settings)
    recipe = get_recipe(selected)
    scored = _scored_info(selected) if recipe is None else None
    if scored is not None and scores is None and profile is None:
        scores = numeric_column(selected, scored["column"])
    sel_scores, origin = _selection_scores(selected, recipe, scores, profile)
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "library_version": __version__,
        "config_name": config_name,
        "recipe": recipe.to_dict() if recipe else None,
        "scored": scored,
        "rows": len(selected),
        "signature_columns": sorted(signature_columns(selected)),
        "card": settings,
        "score_histogram": _histogram(sel_scores, pool_scores, recipe, origin),
    }
    if scored is not None:
        kind = "contrastive score, not a similarity" if scored["score_kind"] == "contrastive" else "similarity"
        meta["score_histogram"]["label"] = f"{scored['column']} ({kind}; higher is closer to the target)"
    folder = Path(folder)
    with lock_dir(folder):
        _check_target(folder, overwrite, config_name)
        others = [c for c in local_configs(folder) if c != config_name]
        if others:  # the repository-level card fields the other configs record
            meta["card"] = resolve_repo_settings(given, read_config_meta(folder, others[0])["card"], folder, others[0])
            _check_settings(selected, meta["card"])
        if not others:
            with atomic_dir(folder) as tmp:
                _write_config(selected, tmp, config_name, num_shards, meta)
                write_card(tmp, config_name, repo_configs)
        else:
            if config_name == DEFAULT_CONFIG:
                with atomic_dir(folder / DATA_DIR) as tmp:
                    _write_shards(selected, tmp, num_shards)
                _write_meta(folder, meta)
            else:
                with atomic_dir(config_root(folder, config_name)) as tmp:
                    _write_shards(selected, tmp, num_shards)
                    _write_meta(tmp, meta)
            write_card(folder, config_name, repo_configs)
    logger.info("exported %d rows in %d shard(s) to %s (config %s)", len(selected), num_shards, folder, config_name)
    return folder


def _export_remote(url: str, overwrite: bool, build: Callable[[Path], Any]) -> str:
    """Build the export locally with ``build`` (into a copy of what ``url`` holds, so that the local rules on configs,
    foreign files and ``overwrite`` apply unchanged), then upload it through ``remote_dir``, ``README.md`` last."""
    import tempfile

    fs, root = location.get_fs(url)
    root = root.rstrip("/")
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / "export"
        if location.list_names(url):
            try:
                check_complete(url)
                complete = True
            except OSError:
                if not overwrite:
                    raise
                complete = False  # an interrupted remote export: replaced whole
            for remote_file in (fs.find(root) if complete else []):
                target = local / remote_file[len(root) + 1:]
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote_file, str(target))
        build(local)
        files = sorted(p for p in local.rglob("*") if p.is_file())
        with remote_dir(url, marker=CARD_FILE, overwrite=True, ours=lambda name: True, what="export"):
            for p in sorted(files, key=lambda p: p.relative_to(local).as_posix() == CARD_FILE):
                fs.put_file(str(p), f"{root}/{p.relative_to(local).as_posix()}")
    return url


def _write_shards(ds: Any, tmp_dir: Path, num_shards: int) -> None:
    """The shards, into a folder being built (renamed into place by :func:`atomic_dir` afterwards)."""
    tmp_dir.mkdir(parents=True, exist_ok=True)
    for i in range(num_shards):
        shard = ds.shard(num_shards, i, contiguous=True)
        shard.to_parquet(str(tmp_dir / f"train-{i:05d}-of-{num_shards:05d}.parquet"))


def _write_meta(root: Path, meta: dict[str, Any]) -> None:
    atomic_write_text(root / RECIPE_FILE, json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n")
    write_figure(root, meta)


def _write_config(ds: Any, tmp: Path, config_name: str, num_shards: int, meta: dict[str, Any]) -> None:
    """Config ``config_name``'s shards, recipe and figure inside a folder being built."""
    _write_shards(ds, tmp / config_data_dir(config_name), num_shards)
    root = config_root(tmp, config_name)
    root.mkdir(parents=True, exist_ok=True)
    _write_meta(root, meta)


def _check_target(folder: Path | str, overwrite: bool, config_name: str = DEFAULT_CONFIG) -> None:
    """Refuse a folder that is not an export, or one holding ``config_name`` already without ``overwrite``. A remote
    folder is only checked for an unfinished write here; the rest is checked on its local copy while exporting."""
    if location.is_remote(folder):
        if not overwrite:
            check_complete(folder)
        return
    folder = location.local_path(folder)
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return
    configs = local_configs(folder)
    if not configs:
        check_replaceable(folder, overwrite=overwrite, marker=RECIPE_FILE, what="export",
                          ours=(DATA_DIR, CARD_FILE, FIGURE_FILE, RECIPE_FILE).__contains__)
        return
    # Every folder this export writes is checked: the top level, and the config's own folders; when the config is
    # the only one, the whole folder is rebuilt, so every config folder and data/ too.
    touched = {config_name} if [c for c in configs if c != config_name] else {config_name, DEFAULT_CONFIG, *configs}
    foreign = foreign_entries(folder) + [f for name in sorted(touched) for f in foreign_in_config(folder, name)]
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputExistsError(f"refusing to write into {folder}: it holds files that are not a nag_datasets export "
                                f"({shown}); move them away or choose another output")
    if config_name in configs and not overwrite:
        raise OutputExistsError(f"{folder} exists; pass {argument('overwrite=True')} to replace its config "
                                f"{config_name!r} (it holds {', '.join(configs)})")


def regenerate_card(folder: str | os.PathLike[str], *, config_name: str | None = None, **settings: Any) -> Path:
    """Rebuild ``README.md`` and the figures of an export from its ``nag_recipe.json`` files and data; returns the
    card path.

    ``settings`` (any of ``license``, ``source_datasets``, ``pretty_name``, ``source_column``, ``token_column``,
    ``task_categories``, ``tags``, ``repo_id``, ``language``) replace the stored ones of every config and are saved
    back to their ``nag_recipe.json``. The card describes ``config_name`` (default: ``default``, else the first).
    """
    folder = location.require_local(folder, "regenerating a card")
    unknown = sorted(set(settings) - set(CARD_SETTINGS))
    if unknown:
        raise WrongTypeError(f"unknown card setting(s) {unknown}; known: {', '.join(CARD_SETTINGS)}")
    for key in ("source_datasets", "task_categories", "tags", "language"):
        if key in settings:
            settings[key] = _as_list(settings[key])
    with lock_dir(folder):
        configs = local_configs(folder)
        if not configs:
            raise InputNotFoundError(f"{folder} is not a nag_datasets export: {RECIPE_FILE} is missing")
        for name in configs:
            root = config_root(folder, name)
            meta = read_config_meta(folder, name)
            if settings:
                meta["card"] = {**meta["card"], **settings}
                atomic_write_text(root / RECIPE_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
            write_figure(root, meta)
        write_card(folder, config_name or configs[0])
    return folder / CARD_FILE
