"""Uploading an export folder to the Hub: token resolution, private repos, data first and card last, one config at a
time (the repo's other configs stay), on a branch or as a pull request, large exports through the resumable uploader.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from .. import __version__
from ..errors import InvalidArgumentError, NAGError
from ..storage.atomic import atomic_write_text, lock_dir
from ..storage.location import require_local
from ..storage.remote import hub_errors, scrub_token
from .card import write_card
from .configs import DEFAULT_CONFIG, config_root, configs_in_repo_files, read_config_meta, shard_files
from .export import export_for_hub
from .repo_settings import REPO_FIELDS, resolve_repo_settings
from .templates import CARD_FILE, DATA_DIR, DEFAULT_TAGS, FIGURE_FILE, RECIPE_FILE, _as_list

__all__ = ["HubPublishError", "push_to_hub"]

logger = logging.getLogger(__name__)


class HubPublishError(NAGError, RuntimeError):
    """Uploading to the Hub failed (offline, not logged in, refused); ``local_folder`` holds the finished export."""

    def __init__(self, message: str, local_folder: Path | None = None) -> None:
        super().__init__(message)
        self.local_folder = local_folder


def _hub_offline() -> bool:
    from huggingface_hub import constants

    flag = os.environ.get("HF_HUB_OFFLINE", "")
    return constants.is_offline_mode() or flag.upper() in ("1", "ON", "YES", "TRUE")


def _resolve_token(token: str | None, folder: Path) -> str:
    """The token to use (argument, else huggingface_hub's usual sources); a clear error when there is none."""
    if _hub_offline():
        raise HubPublishError(f"the Hub is offline (HF_HUB_OFFLINE is set); nothing was uploaded. The local export is "
                              f"complete at {folder}: unset HF_HUB_OFFLINE and upload it again.", folder)
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise HubPublishError(f"not logged in to the Hub (no token argument, HF_TOKEN or saved login); nothing was "
                              f"uploaded. The local export is complete at {folder}: run `hf auth login` and upload "
                              "it again.", folder)
    return token


#: An export at least this large (bytes, all files) is uploaded with ``HfApi.upload_large_folder`` where the installed
#: ``huggingface_hub`` has it (resumable, multi-threaded, several commits). huggingface_hub 2.x removed it: its
#: ``upload_folder`` does the same by itself, so there every export goes through ``upload_folder``.
LARGE_FOLDER_BYTES = 1 << 30


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _config_files(folder: Path, config_name: str) -> tuple[str, list[str]]:
    """The repo pattern of config ``config_name``'s files, and the paths of those files in ``folder``."""
    if config_name == DEFAULT_CONFIG:
        files = [f"{DATA_DIR}/{p.name}" for p in shard_files(folder)]
        return f"{DATA_DIR}/*", files + [n for n in (RECIPE_FILE, FIGURE_FILE) if (folder / n).is_file()]
    root = folder / config_name
    return f"{config_name}/*", [p.relative_to(folder).as_posix() for p in root.rglob("*") if p.is_file()]


class _Target(NamedTuple):
    repo_id: str
    revision: str | None
    create_pr: bool
    token: str


def _commit(api: Any, folder: Path, t: _Target, *, config_name: str, large_threshold: int, message: str) -> Any:
    """Upload everything but the card (replacing config ``config_name``'s files only); returns the commit info."""
    pattern, local = _config_files(folder, config_name)
    large = getattr(api, "upload_large_folder", None)
    if large is not None and not t.create_pr and _folder_bytes(folder) >= large_threshold:
        # No delete_patterns there: upload, then delete what is left of an earlier version of this config.
        large(repo_id=t.repo_id, folder_path=str(folder), repo_type="dataset", revision=t.revision,
              ignore_patterns=[CARD_FILE])
        _delete_stale(api, t, pattern, local)
        return None
    return api.upload_folder(repo_id=t.repo_id, folder_path=folder, repo_type="dataset", token=t.token,
                             revision=t.revision, create_pr=t.create_pr, ignore_patterns=[CARD_FILE],
                             delete_patterns=[pattern], commit_message=message)


def _delete_stale(api: Any, t: _Target, pattern: str, local: list[str]) -> None:
    from huggingface_hub import CommitOperationDelete

    prefix = pattern[:-1]
    keep = set(local)
    stale = [f for f in api.list_repo_files(t.repo_id, repo_type="dataset", revision=t.revision, token=t.token)
             if f.startswith(prefix) and f not in keep]
    if stale:
        api.create_commit(repo_id=t.repo_id, repo_type="dataset", revision=t.revision, token=t.token,
                          operations=[CommitOperationDelete(path_in_repo=f) for f in stale],
                          commit_message=f"Remove {len(stale)} stale file(s) of the previous upload")


def _repo_configs(api: Any, t: _Target) -> list[str]:
    """Configs already in the repo at the target revision (none when the repo or revision is new)."""
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        files = api.list_repo_files(t.repo_id, repo_type="dataset", revision=t.revision, token=t.token)
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError):
        return []
    return configs_in_repo_files(files)


def _published_card_settings(api: Any, t: _Target) -> dict[str, Any] | None:
    """The repository-level card fields of the repo's current card (None when it has none)."""
    from huggingface_hub import DatasetCard
    from huggingface_hub.errors import EntryNotFoundError

    try:
        path = api.hf_hub_download(repo_id=t.repo_id, filename=CARD_FILE, repo_type="dataset", revision=t.revision,
                                   token=t.token)
    except EntryNotFoundError:
        return None
    data = DatasetCard.load(Path(path)).data
    return {"license": data.license or REPO_FIELDS["license"], "source_datasets": list(data.source_datasets or []),
            "pretty_name": data.pretty_name, "language": list(data.language or []),
            "task_categories": list(data.task_categories or []),
            "tags": [tag for tag in (data.tags or []) if tag not in DEFAULT_TAGS]}


