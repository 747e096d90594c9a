"""Card fields of the whole repository (license, source datasets, languages, pretty name, task categories, tags):
every config of one export shares them, so a later config keeps what an earlier one recorded.

A config exported into a folder (or repo) that already holds others takes the recorded value of each field it is
not given, and refuses a different explicit value by name: the card must not depend on which config was exported
last. Change a field for every config with ``nag-datasets card FOLDER --license ...``
(:func:`~nag_datasets.hub.export.regenerate_card`), or replace the whole export.

>>> recorded = {"license": "odc-by", "source_datasets": ["org/pool"], "pretty_name": None, "language": ["en"],
...             "task_categories": ["text-generation"], "tags": []}
>>> resolve_repo_settings({"license": None, "source_datasets": None, "language": ["en"]}, recorded, "out")["license"]
'odc-by'
>>> resolve_repo_settings({"license": "mit"}, recorded, "out")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nag_datasets.hub.repo_settings.CardSettingConflictError: license='mit' conflicts with the license 'odc-by' that out ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import InvalidArgumentError, argument

__all__ = ["REPO_FIELDS", "CardSettingConflictError", "repo_defaults", "resolve_repo_settings"]

#: Repository-level card fields and their values when no config was ever given one.
REPO_FIELDS: dict[str, Any] = {"license": "unknown", "source_datasets": [], "pretty_name": None, "language": [],
                               "task_categories": ["text-generation"], "tags": []}
#: The command-line option of each field, where ``export``/``push``/``card`` have one.
_FLAGS = {"license": "--license", "source_datasets": "--source-dataset", "pretty_name": "--pretty-name",
          "language": "--language"}
#: The Python argument of each field (``regenerate_card``/``export_for_hub``).
_ARGS = {"license": "license", "source_datasets": "source_datasets", "pretty_name": "pretty_name",
         "language": "language", "task_categories": "task_categories", "tags": "tags"}


class CardSettingConflictError(InvalidArgumentError):
    """A repository-level card field given a value other than the one the export's other configs record."""


def repo_defaults(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with every repository-level field that is None set to its default."""
    return {**settings, **{k: (REPO_FIELDS[k] if settings.get(k) is None else settings[k]) for k in REPO_FIELDS}}


def _normal(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _as_option(field: str, value: Any) -> str:
    """How the caller sets ``field`` to ``value``: ``--source-dataset a --source-dataset b`` or ``source_datasets=...``."""
    values = value if isinstance(value, list) else [value]
    flag = _FLAGS.get(field)
    python = f"{_ARGS[field]}={value!r}"
    return argument(python, " ".join(f"{flag} {v}" for v in values) if flag else python)


def resolve_repo_settings(given: Mapping[str, Any], recorded: Mapping[str, Any] | None, folder: Any,
                          config: str | None = "default") -> dict[str, Any]:
    """The repository-level fields for a config exported beside others: ``given`` values (None: not given) checked
    against ``recorded`` (the card settings another config of the export ``folder`` records, config ``config``; with
    ``config=None``, those the published card of the repo ``folder`` states; None when there is no other config),
    missing ones taken from it, then defaults. Other keys pass through."""
    out = dict(given)
    for field, default in REPO_FIELDS.items():
        value = _normal(given.get(field))
        if recorded is None:
            continue
        kept = _normal(recorded.get(field, default))
        if value is None:
            out[field] = kept
        elif value != kept:
            if config is None:
                where, fix = f"the published card of {folder} states", f"edit the card of {folder} on the Hub first"
            else:
                where = f"{folder} already records (config {config!r})"
                fix = "change it for every config with " + argument(
                    f"regenerate_card(folder, {_ARGS[field]}={value!r})",
                    f"nag-datasets card {folder} {_as_option(field, value)}")
            raise CardSettingConflictError(
                f"{_as_option(field, value)} conflicts with the {field.replace('_', ' ')} {kept!r} that {where}: "
                f"repository-level card fields are shared by every config. Leave it out to keep {kept!r}; {fix}; "
                "or replace the whole export")
    return repo_defaults(out)
