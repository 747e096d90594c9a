"""Several configs in one export folder or dataset repo, laid out as ``Dataset.push_to_hub`` lays them out.

The ``default`` config keeps the single-export layout (``data/train-*.parquet``, ``nag_recipe.json`` and
``score_distribution.png`` at the top); any other config ``NAME`` lives in its own folder ``NAME/`` (its shards
``NAME/train-*.parquet`` beside its ``nag_recipe.json`` and figure). The card's YAML lists every config with its
``data_files`` (the Hub's documented ``configs:`` field), so ``load_dataset(folder_or_repo, NAME)`` loads one.

>>> [c["data_files"][0]["path"] for c in yaml_configs(["scored", "default"])]
['data/train-*', 'scored/train-*']
>>> configs_in_repo_files(["README.md", "data/train-00000-of-00001.parquet", "scored/train-00000-of-00002.parquet"])
['default', 'scored']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import InputNotFoundError, InvalidArgumentError
from ..selection.recipe import RecipeError, SelectionRecipe
from ..storage.atomic import read_versioned_json
from .templates import CARD_FILE, DATA_DIR, EXPORT_FORMAT, EXPORT_FORMAT_VERSION, FIGURE_FILE, RECIPE_FILE

__all__ = [
    "DEFAULT_CONFIG",
    "check_config_name",
    "config_root",
    "configs_in_repo_files",
    "local_configs",
    "read_config_meta",
    "yaml_configs",
]

DEFAULT_CONFIG = "default"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
#: Top-level names of an export that are not config folders (a config may not take them).
_RESERVED = frozenset({DATA_DIR, CARD_FILE, FIGURE_FILE, RECIPE_FILE, ".cache", ".gitattributes"})
_SHARD = re.compile(r"^train-\d{5}-of-\d{5}\.parquet$")


def check_config_name(name: str) -> str:
    """``name`` when it can name a config (letters, digits, ``_``, ``-``; not ``data``); else
    :class:`~nag_datasets.errors.InvalidArgumentError`."""
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
        raise InvalidArgumentError(
            f"config name {name!r} must be 1-64 letters, digits, '_' or '-', start with a letter or digit, "
            f"and not be {DATA_DIR!r}"
        )
    return name


def config_root(folder: str | Path, name: str) -> Path:
    """Where config ``name``'s ``nag_recipe.json`` and figure live: ``folder`` for ``default``, else ``folder/name``."""
    folder = Path(folder)
    return folder if name == DEFAULT_CONFIG else folder / check_config_name(name)


def config_data_dir(name: str) -> str:
    """Config ``name``'s shard folder, relative to the export (``data`` for ``default``, else ``name``)."""
    return DATA_DIR if name == DEFAULT_CONFIG else check_config_name(name)


def shard_files(folder: str | Path, name: str = DEFAULT_CONFIG) -> list[Path]:
    """Config ``name``'s parquet shards in ``folder``, in order."""
    return sorted((Path(folder) / config_data_dir(name)).glob("train-*.parquet"))


def local_configs(folder: str | Path) -> list[str]:
    """The configs an export folder holds (``default`` first, then by name): those with a ``nag_recipe.json``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    named = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_dir() and p.name not in _RESERVED and _NAME.match(p.name) and (p / RECIPE_FILE).is_file()
    )
    return ([DEFAULT_CONFIG] if (folder / RECIPE_FILE).is_file() else []) + named


def configs_in_repo_files(paths: Iterable[str]) -> list[str]:
    """The configs a repo holds, from its file list (``default`` first): folders holding ``train-*`` shards."""
    found = set()
    for path in paths:
        parts = path.split("/")
        if len(parts) == 2 and _SHARD.match(parts[1]):
            found.add(DEFAULT_CONFIG if parts[0] == DATA_DIR else parts[0])
    found = {c for c in found if c == DEFAULT_CONFIG or _NAME.match(c)}
    return ordered(found)


def ordered(names: Iterable[str]) -> list[str]:
    """Config names without repeats, ``default`` first, the others sorted."""
    names = set(names)
    return ([DEFAULT_CONFIG] if DEFAULT_CONFIG in names else []) + sorted(names - {DEFAULT_CONFIG})


def yaml_configs(names: Sequence[str]) -> list[dict[str, Any]]:
    """The card YAML's ``configs:`` entries for ``names`` (``default`` first), one ``train`` split each."""
    return [
        {"config_name": n, "data_files": [{"split": "train", "path": f"{config_data_dir(n)}/train-*"}]}
        for n in ordered(names)
    ]


def foreign_entries(folder: str | Path) -> list[str]:
    """Top-level names in an export folder that are neither our fixed files nor a config's folder."""
    folder = Path(folder)
    configs = set(local_configs(folder))
    return sorted(p.name for p in folder.iterdir() if p.name not in _RESERVED and p.name not in configs)


def foreign_in_config(folder: str | Path, name: str) -> list[str]:
    """Paths (relative to the export ``folder``) inside config ``name``'s own folders that an export did not write:
    anything but its shards in its shard folder (``data/`` or ``name/``), and for a named config anything but shards,
    ``nag_recipe.json`` and the figure in ``name/``. Replacing the config would delete them.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "data").mkdir(); _ = (root / "data" / "notes.txt").write_text("mine")
    >>> foreign_in_config(root, "default")
    ['data/notes.txt']
    """
    folder = Path(folder)
    ours = {RECIPE_FILE, FIGURE_FILE} if name != DEFAULT_CONFIG else set()
    shards = folder / config_data_dir(name)
    if not shards.is_dir():
        return []
    return sorted(f"{shards.name}/{p.name}" for p in shards.iterdir()
                  if not (p.is_file() and (_SHARD.match(p.name) or p.name in ours)))


def read_config_meta(folder: str | Path, name: str = DEFAULT_CONFIG) -> dict[str, Any]:
    """Config ``name``'s ``nag_recipe.json``, checked (a corrupt or foreign file raises ``RecipeError`` naming it)."""
    path = config_root(folder, name) / RECIPE_FILE
    if not path.is_file():
        raise InputNotFoundError(f"{Path(folder)} is not a nag_datasets export: {path.name} is missing")
    meta = read_versioned_json(
        path, fmt=EXPORT_FORMAT, version=EXPORT_FORMAT_VERSION, error=RecipeError, what="export description"
    )
    bad = [k for k in ("card", "score_histogram") if not isinstance(meta.get(k), dict)]
    if bad:
        raise RecipeError(f"{path} lacks or has malformed {', '.join(bad)}")
    if meta.get("recipe") is not None:
        try:
            SelectionRecipe.from_dict(meta["recipe"])
        except RecipeError as e:
            raise RecipeError(f"{path}: {e}") from None
    return meta
