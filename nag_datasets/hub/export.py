"""Exporting a selection as a Hub-ready folder: a selected subset with a card that says exactly how it was chosen.

:func:`export_for_hub` writes everything locally (parquet shards, ``nag_recipe.json``, ``score_distribution.png`` and
a ``README.md`` card rendered from ``hub_cards/``); :func:`~nag_datasets.hub.upload.push_to_hub` exports first and
then uploads the folder. :func:`regenerate_card` rebuilds the card from ``nag_recipe.json``.

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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..columns import signature_columns
from ..scoring.target_profile import NAGProfile
from ..selection.recipe import RecipeError, SelectionRecipe, get_recipe
from ..storage import location
from ..storage.atomic import (
    atomic_dir,
    atomic_write_text,
    check_replaceable,
    lock_dir,
    read_versioned_json,
    remote_dir,
)
from .card import _write_card_files
from .figure import _histogram, _require_matplotlib, _selection_scores
from .templates import (
    CARD_FILE,
    CARD_SETTINGS,
    DATA_DIR,
    DEFAULT_MAX_SHARD_ROWS,
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
            raise KeyError(f"{key}={name!r} is not a column of the selection; columns: {selected.column_names}")
    if not isinstance(settings["license"], str) or not settings["license"].strip():
        raise ValueError("license must be a Hub license id such as 'cc-by-4.0', or 'unknown'")


def export_for_hub(
    selected: Any,
    folder: str | os.PathLike[str],
    *,
    license: str = "unknown",
    source_datasets: str | Sequence[str] = (),
    pretty_name: str | None = None,
    source_column: str | None = None,
    token_column: str | None = None,
    pool_scores: Any = None,
    scores: Any = None,
    profile: NAGProfile | Sequence[NAGProfile] | None = None,
    task_categories: str | Sequence[str] = ("text-generation",),
    tags: str | Sequence[str] = (),
    repo_id: str | None = None,
    overwrite: bool = False,
    max_shard_rows: int = DEFAULT_MAX_SHARD_ROWS,
) -> Path | str:
    """Write ``selected`` as a Hub-ready dataset folder; returns ``folder``.

    ``folder`` receives ``data/train-0000i-of-0000N.parquet`` (rows, order and features as in ``selected``, spec and
    recipe included), ``nag_recipe.json``, ``score_distribution.png`` and ``README.md``. The folder is built beside
    the target and renamed into place, under a lock: a concurrent export of the same folder is refused, and an
    interrupted one leaves nothing behind. A non-empty ``folder`` is refused unless ``overwrite``, and even then
    only when it is a previous export. ``folder`` may be an fsspec URL (returned as given): the export is built in a
    local temporary folder and uploaded, ``nag_recipe.json`` last (the completion marker; no lock, one writer).

    ``license`` is the source data's license as a Hub id (``"unknown"`` is stated as such on the card);
    ``source_column`` adds per-source shares, ``token_column`` exact token counts (else the recipe's totals).
    The figure shows the selection's scores: ``scores`` (one per row), or ``profile`` (one, or one per target of a
    multi-target recipe) scoring the signature column, or the recipe's score column / ``nag_similarity`` if kept;
    ``pool_scores`` adds the pool's distribution. ``repo_id`` only fills the card's loading example.
    """
    if max_shard_rows < 1:
        raise ValueError(f"max_shard_rows must be >= 1, got {max_shard_rows}")
    if len(selected) == 0:
        raise ValueError("the selection is empty: there is nothing to publish (datasets cannot load an empty split)")
    _require_matplotlib()
    settings = {
        "license": license,
        "source_datasets": _as_list(source_datasets),
        "pretty_name": pretty_name,
        "source_column": source_column,
        "token_column": token_column,
        "task_categories": _as_list(task_categories),
        "tags": _as_list(tags),
        "repo_id": repo_id,
    }
    _check_settings(selected, settings)
    recipe = get_recipe(selected)
    sel_scores, origin = _selection_scores(selected, recipe, scores, profile)
    meta = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "library_version": __version__,
        "recipe": recipe.to_dict() if recipe else None,
        "rows": len(selected),
        "signature_columns": sorted(signature_columns(selected)),
        "card": settings,
        "score_histogram": _histogram(sel_scores, pool_scores, recipe, origin),
    }
    num_shards = max(1, math.ceil(len(selected) / max_shard_rows))
    if location.is_remote(folder):
        import tempfile

        url = str(folder)
        with remote_dir(url, marker=RECIPE_FILE, overwrite=overwrite, what="export", ours=_EXPORT_FILES.__contains__), \
                tempfile.TemporaryDirectory() as local:
            _fill(Path(local), selected, num_shards, meta)
            fs, root = location.get_fs(url)
            files = sorted(p for p in Path(local).rglob("*") if p.is_file())
            for p in sorted(files, key=lambda p: p.name == RECIPE_FILE):  # the recipe (completion marker) last
                fs.put_file(str(p), f"{root.rstrip('/')}/{p.relative_to(local).as_posix()}")
        logger.info("exported %d rows in %d shard(s) to %s", len(selected), num_shards, url)
        return url
    folder = location.local_path(folder)
    with lock_dir(folder):
        _check_target(folder, overwrite)
        with atomic_dir(folder) as tmp:
            _fill(tmp, selected, num_shards, meta)
    logger.info("exported %d rows in %d shard(s) to %s", len(selected), num_shards, folder)
    return folder


_EXPORT_FILES = (DATA_DIR, CARD_FILE, FIGURE_FILE, RECIPE_FILE)


def _fill(tmp: Path, selected: Any, num_shards: int, meta: dict[str, Any]) -> None:
    (tmp / DATA_DIR).mkdir()
    for i in range(num_shards):
        shard = selected.shard(num_shards, i, contiguous=True)
        shard.to_parquet(str(tmp / DATA_DIR / f"train-{i:05d}-of-{num_shards:05d}.parquet"))
    (tmp / RECIPE_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n")
    _write_card_files(tmp, meta)


def _check_target(folder: Path | str, overwrite: bool) -> None:
    if not location.is_remote(folder):
        folder = location.local_path(folder)
        if folder.is_dir() and not any(folder.iterdir()):
            return
    check_replaceable(folder, overwrite=overwrite, marker=RECIPE_FILE, what="export", ours=_EXPORT_FILES.__contains__)


def _read_meta(folder: Path) -> dict[str, Any]:
    path = folder / RECIPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a nag_datasets export: {RECIPE_FILE} is missing")
    meta = read_versioned_json(path, fmt=EXPORT_FORMAT, version=EXPORT_FORMAT_VERSION, error=RecipeError,
                               what="export description")
    bad = [k for k in ("card", "score_histogram") if not isinstance(meta.get(k), dict)]
    if bad:
        raise RecipeError(f"{path} lacks or has malformed {', '.join(bad)}")
    if meta.get("recipe") is not None:
        try:
            SelectionRecipe.from_dict(meta["recipe"])
        except RecipeError as e:
            raise RecipeError(f"{path}: {e}") from None
    return meta


def regenerate_card(folder: str | os.PathLike[str], **settings: Any) -> Path:
    """Rebuild ``README.md`` and the figure of an export from its ``nag_recipe.json`` and data; returns the card path.

    ``settings`` (any of ``license``, ``source_datasets``, ``pretty_name``, ``source_column``, ``token_column``,
    ``task_categories``, ``tags``, ``repo_id``) replace the stored ones and are saved back to ``nag_recipe.json``.
    """
    folder = location.require_local(folder, "regenerating a card")
    unknown = sorted(set(settings) - set(CARD_SETTINGS))
    if unknown:
        raise TypeError(f"unknown card setting(s) {unknown}; known: {', '.join(CARD_SETTINGS)}")
    with lock_dir(folder):
        meta = _read_meta(folder)
        if settings:
            for key in ("source_datasets", "task_categories", "tags"):
                if key in settings:
                    settings[key] = _as_list(settings[key])
            meta["card"] = {**meta["card"], **settings}
            atomic_write_text(folder / RECIPE_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")
        _require_matplotlib()
        _write_card_files(folder, meta)
    return folder / CARD_FILE