def _adopt_published_settings(api: Any, t: _Target, folder: Path, config_name: str, given: dict[str, Any]) -> None:
    """Give config ``config_name`` of the local export the repository-level card fields the repo's card already
    states (the repo holds other configs): those not ``given`` are taken, a different given value is refused."""
    recorded = _published_card_settings(api, t)
    if recorded is None:
        return
    meta = read_config_meta(folder, config_name)
    own = {k: v for k, v in meta["card"].items() if k not in REPO_FIELDS}  # this config's columns, repo_id
    meta["card"] = resolve_repo_settings({**own, **given}, recorded, t.repo_id, config=None)
    atomic_write_text(config_root(folder, config_name) / RECIPE_FILE,
                      json.dumps(meta, indent=1, sort_keys=True, allow_nan=False) + "\n")


def _upload(folder: Path, repo_id: str, *, token: str, private: bool, what: str, config_name: str = DEFAULT_CONFIG,
            revision: str | None = None, create_pr: bool = False, api: Any = None,
            large_threshold: int = LARGE_FOLDER_BYTES, given: dict[str, Any] | None = None) -> str:
    """Create the repo if needed, upload everything but the card, then the card (so nothing rewrites its body).

    The card lists the configs already in the repo too. With ``create_pr`` the data commit opens a pull request and
    the card goes into the same one; the pull request's URL is returned instead of the repo's.
    """
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    t = _Target(repo_id, revision, bool(create_pr), token)
    try:
        url = api.create_repo(repo_id, token=token, private=private, repo_type="dataset", exist_ok=True)
        if revision is not None and not revision.startswith("refs/"):
            api.create_branch(repo_id, branch=revision, repo_type="dataset", token=token, exist_ok=True)
        others = [c for c in _repo_configs(api, t) if c != config_name]
        if others:
            with lock_dir(folder):
                _adopt_published_settings(api, t, folder, config_name, dict(given or {}))
                write_card(folder, config_name, others)
        info = _commit(api, folder, t, config_name=config_name, large_threshold=large_threshold,
                       message=f"Upload {what}, config {config_name} (nag-datasets {__version__})")
        pr_revision = getattr(info, "pr_revision", None) if create_pr else None
        api.upload_file(path_or_fileobj=str(folder / CARD_FILE), path_in_repo=CARD_FILE, repo_id=repo_id,
                        repo_type="dataset", token=token, revision=pr_revision or revision,
                        create_pr=bool(create_pr) and pr_revision is None, commit_message="Upload the card")
    except NAGError:
        raise  # ours (a card field that conflicts with the published card): already one clear line
    except hub_errors() as e:
        message = scrub_token(f"{type(e).__name__}: {e}", token)
        raise HubPublishError(f"uploading {what} to {repo_id} failed ({message}). The local export is complete at "
                              f"{folder}.", folder) from None
    if create_pr and getattr(info, "pr_url", None):
        return str(info.pr_url)
    return str(getattr(url, "url", url))


def push_to_hub(
    selected: Any,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    folder: str | os.PathLike[str] | None = None,
    config_name: str = DEFAULT_CONFIG,
    revision: str | None = None,
    create_pr: bool = False,
    api: Any = None,
    large_folder_bytes: int = LARGE_FOLDER_BYTES,
    **export_kwargs: Any,
) -> str:
    """Export ``selected`` (see :func:`export_for_hub`) as config ``config_name``, then upload it to the dataset repo
    ``repo_id``; returns its URL (the pull request's with ``create_pr``).

    The data, recipe and figure are uploaded first and ``README.md`` last, in separate commits. Publishing a config
    replaces that config's files only: the repo's other configs stay, and the card's YAML lists them all, so
    ``load_dataset(repo_id, name)`` loads each. ``revision`` (a branch, created if missing) and ``create_pr`` (open a
    pull request holding both commits) are passed to every commit. An export of ``large_folder_bytes`` or more goes
    through ``HfApi.upload_large_folder`` when the installed ``huggingface_hub`` has it and no pull request is
    asked for. New repos are private unless ``private=False`` (an existing repo keeps its visibility). ``token``
    defaults to huggingface_hub's usual sources (``HF_TOKEN``, the saved login) and is never printed or written.
    ``api`` replaces the ``HfApi`` client (tests pass a recorder). Without ``folder`` the export goes to a temporary
    folder, removed after a successful upload. Offline, unauthenticated or refused uploads raise
    :class:`HubPublishError` after the export, naming the local folder.
    """
    if create_pr and revision is not None:
        raise InvalidArgumentError("pass either revision or create_pr: a pull request is opened against the default "
                                   "branch")
    own = folder is None
    target = (Path(tempfile.mkdtemp(prefix="nag-export-")) / "export" if own
              else require_local(folder, "push's --folder"))
    export_kwargs.setdefault("repo_id", repo_id)
    export_for_hub(selected, target, config_name=config_name, **export_kwargs)
    token = _resolve_token(token, target)
    given = {k: _as_list(v) if isinstance(REPO_FIELDS[k], list) else v
             for k, v in export_kwargs.items() if k in REPO_FIELDS and v is not None}
    url = _upload(target, repo_id, token=token, private=private, what="the NAG selection", config_name=config_name,
                  revision=revision, create_pr=create_pr, api=api, large_threshold=large_folder_bytes, given=given)
    logger.info("uploaded %s to %s (private=%s, config %s)", target, repo_id, private, config_name)
    if own:
        shutil.rmtree(target.parent, ignore_errors=True)
    return url
